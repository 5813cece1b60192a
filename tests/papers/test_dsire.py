"""DSiRe: the LoRA spectral reader (QR trick, key styles, one-line errors), the vote, the splits,
the frozen-prefix path of the benchmark's training, and the user-adapter CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import cli_env, needs_data
from solstice.errors import DataError
from solstice.papers.dsire.evaluate import evaluate_splits, leave_in_accuracy
from solstice.papers.dsire.method import DSiRe, Normaliser, concept_splits, stack, vote
from solstice.papers.dsire.synthetic import planted_adapters
from solstice.training.lora_spectra import (
    check_same_layers,
    norm_features,
    pair_tensors,
    qr_svdvals,
    read_adapter,
    row_norms_feature,
    spectral_features,
)


def _factors(d_out: int, d_in: int, r: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(d_out, r, generator=g, dtype=torch.float64),
            torch.randn(r, d_in, generator=g, dtype=torch.float64))


# -- spectra ---------------------------------------------------------------------------------------
def test_rank_r_delta_has_exactly_r_nonzero_singular_values():
    B, A = _factors(40, 56, 5)
    dense = torch.linalg.svdvals(B @ A)
    assert int((dense > 1e-6 * dense[0]).sum()) == 5
    s = qr_svdvals(B, A)
    assert s.shape == (5,) and bool((s > 1e-6 * s[0]).all())


def test_zero_up_matrix_gives_a_zero_delta():
    _, A = _factors(24, 16, 4)
    s = qr_svdvals(torch.zeros(24, 4, dtype=torch.float64), A, 2.0)
    assert torch.equal(s, torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize("d_out,d_in,r", [(12, 20, 8), (20, 12, 9), (7, 30, 6), (9, 6, 10)])
def test_qr_trick_equals_dense_svdvals_in_float64(d_out, d_in, r):
    # d_out != d_in and r > min(d) / 2 (the last case has r > min(d): padded with zeros)
    B, A = _factors(d_out, d_in, r, seed=d_out)
    want = torch.linalg.svdvals(2.5 * (B @ A))
    got = qr_svdvals(B, A, 2.5)
    k = min(r, want.shape[0])
    assert torch.allclose(got[:k], want[:k], rtol=1e-10, atol=1e-10 * float(want[0]))
    assert got.shape == (r,) and bool((got[k:] == 0).all())


def test_row_norm_parity_mode_is_the_norms_of_the_first_r_rows():
    B, A = _factors(10, 14, 3)
    got = row_norms_feature(B, A, 0.5)
    assert torch.allclose(got, (0.5 * (B @ A))[:3].norm(dim=1))
    assert not torch.allclose(got, qr_svdvals(B, A, 0.5))  # it is not the spectrum


def test_scale_and_norm_features_follow_alpha_over_r():
    B, A = _factors(8, 6, 2)
    ad = pair_tensors({"m.q_proj.lora_A.weight": A, "m.q_proj.lora_B.weight": B}, alpha=8)
    assert ad.modules["m.q_proj"].scale == 4.0
    nf = norm_features(ad)["m.q_proj|BA"][0]
    assert nf == pytest.approx(float((4.0 * B @ A).norm()), rel=1e-9)
    off = spectral_features(ad, include_scaling=False)["m.q_proj|BA"]
    assert np.allclose(off * 4.0, spectral_features(ad)["m.q_proj|BA"])


# -- reading adapters --------------------------------------------------------------------------------
KEYS = {
    "peft": ("base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight",
             "base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight"),
    "diffusers": ("unet.down_blocks.{i}.attn.to_q_lora.down.weight", "unet.down_blocks.{i}.attn.to_q_lora.up.weight"),
    "kohya": ("lora_unet_down_blocks_{i}_attn_to_q.lora_down.weight", "lora_unet_down_blocks_{i}_attn_to_q.lora_up.weight"),
}


@pytest.mark.parametrize("style", sorted(KEYS))
def test_every_key_style_pairs_up_and_errors_name_the_layer(tmp_path, style):
    from safetensors.torch import save_file

    a_key, b_key = KEYS[style]
    B, A = _factors(6, 5, 2)
    t = {k.format(i=i): v.float().contiguous() for i in range(2) for k, v in ((a_key, A), (b_key, B))}
    save_file(t, str(tmp_path / "ok.safetensors"))
    ad = read_adapter(tmp_path / "ok.safetensors")
    assert len(ad.modules) == 2
    assert all(m.A.shape == (2, 5) and m.B.shape == (6, 2) for m in ad.modules.values())
    # a missing partner
    del t[b_key.format(i=1)]
    save_file(t, str(tmp_path / "broken.safetensors"))
    with pytest.raises(DataError, match="has no B"):
        read_adapter(tmp_path / "broken.safetensors")
    layer = next(n for n in ad.modules if "1" in n)
    with pytest.raises(DataError, match=layer.replace(".", r"\.")):
        read_adapter(tmp_path / "broken.safetensors")
    # mismatched layer sets between two adapters
    one = pair_tensors({k: v for k, v in t.items() if ".1." not in k and "_1_" not in k}, source="one")
    with pytest.raises(DataError, match="lacks layer"):
        check_same_layers([ad, one])


def test_kohya_alpha_entry_sets_the_scale():
    B, A = _factors(6, 5, 2)
    ad = pair_tensors({"x.lora_down.weight": A, "x.lora_up.weight": B, "x.alpha": torch.tensor(1.0)})
    assert ad.modules["x"].scale == 0.5


def test_a_fresh_peft_lora_reads_back_with_a_zero_delta(tiny_llama, tmp_path):
    import copy

    from solstice.training.params import add_lora

    model = copy.deepcopy(tiny_llama.model)
    pm = add_lora(model, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"], layers=[1])
    pm.save_pretrained(str(tmp_path / "fresh"))
    ad = read_adapter(tmp_path / "fresh")
    assert sorted(ad.modules) == ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]
    feats = spectral_features(ad)
    assert all(np.all(v == 0) for k, v in feats.items() if k.endswith("|BA"))
    assert all(np.all(v > 0) for k, v in feats.items() if k.endswith("|A"))


# -- classifier, vote, splits -------------------------------------------------------------------------
def test_planted_spectra_are_sized_exactly():
    ads, sizes, concepts = planted_adapters([1, 2, 3, 4, 5, 6], 5, seed=3)
    feats = [spectral_features(a) for a in ads]
    norms = [norm_features(a) for a in ads]
    res = evaluate_splits(feats, norms, sizes, concepts, n_train=3, n_splits=4, seed=42)
    for sp in res:
        assert sp["scores"]["dsire"]["acc"] == 1.0 and sp["scores"]["dsire"]["mae"] == 0.0
    # and the random baseline is not exact (the harness can fail)
    assert np.mean([sp["scores"]["random"]["acc"] for sp in res]) < 0.6


def test_leave_in_evaluation_is_exact_even_on_noise():
    rng = np.random.default_rng(0)
    feats = [{f"l{j}|A": rng.normal(size=4) for j in range(5)} for _ in range(30)]
    sizes = [int(x) for x in rng.integers(1, 7, size=30)]
    assert leave_in_accuracy(feats, sizes) == 1.0


def test_no_concept_on_both_sides_of_a_split():
    concepts = [f"c{i % 9}" for i in range(54)]
    splits = concept_splits(concepts, 5, 10, seed=42)
    assert len(splits) == 10 and len({tuple(tr) for tr, _ in splits}) > 1
    for tr, te in splits:
        assert not set(tr) & set(te) and set(tr) | set(te) == set(concepts) and len(tr) == 5
    assert splits == concept_splits(concepts, 5, 10, seed=42)


def test_vote_ties_are_deterministic():
    assert vote([3.0, 1.0, 1.0, 3.0], [0.2, 0.5, 0.5, 0.2]).size == 3.0  # smaller summed distance
    assert vote([3.0, 1.0, 1.0, 3.0], [0.2, 0.5, 0.5, 0.2], "first").size == 3.0
    assert vote([1.0, 3.0, 3.0, 1.0], [0.9, 0.2, 0.2, 0.9], "first").size == 1.0
    assert vote([2.0, 1.0], [0.3, 0.3]).size == 1.0  # equal distances: the smaller label
    p = vote([2.0, 2.0, 5.0], [0.1, 0.1, 0.1])
    assert p.size == 2.0 and p.votes == {2.0: 2, 5.0: 1} and p.confidence() == pytest.approx(2 / 3)


def test_normalisation_is_fit_on_training_models_only():
    train = [{"v|A": np.array([0.0, 1.0])}, {"v|A": np.array([2.0, 4.0])}]
    test = [{"v|A": np.array([8.0, 9.0])}]
    nm = Normaliser("global").fit(stack(train, ["v|A"]))
    assert nm.params["*"] == (0.0, 4.0)
    assert float(nm.transform(stack(test, ["v|A"]))["v|A"].max()) > 1.0
    clf = DSiRe().fit(train, [1, 2])
    assert clf.predict(test)[0].size == 2.0


# -- the benchmark's training: cached prefix and PEFT checkpoints -----------------------------------
def test_cached_prefix_forward_equals_the_full_models_logits(tiny_llama):
    import copy

    from solstice.training.params import add_lora
    from solstice.training.prefix import FrozenPrefix

    model = copy.deepcopy(tiny_llama.model)
    for p in model.parameters():
        p.requires_grad_(False)
    pm = add_lora(model, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"], layers=[1])
    seqs = [list(range(5, 30)), list(range(40, 52))]
    fp = FrozenPrefix(model, 1)
    assert fp.verify(seqs, atol=1e-5) <= 1e-5  # B = 0: the plain model
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    assert fp.verify(seqs, atol=1e-5) <= 1e-5  # with a non-zero LoRA delta


def test_cached_prefix_step_has_the_full_models_loss_and_lora_gradients(tiny_llama):
    """The benchmark's training step (frozen-prefix cache + fused head/loss) against the ordinary
    PEFT step `model(input_ids, labels=input_ids)`: the same loss and LoRA gradients."""
    import copy

    from solstice.training.loop import StepHook, TrainConfig, train
    from solstice.training.params import add_lora
    from solstice.training.prefix import FrozenPrefix

    model = copy.deepcopy(tiny_llama.model)
    for p in model.parameters():
        p.requires_grad_(False)
    pm = add_lora(model, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"], layers=[1])
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    chunks = [torch.randint(3, 250, (24,), generator=g).tolist() for _ in range(4)]
    fp = FrozenPrefix(model, 1)
    fp.states(chunks)
    got: dict = {}

    class Grab(StepHook):
        def before_clip(self, m):
            got.update({n: p.grad.clone() for n, p in m.named_parameters() if p.requires_grad})

    from solstice.training.params import decoder_layers

    calls = []  # the frozen layer never runs in the cached step (so nothing frozen is in its graph)
    spy = decoder_layers(model)[0].register_forward_hook(lambda *a: calls.append(1))
    before = {n: p.detach().clone() for n, p in pm.named_parameters() if p.requires_grad}
    res = train(pm, tiny_llama.tokenizer, [{"input_ids": c, "labels": c} for c in chunks],
                TrainConfig(lr=1e-3, batch_size=4, max_steps=1, max_grad_norm=None, fused_loss=True),
                prefix=fp, hooks=[Grab()])
    n_check = len(calls)  # the fused loss's one-off logits check runs the whole model once (twice at most)
    res2 = train(pm, tiny_llama.tokenizer, [{"input_ids": c, "labels": c} for c in chunks],
                 TrainConfig(lr=1e-3, batch_size=4, epochs=2, max_grad_norm=None, fused_loss=True), prefix=fp)
    spy.remove()
    assert n_check <= 2 and len(calls) == n_check and res2.steps == 2  # checked once per model; steps skip layer 0
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if n in before:
                p.copy_(before[n])
    pm.train()
    ids = torch.tensor(chunks)
    ref = pm(input_ids=ids, labels=ids).loss
    named = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    assert len(named) == 4 and set(got) == {n for n, _ in named}  # A and B of q and v in layer 1 only
    assert res.losses[0] == pytest.approx(float(ref.detach()), abs=1e-5)
    for (n, _), want in zip(named, torch.autograd.grad(ref, [p for _, p in named])):
        assert float(want.abs().max()) > 0, n
        assert torch.allclose(got[n], want, atol=1e-5, rtol=1e-4), n


def test_benchmark_lora_is_a_loadable_peft_checkpoint_and_reproducible(tiny_llama, tmp_path):
    import copy

    from peft import PeftModel

    from solstice.papers.dsire.benchmark import LoraJob, LoraTrainer

    tok = tiny_llama.tokenizer
    chunks = [tok(f"chunk {i} of the concept text " * 2, add_special_tokens=False)["input_ids"][:24] for i in range(3)]
    tr = LoraTrainer(copy.deepcopy(tiny_llama.model), tok, r=4, alpha=8, layers=[1], targets=["q_proj", "v_proj"])
    seed = LoraJob("c", 2, 0).seed()
    rec = tr.train(chunks, 2, seed, steps=4, batch_size=2, lr=1e-2, checkpoints=[2, 4], out=tmp_path / "a")
    assert rec["checkpoints"] == ["step2", "step4"]
    again = tr.train(chunks, 2, seed, steps=4, batch_size=2, lr=1e-2, checkpoints=[4], out=tmp_path / "b")
    f1 = spectral_features(read_adapter(tmp_path / "a" / "step4"))
    f2 = spectral_features(read_adapter(tmp_path / "b" / "step4"))
    assert all(np.allclose(f1[k], f2[k]) for k in f1) and rec["loss_last"] == again["loss_last"]
    assert np.all(f1["model.layers.1.self_attn.q_proj|BA"] > 0)
    loaded = PeftModel.from_pretrained(copy.deepcopy(tiny_llama.model), str(tmp_path / "a" / "step4"))
    sd = {n: p for n, p in loaded.named_parameters() if "lora_B" in n}
    assert sd and all(float(p.abs().sum()) > 0 for p in sd.values())


# -- users' adapters through the CLI ---------------------------------------------------------------------
def _write_adapters(root, ads, sizes, with_sizes=True):
    from safetensors.torch import save_file

    labels = {}
    for i, (ad, n) in enumerate(zip(ads, sizes)):
        d = root / f"m{i:02d}"
        d.mkdir(parents=True)
        t = {}
        for name, m in ad.modules.items():
            t[f"base_model.model.{name}.lora_A.weight"] = m.A.float().contiguous()
            t[f"base_model.model.{name}.lora_B.weight"] = m.B.float().contiguous()
        save_file(t, str(d / "adapter_model.safetensors"))
        (d / "adapter_config.json").write_text(json.dumps({"lora_alpha": 4, "r": 4}))
        labels[d.name] = {"size": n, "concept": ad.source.split("/")[1]}
    if with_sizes:
        (root / "sizes.json").write_text(json.dumps(labels))


def test_cli_sizes_a_users_adapters_against_a_reference(tmp_path):
    ads, sizes, _ = planted_adapters([1, 2, 3], 4, seed=1)
    _write_adapters(tmp_path / "ref", ads, sizes)
    new, new_sizes, _ = planted_adapters([1, 2, 3], 2, seed=9)
    _write_adapters(tmp_path / "mine", new, new_sizes)
    out = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-m", "solstice", "run", "dsire", "--set", f"reference={tmp_path / 'ref'}",
                        "--set", f"adapters={tmp_path / 'mine'}", "--out", str(out)],
                       env=cli_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads(next(out.rglob("metrics.json")).read_text())
    assert metrics["adapters_acc"]["value"] == 1.0 and metrics["n_adapters"]["value"] == 6
    assert next(out.rglob("predictions.csv")).read_text().count("\n") == 7


def test_cli_bad_adapter_folder_is_one_line_and_exit_2(tmp_path):
    ads, sizes, _ = planted_adapters([1, 2], 2, seed=1)
    _write_adapters(tmp_path / "ref", ads, sizes)
    from safetensors.torch import save_file

    (tmp_path / "mine" / "x").mkdir(parents=True)
    save_file({"m.q.lora_A.weight": torch.zeros(2, 3)}, str(tmp_path / "mine" / "x" / "adapter_model.safetensors"))
    r = subprocess.run([sys.executable, "-m", "solstice", "run", "dsire", "--set", f"reference={tmp_path / 'ref'}",
                        "--set", f"adapters={tmp_path / 'mine'}", "--out", str(tmp_path / "runs")],
                       env=cli_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "layer 'm.q' has no B" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "solstice", "run", "dsire", "--set", f"adapters={tmp_path / 'mine'}",
                        "--out", str(tmp_path / "runs")], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "reference" in r.stderr


@pytest.mark.slow
@needs_data
def test_a_killed_benchmark_build_continues_at_the_next_lora(tmp_path):
    from solstice.core.records import RunRecord
    from solstice.core.runner import run_paper

    sets = ["ranges={low: [1, 2]}", "n_concepts=2", "n_train_concepts=1", "n_splits=2", "top_layers=1",
            "chunk_tokens=16", "steps=2", "checkpoints=[1, 2]", "lora_r=2"]
    res = run_paper("dsire", scale="smoke", sets=sets, models=["target=tiny:llama"], out=tmp_path)
    run_dir = res.path
    rec = RunRecord(run_dir)
    rows = rec.load_samples()
    assert len(rows) == 4 and rec.read()["status"] == "completed"
    ad = run_dir / "artifacts" / "adapters"
    kept = {r["sample_id"]: (ad / r["sample_id"] / "step2" / "adapter_model.safetensors").stat().st_mtime_ns
            for r in rows[:2]}
    # simulate a kill after two LoRAs: the last two records and the later stages are gone
    lines = (run_dir / "samples.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "samples.jsonl").write_text("".join(lines[:2]))
    for f in (run_dir / "stages").glob("*.json"):
        if f.stem != "prefix_check":
            f.unlink()
    (run_dir / "metrics.json").unlink()
    rec.update(status="interrupted")
    again = run_paper("dsire", scale="smoke", sets=sets, models=["target=tiny:llama"], resume=run_dir)
    assert RunRecord(run_dir).read()["status"] == "completed" and len(RunRecord(run_dir).load_samples()) == 4
    for sid, mtime in kept.items():  # finished LoRAs were not retrained
        assert (ad / sid / "step2" / "adapter_model.safetensors").stat().st_mtime_ns == mtime
    assert json.loads((run_dir / "metrics.json").read_text())["n_loras"]["value"] == 4
    assert again.status == "completed"

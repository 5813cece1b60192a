"""Data-parallel training under torchrun: two Gloo ranks on CPU against one process.

Each launch is a real `torch.distributed.run` subprocess (2 processes, tiny random models), so the
launcher's environment, process-group start, DDP and the rank-0-only record are all exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_data

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["SOLSTICE_PLUGINS"] = "dist_worker:PAPER"
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env.update(extra)
    return env


def torchrun(*args: str, env: dict[str, str] | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(cmd, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def _load(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """One 2-rank launch of dist_worker.py: the loop variants, then a toytrain run (audited)."""
    out = tmp_path_factory.mktemp("two-ranks")
    env = _env(DIST_AUDIT_ROOT=str(out / "runs"), DIST_AUDIT_OUT=str(out))
    r = torchrun(str(TESTS / "dist_worker.py"), str(out), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


# -- (a) the generic loop: two ranks take the single-process step ---------------------------------------
def test_two_ranks_train_like_one_process_on_the_same_global_batch(launch, tmp_path):
    import torch

    import dist_worker

    ranks = [json.loads((launch / f"loop-rank{k}.json").read_text()) for k in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank reports the same global losses, norms and counts
    got = ranks[0]
    assert got["world"] == 2
    for name, *_ in dist_worker.VARIANTS:
        ref = dist_worker.train_variant(name, tmp_path)
        assert got[name]["target_tokens"] == ref.target_tokens and got[name]["tokens"] == ref.tokens
        assert got[name]["losses"] == pytest.approx(ref.losses, rel=1e-5, abs=1e-6)
        assert got[name]["grad_norms"] == pytest.approx(ref.grad_norms, rel=1e-4, abs=1e-6)
        a, b = _load(launch / f"{name}.safetensors"), _load(tmp_path / f"{name}.safetensors")
        assert set(a) == set(b) and not any(k.startswith("module.") for k in a)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    # the steps really moved the weights (the comparison above is not between two untouched models)
    from solstice.models.tiny import build_tiny

    fresh, _ = build_tiny("llama")
    w = _load(launch / "adamw_micro.safetensors")
    name = next(k for k in w if "q_proj" in k)
    assert float((w[name] - dict(fresh.named_parameters())[name].detach()).abs().max()) > 1e-3
    # a batch the ranks cannot share is one clear error, on every rank
    assert "does not split over 2 ranks" in got["odd_batch"]
    assert "leave a step of 1 for 2 ranks" in got["short_last_step"]


def test_reranker_under_two_ranks_equals_one_process(launch, tmp_path):
    """DPA-RAG's reranker training (CrossEncoder, multi-task loss, MGDA weights) on 2 ranks."""
    import shutil

    import numpy as np

    import dist_worker
    from solstice.training import reranker as rr

    ranks = [json.loads((launch / f"reranker-rank{k}.json").read_text()) for k in (0, 1)]
    assert ranks[0] == ranks[1]  # same logged (global) losses and MGDA weights on both ranks
    ce = tmp_path / "ce"
    shutil.copytree(launch / "tiny-ce", ce)
    pairs = [(r["query"], r["classification"]["text"]) for r in dist_worker.reranker_records(2, seed=5)]
    for w in ("sum", "mgda"):
        one = dist_worker.train_reranker_variant(ce, w, tmp_path).history
        two = ranks[0][w]
        assert len(one) == len(two) == 2
        for a, b in zip(one, two):
            assert set(a) == set(b) and {"weight_point", "weight_pair", "weight_contrast"} <= set(a)
            for k in a:
                # MGDA's min-norm weights divide by |g1 - g2|^2 and amplify float32 rounding of the summed
                # gradients (each rank encodes its own unique pairs); losses are held to 1e-4
                rel = 1e-3 if k.startswith("weight_") else 1e-4
                assert b[k] == pytest.approx(a[k], rel=rel, abs=1e-6), (w, k)
        s1 = rr.load_reranker(tmp_path / f"rr_{w}", max_length=32).predict(pairs, show_progress_bar=False)
        s2 = rr.load_reranker(launch / f"rr_{w}", max_length=32).predict(pairs, show_progress_bar=False)
        assert np.allclose(s1, s2, atol=1e-5), (w, s1, s2)
    # MGDA's weights were not the plain sum (the averaged task gradients were used)
    assert any(abs(h["weight_point"] - 1.0) > 1e-3 for h in ranks[0]["mgda"])


# -- (b) one run, written by rank 0 only ------------------------------------------------------------------
def test_rank_zero_alone_writes_the_run_and_its_checkpoints_load(launch, tmp_path, monkeypatch):
    import torch

    from solstice.core.records import RunRecord
    from solstice.models.loader import load_model

    results = [json.loads((launch / f"run-rank{k}.json").read_text()) for k in (0, 1)]
    assert [r["status"] for r in results] == ["completed", "completed"], results
    assert results[0]["path"] == results[1]["path"]  # both ranks worked on one directory
    runs = list((launch / "runs" / "toytrain").iterdir())
    assert len(runs) == 1  # one run, not one per rank
    run = runs[0]
    assert json.loads((launch / "audit-rank1.json").read_text()) == []  # rank 1 wrote nothing there
    rec = RunRecord(run).read()
    assert rec["status"] == "completed" and rec["distributed"]["world_size"] == 2
    assert rec["distributed"]["backend"] == "gloo"
    rows = RunRecord(run).load_samples()
    assert sorted(r["sample_id"] for r in rows) == [f"ex-{i}" for i in range(6)]  # each once
    assert RunRecord(run).verify_seal() == "intact"
    assert (run / "artifacts" / "summary.txt").is_file()
    # killed after the training stage and 4 of 6 scored examples, resumed on both ranks: the stage is
    # read (the checkpoint is not written again), the 2 missing examples are scored once
    assert [json.loads((launch / f"resume-rank{k}.json").read_text())["status"] for k in (0, 1)] == ["completed"] * 2
    assert [s["kind"] for s in rec["environments"]] == ["start", "resume"]
    ckpt = run / "artifacts" / "checkpoints" / "final.safetensors"
    assert ckpt.stat().st_mtime_ns == json.loads((launch / "ckpt-mtime.json").read_text())
    # the checkpoints: plain names, loadable as hf:<dir>, equal to the trained weights
    state = _load(run / "artifacts" / "checkpoints" / "final.safetensors")
    assert state and not any(k.startswith("module.") for k in state)
    loaded = load_model(f"hf:{run / 'artifacts' / 'model'}?device=cpu")
    params = dict(loaded.model.named_parameters())
    for k, v in state.items():
        torch.testing.assert_close(params[k].detach(), v)
    # one process on the same global batch gives the same run
    from solstice.core.runner import run_paper
    from solstice.models.loader import clear_model_cache

    clear_model_cache()  # a fresh tiny model, as in the launched processes (other tests train theirs in place)
    monkeypatch.setenv("SOLSTICE_PLUGINS", "dist_worker:PAPER")
    one = run_paper("toytrain", out=tmp_path / "one")
    assert one.status == "completed", one.error
    multi = RunRecord(run).read_metrics()
    for k, m in one.metrics.items():
        assert multi[k].value == pytest.approx(m.value, rel=1e-5), k
    ref = _load(one.path / "artifacts" / "checkpoints" / "final.safetensors")
    for k in ref:
        # AdamW (eps 1e-8) turns float summation noise in near-zero gradients into ~1e-5 differences;
        # a wrong split or loss scale would differ by a whole step (~lr = 5e-2)
        torch.testing.assert_close(state[k], ref[k], rtol=1e-3, atol=5e-5)


def test_nccl_without_cuda_and_a_bad_launch_are_one_line_and_exit_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    launch = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}
    base = [sys.executable, "-m", "solstice", "run", "toytrain", "--out", str(tmp_path / "runs")]
    r = subprocess.run([*base, "--dist-backend", "nccl"], env=_env(**launch), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nccl needs CUDA" in lines[0] and "Traceback" not in r.stderr
    r = subprocess.run(base, env=_env(**{**launch, "RANK": "5"}), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "inconsistent launch" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


def test_one_process_answers_as_rank_zero_of_one():
    from solstice.core import distributed

    assert distributed.launch_env() is None or os.environ.get("WORLD_SIZE") == "1"
    assert not distributed.active() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.split([1, 2, 3]) == [1, 2, 3]
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.main_writes(lambda: 7) == 7
    assert distributed.choose_backend("auto", True) == "nccl" and distributed.choose_backend("auto", False) == "gloo"


# -- (c) a paper's training under two ranks: MIGU's continual-learning chains ------------------------------
def _write_task(folder: Path, words: list[list[str]], labels: list[str], seed: int) -> str:
    import random

    rnd = random.Random(seed)
    folder.mkdir()
    rows = []
    for _ in range(40):
        lab = rnd.randrange(len(labels))
        rows.append({"sentence": " ".join(rnd.choice(words[lab]) for _ in range(3)), "label": labels[lab]})
    (folder / "labels.json").write_text(json.dumps(labels))
    (folder / "train.json").write_text(json.dumps(rows[:30]))
    (folder / "test.json").write_text(json.dumps(rows[30:]))
    return str(folder)


def test_migu_chains_under_two_ranks_equal_one_process(tmp_path):
    from solstice.core.records import RunRecord
    from solstice.core.runner import run_paper

    a = _write_task(tmp_path / "colours", [["red", "rose"], ["sky", "sea"]], ["warm", "cool"], 1)
    b = _write_task(tmp_path / "animals", [["cat", "dog"], ["oak", "fir"]], ["pet", "tree"], 2)
    sets = [f"orders=[[{a}, {b}]]", "seeds=[1]", "n_train=8", "n_test=6", "train_layers=1", "diagnostic_examples=0",
            "max_sentence_tokens=null", "lr=0.01", "batch_size=4", "methods=[migu]"]
    out = tmp_path / "runs"
    args = ["-m", "solstice", "run", "migu", "--model", "tiny:llama", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    r = torchrun(*args, env=_env(DIST_AUDIT_ROOT=str(out), DIST_AUDIT_OUT=str(tmp_path)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "audit-rank1.json").read_text()) == []
    (run,) = list((out / "migu").iterdir())
    rec = RunRecord(run).read()
    assert rec["status"] == "completed" and rec["distributed"]["world_size"] == 2
    assert not rec["warnings"]  # the frozen-prefix cache held under DDP too
    from solstice.models.loader import clear_model_cache

    clear_model_cache()  # MIGU trains the loaded model in place: start from a fresh one, as the ranks did
    one = run_paper("migu", scale="smoke", models=["tiny:llama"], sets=sets, out=tmp_path / "one")
    assert one.status == "completed", one.error
    multi = RunRecord(run).read_metrics()
    assert set(multi) == set(one.metrics)
    for k, m in one.metrics.items():
        assert multi[k].value == pytest.approx(m.value, abs=1e-9), k
    for stage in ("o0-shared-s1__stage0", "o0-migu-s1__stage1"):
        x = json.loads((run / "stages" / f"{stage}.json").read_text())
        y = json.loads((one.path / "stages" / f"{stage}.json").read_text())
        assert x["train"]["loss_last"] == pytest.approx(y["train"]["loss_last"], rel=1e-5)
        assert x["train"]["tokens"] == y["train"]["tokens"]
        assert x["eval"] == y["eval"]
        assert x["migu"] == y["migu"]  # same masked steps and kept fraction


# -- the MoE upcycling's training under two ranks (routed experts: DDP with unused parameters) ------------
@needs_data
@pytest.mark.slow
def test_moe_upcycling_training_under_two_ranks_equals_one_process(tmp_path):
    from solstice.core.records import RunRecord
    from solstice.core.runner import run_paper

    sets = ["train_steps=3", "train_batch=4", "layers=null", "static_layers=null", "train_tokens=32",
            "n_sentences=3", "hungarian_pairs=1",
            "aux_loss_coef=0"]  # the router loss is per batch: over two half-batches it differs by definition
    out = tmp_path / "runs"
    args = ["-m", "solstice", "run", "moe_closer_look", "--model", "tiny:llama", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    r = torchrun(*args, env=_env(DIST_AUDIT_ROOT=str(out), DIST_AUDIT_OUT=str(tmp_path)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "audit-rank1.json").read_text()) == []
    (run,) = list((out / "moe_closer_look").iterdir())
    from solstice.models.loader import clear_model_cache

    clear_model_cache()  # a fresh tiny model, as in the launched processes
    one = run_paper("moe_closer_look", models=["tiny:llama"], sets=sets, out=tmp_path / "one")
    assert one.status == "completed", one.error
    multi = RunRecord(run).read_metrics()
    for k, m in one.metrics.items():
        assert multi[k].value == pytest.approx(m.value, rel=1e-4, abs=1e-5), k
    t2 = json.loads((run / "artifacts" / "model.json").read_text())["training"]
    t1 = json.loads((one.path / "artifacts" / "model.json").read_text())["training"]
    assert t2["steps"] == t1["steps"] == 3 and t2["tokens"] == t1["tokens"]
    assert t2["loss_last"] == pytest.approx(t1["loss_last"], rel=1e-5)
    assert t2["loss_last"] != t1["loss_first"]  # the experts and routers trained


# -- ARTE's DPO: the Trainer route, sharded by accelerate under the same launch ---------------------------
@pytest.mark.slow
def test_dpo_trainer_under_two_ranks_keeps_the_global_batch(tmp_path):
    import dist_worker

    r = torchrun(str(TESTS / "dist_worker.py"), str(tmp_path), "dpo")
    assert r.returncode == 0, r.stderr[-3000:]
    two = [json.loads((tmp_path / f"dpo-rank{k}.json").read_text()) for k in (0, 1)]
    one = dist_worker.dpo_losses(tmp_path / "one")
    assert len(two[0]) == len(one) == 2  # 8 pairs at a global batch of 4: two steps, not one
    assert two[0] == pytest.approx(one, rel=1e-5)
    assert one[1] != pytest.approx(one[0], abs=1e-6)  # the second step saw the updated policy


# -- DSiRe's LoRA benchmark under two ranks (SmolLM2-135M, the smoke preset) --------------------------------
@needs_data
@pytest.mark.slow
def test_dsire_smoke_under_two_ranks_equals_one_process(tmp_path):
    from solstice.core.records import RunRecord
    from solstice.core.runner import run_paper

    out = tmp_path / "runs"
    r = torchrun("-m", "solstice", "run", "dsire", "--out", str(out), "--dist-backend", "gloo",
                 env=_env(DIST_AUDIT_ROOT=str(out), DIST_AUDIT_OUT=str(tmp_path)), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "audit-rank1.json").read_text()) == []
    (run,) = list((out / "dsire").iterdir())
    from solstice.models.loader import clear_model_cache

    clear_model_cache()  # DSiRe adds LoRA layers to the loaded model in place: a fresh one, and none left behind
    try:
        one = run_paper("dsire", out=tmp_path / "one")
    finally:
        clear_model_cache()
    assert one.status == "completed", one.error
    multi = RunRecord(run).read_metrics()
    for k, m in one.metrics.items():
        if k != "seconds_per_lora":  # wall time
            assert multi[k].value == pytest.approx(m.value, rel=1e-6, abs=1e-9), k
    rows = {x["sample_id"]: x for x in RunRecord(run).load_samples()}
    for x in RunRecord(one.path).load_samples():
        assert rows[x["sample_id"]]["loss_last"] == pytest.approx(x["loss_last"], rel=1e-5)
        assert rows[x["sample_id"]]["checkpoints"] == x["checkpoints"]

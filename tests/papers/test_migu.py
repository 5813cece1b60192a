"""MIGU's gradient masking, checked on tiny random Llama models (no model quality involved)."""

from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")

from solstice.errors import ConfigError  # noqa: E402
from solstice.training.data import SupervisedExample, collate, encode_supervised  # noqa: E402
from solstice.training.loop import HookedOptimizer, TrainConfig, train  # noqa: E402
from solstice.training.migu import MIGU, kept_rows, magnitude_mask  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    from solstice.models.tiny import build_tiny

    model, tok = build_tiny("llama")
    return model, tok


def examples(n=16, seed=0):
    import random

    rnd = random.Random(seed)
    words = ["cat", "dog", "red", "blue", "sun", "moon", "tree", "river"]
    out = []
    for _ in range(n):
        k = rnd.randint(2, 7)  # different lengths, so batches carry padding
        text = " ".join(rnd.choice(words) for _ in range(k))
        out.append(SupervisedExample(f"Text: {text}\nAnswer:", " yes" if "red" in text else " no"))
    return out


def fresh(tiny):
    model, tok = tiny
    return copy.deepcopy(model), tok


def batch_of(tok, exs, side="right"):
    return collate(encode_supervised(tok, exs, max_length=64), tok.pad_token_id, side=side)


def backward(model, b):
    model.train()
    out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
    out.loss.backward()


def active(model, **kw):
    """A MIGU past its first task, attached."""
    m = MIGU(model, **kw).attach()
    m.task_start()
    m.task_start()
    return m


# -- the threshold -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [576, 192, 1536, 7, 2])
@pytest.mark.parametrize("q", [0.0, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_kept_rows_match_torch_quantile(n, q):
    g = torch.Generator().manual_seed(n)
    m = torch.rand(n, generator=g)
    mask = magnitude_mask(m, q)
    assert torch.equal(mask, m >= torch.quantile(m, q))
    assert int(mask.sum()) == kept_rows(n, q) == n - math.ceil(q * (n - 1) - 1e-9)


def test_spec_counts_for_smollm2_widths():
    assert [kept_rows(n, 0.7) for n in (576, 192, 1536)] == [173, 58, 461]


# -- masking -----------------------------------------------------------------------------------
def test_masked_rows_have_exactly_zero_gradient_and_kept_rows_are_untouched(tiny):
    model, tok = fresh(tiny)
    b = batch_of(tok, examples(8))
    ref = copy.deepcopy(model)
    backward(ref, b)
    migu = active(model, threshold=0.7)
    backward(model, b)
    masks = migu.compute_masks()
    migu.apply_masks(masks)
    ref_params = dict(ref.named_parameters())
    assert len(masks) == len(migu.units) > 0
    for u in migu.units:
        keep = masks[u.name]
        g, g0 = u.weight.grad, ref_params[u.name + ".weight"].grad
        assert (g[~keep] == 0).all()
        assert torch.equal(g[keep], g0[keep])  # bit-identical
        assert int(keep.sum()) == kept_rows(u.rows, 0.7)
        assert g0[~keep].abs().sum() > 0  # the mask did remove something
    migu.detach()


def test_masked_rows_do_not_change_with_sgd_and_with_adamw_update_mode(tiny):
    for opt_name, mask_mode in (("sgd", "grad"), ("adamw", "update")):
        model, tok = fresh(tiny)
        migu = MIGU(model, 0.7, mask_mode=mask_mode)
        migu.task = 0  # the next train() is the second task
        before = {u.name: u.weight.detach().clone() for u in migu.units}
        masks_seen = []
        orig = migu.apply_masks

        def spy(masks, orig=orig, masks_seen=masks_seen):
            masks_seen.append({k: v.clone() for k, v in masks.items()})
            orig(masks)

        migu.apply_masks = spy
        train(model, tok, examples(8), TrainConfig(lr=1e-2, batch_size=8, optimizer=opt_name, max_grad_norm=None),
              hooks=[migu])
        assert len(masks_seen) == 1
        for u in migu.units:
            keep = masks_seen[0][u.name]
            assert torch.equal(u.weight[~keep], before[u.name][~keep]), (opt_name, u.name)
            assert not torch.equal(u.weight[keep], before[u.name][keep])


def test_adamw_grad_mode_still_moves_masked_rows_through_momentum(tiny):
    # faithful to the reference: masking gradients is not freezing rows under Adam
    model, tok = fresh(tiny)
    migu = MIGU(model, 0.7)
    cfg = TrainConfig(lr=1e-2, batch_size=4, optimizer="adamw", max_grad_norm=None)
    migu.task = 0
    before = {u.name: u.weight.detach().clone() for u in migu.units}
    train(model, tok, examples(16), cfg, hooks=[migu])
    last = {u.name: u.mask for u in migu.units}
    moved = sum(int((~last[u.name] & (u.weight != before[u.name]).any(1)).sum()) for u in migu.units)
    assert moved > 0


def test_threshold_zero_is_plain_finetuning_bit_for_bit(tiny):
    cfg = TrainConfig(lr=1e-3, batch_size=4, seed=3)
    a, tok = fresh(tiny)
    b, _ = fresh(tiny)
    train(a, tok, examples(12), cfg)
    migu = MIGU(b, 0.0)
    migu.task = 0
    train(b, tok, examples(12), cfg, hooks=[migu])
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_first_task_is_unmasked_and_second_is_masked(tiny):
    cfg = TrainConfig(lr=1e-3, batch_size=4, seed=1)
    a, tok = fresh(tiny)
    b, _ = fresh(tiny)
    train(a, tok, examples(8), cfg)
    migu = MIGU(b, 0.7)
    train(b, tok, examples(8), cfg, hooks=[migu])  # the first task
    assert migu.task == 0 and migu.masked_steps == 0
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    train(a, tok, examples(8, seed=1), cfg)
    train(b, tok, examples(8, seed=1), cfg, hooks=[migu])  # the second task
    assert migu.task == 1 and migu.masked_steps == 2
    assert abs(migu.stats()["kept_fraction"] - 0.3) < 0.02
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c, _ = fresh(tiny)
    m2 = MIGU(c, 0.7, first_task_unmasked=False)
    train(c, tok, examples(8), cfg, hooks=[m2])
    assert m2.masked_steps == 2


def test_micro_batches_give_the_mask_of_the_whole_batch(tiny):
    model, tok = fresh(tiny)
    exs = examples(8, seed=5)
    migu = active(model, threshold=0.7)
    backward(model, batch_of(tok, exs))
    whole = {u.name: u.m.clone() for u in migu.units}
    m_whole = migu.compute_masks()
    migu.reset()
    model.zero_grad()
    for part in (exs[:4], exs[4:]):
        backward(model, batch_of(tok, part))
    for u in migu.units:
        assert torch.allclose(u.m, whole[u.name], rtol=1e-5, atol=1e-5)
    m_parts = migu.compute_masks()
    assert all(torch.equal(m_whole[k], m_parts[k]) for k in m_whole)
    # with padding included the two differ (the whole batch pads the short half further)
    migu.detach()
    m2 = active(model, threshold=0.7, include_padding=True)
    backward(model, batch_of(tok, exs))
    with_pad = {u.name: u.m.clone() for u in m2.units}
    assert any(not torch.allclose(with_pad[k], whole[k]) for k in whole)
    m2.detach()


def test_left_and_right_padding_give_the_same_magnitudes(tiny):
    model, tok = fresh(tiny)
    exs = examples(6, seed=2)
    migu = active(model, threshold=0.7)
    sums = []
    for side in ("right", "left"):
        migu.reset()
        b = batch_of(tok, exs, side)
        model.train()
        model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], position_ids=b["position_ids"])
        sums.append({u.name: u.m.clone() for u in migu.units})
    assert all(torch.allclose(sums[0][k], sums[1][k], rtol=1e-4, atol=1e-4) for k in sums[0])
    migu.detach()


def test_accumulators_reset_hooks_removed_and_eval_does_not_accumulate(tiny):
    model, tok = fresh(tiny)
    n_hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    migu = MIGU(model, 0.7)
    migu.task = 0
    seen = []

    class Probe:
        def on_train_begin(self, model, optimizer): ...
        def on_micro_batch(self, model, batch): ...
        def before_clip(self, model):
            seen.append(sum(float(u.m.sum()) for u in migu.units))
        def after_step(self, model, optimizer):
            seen.append(sum(float(u.m.sum()) for u in migu.units))
        def on_train_end(self, model): ...

    train(model, tok, examples(8), TrainConfig(lr=1e-3, batch_size=4), hooks=[migu, Probe()])
    assert seen[0] > 0 and seen[1] == 0 and seen[2] > 0 and seen[3] == 0  # filled, then reset each step
    assert not migu.attached
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == n_hooks
    with migu:
        b = batch_of(tok, examples(4))
        model.eval()
        with torch.no_grad():
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        assert all(u.m is None or float(u.m.sum()) == 0 for u in migu.units)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == n_hooks


def test_clipping_sees_the_masked_gradients(tiny):
    model, tok = fresh(tiny)
    migu = MIGU(model, 0.7)
    migu.task = 0
    params = [p for p in model.parameters() if p.requires_grad]
    norms = {}

    class After:
        def on_train_begin(self, model, optimizer): ...
        def on_micro_batch(self, model, batch): ...
        def before_clip(self, model):
            norms["pre"] = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
        def after_step(self, model, optimizer):
            norms["post"] = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
        def on_train_end(self, model): ...

    res = train(model, tok, examples(8), TrainConfig(lr=1e-3, batch_size=8, max_grad_norm=1e-3),
                hooks=[migu, After()])
    # the norm reported by clip_grad_norm_ is the masked one, and clipping was active
    assert res.grad_norms[0] == pytest.approx(norms["pre"], rel=1e-5)
    assert norms["pre"] > 1e-3 and norms["post"] == pytest.approx(1e-3, rel=1e-3)


def test_hooked_optimizer_masks_before_clipping(tiny):
    model, tok = fresh(tiny)
    migu = active(model, threshold=0.7)
    opt = HookedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), [migu], max_grad_norm=1e-3)
    before = {u.name: u.weight.detach().clone() for u in migu.units}
    backward(model, batch_of(tok, examples(8)))
    opt.step()
    total = 0.0
    for u in migu.units:
        assert torch.equal(u.weight[~u.mask], before[u.name][~u.mask])
        total += float(((u.weight.detach() - before[u.name]) ** 2).sum())
    assert float(migu.units[0].m.sum()) == 0  # reset after the step
    opt.zero_grad()
    migu.detach()


def test_random_mode_keeps_the_same_count_and_differs_from_magnitude(tiny):
    model, tok = fresh(tiny)
    mag = active(model, threshold=0.7)
    backward(model, batch_of(tok, examples(8)))
    m_mag = mag.compute_masks()
    mag.detach()
    rnd = active(model, threshold=0.7, mode="random", seed=1)
    m_rnd = rnd.compute_masks()
    m_rnd2 = rnd.compute_masks()
    for u in rnd.units:
        assert int(m_rnd[u.name].sum()) == int(m_mag[u.name].sum()) == kept_rows(u.rows, 0.7)
    assert any(not torch.equal(m_rnd[k], m_mag[k]) for k in m_mag)
    assert any(not torch.equal(m_rnd[k], m_rnd2[k]) for k in m_rnd)  # a new mask every step
    rnd.detach()


def test_tied_head_excluded_and_regex_filters(tiny):
    model, tok = fresh(tiny)
    names = [u.name for u in MIGU(model).units]
    assert "lm_head" in names  # the tiny model's head is not tied
    model.lm_head.weight = model.model.embed_tokens.weight  # tie it
    assert "lm_head" not in [u.name for u in MIGU(model).units]
    assert "lm_head" in [u.name for u in MIGU(model, exclude_tied_head=False).units]
    only_q = MIGU(model, include=r"q_proj$")
    assert [u.name.split(".")[-1] for u in only_q.units] == ["q_proj", "q_proj"]
    assert all("mlp" not in u.name for u in MIGU(model, exclude=r"\.mlp\.").units)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError):
        MIGU(model)


def test_bad_arguments_are_config_errors(tiny):
    model, _ = fresh(tiny)
    for kw in ({"threshold": 1.5}, {"mode": "nope"}, {"mask_mode": "x"}, {"lora_b": "y"}):
        with pytest.raises(ConfigError):
            MIGU(model, **kw)


def test_units_without_gradient_are_counted_not_kept_and_all_missing_is_an_error(tiny):
    """ZeRO-3 / FSDP leave module weights without .grad at the optimizer step: those units are
    counted and left out of kept_fraction; a masked step where no unit has a gradient is an error."""
    model, tok = fresh(tiny)
    migu = active(model)
    backward(model, batch_of(tok, examples(8)))
    gone = migu.units[: len(migu.units) // 2]
    for u in gone:
        u.weight.grad = None
    migu.before_clip(model)
    st = migu.stats()
    assert st["units_without_grad"] == len(gone)
    kept = [u for u in migu.units[len(gone):]]
    want = sum(int(u.mask.sum()) for u in kept) / sum(u.rows for u in kept)
    assert st["kept_fraction"] == pytest.approx(want)
    migu.after_step(model)
    backward(model, batch_of(tok, examples(8)))
    for u in migu.units:
        u.weight.grad = None
    with pytest.raises(ConfigError, match="no gradient|has a gradient"):
        migu.before_clip(model)
    migu.detach()


def test_tied_head_is_found_through_a_real_ddp_wrapper(tmp_path):
    """DistributedDataParallel (gloo, one process, CPU) hides get_output_embeddings; the tied head
    must still be excluded."""
    import torch.distributed as dist
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        assert not hasattr(ddp, "get_output_embeddings")
        names = [u.name for u in MIGU(ddp).units]
        assert names and all(n.startswith("module.") for n in names)
        assert "module.lm_head" not in names
        assert "module.lm_head" in [u.name for u in MIGU(ddp, exclude_tied_head=False).units]
    finally:
        dist.destroy_process_group()

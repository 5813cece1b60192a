"""MoE view, static/dynamic analyses and upcycling on tiny random models (seconds, CPU)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from solstice.analysis import moe_dynamic as D  # noqa: E402
from solstice.analysis import moe_static as S  # noqa: E402
from solstice.errors import CapabilityError, ConfigError  # noqa: E402
from solstice.models.moe import moe_layers, recording  # noqa: E402
from solstice.models.tiny import build_tiny  # noqa: E402
from solstice.models.upcycle import upcycle  # noqa: E402

TEXT = "As an open source alternative to closed models, the experts route tokens."
MOE_KINDS = ["mixtral", "qwen2_moe", "olmoe"]


@pytest.fixture(scope="module")
def tiny():
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = build_tiny(kind)
        return cache[kind]
    return get


def _ids(tok):
    return tok(TEXT, return_tensors="pt").input_ids


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("kind", MOE_KINDS)
def test_hand_topk_sum_equals_block_output(tiny, kind):
    model, tok = tiny(kind)
    layers = moe_layers(model)
    assert len(layers) == 2
    rec = D.all_experts(model, layers, _ids(tok))
    assert rec.recombination_error() < 1e-5
    # the routing rule read from the model matters: flipping renormalisation breaks the rebuild
    # for Qwen2-MoE/OLMoE (no renorm) and Mixtral (renorm)
    layer = layers[0]
    layer.renormalize = not layer.renormalize
    try:
        with recording([layer]) as r, torch.no_grad():
            model(_ids(tok))
        assert (layer.combine(r.inputs[0]) - r.outputs[0]).abs().max().item() > 1e-4
    finally:
        layer.renormalize = not layer.renormalize


def test_routing_rules_and_shared_experts_read_from_model(tiny):
    mix = moe_layers(tiny("mixtral")[0])[0]
    qwen = moe_layers(tiny("qwen2_moe")[0])[0]
    olmoe = moe_layers(tiny("olmoe")[0])[0]
    assert (mix.top_k, mix.renormalize, mix.num_experts, len(mix.shared)) == (2, True, 4, 0)
    assert (qwen.top_k, qwen.renormalize, len(qwen.shared)) == (2, False, 1)
    assert (olmoe.num_experts, olmoe.renormalize, mix.fused) == (8, False, True)
    wg, wu, wd = qwen.expert_weights(1)
    assert wg.shape == wu.shape == (48, 32) and wd.shape == (32, 48)


def test_per_expert_module_layout_gives_same_weights(tiny):
    """An unfused (per-expert ModuleList with w1/w3/w2) layout is read the same way."""
    model, _ = tiny("mixtral")
    fused = moe_layers(model)[0]
    experts = torch.nn.ModuleList()
    for e in range(fused.num_experts):
        g, u, d = fused.expert_weights(e)
        m = torch.nn.Module()
        m.w1, m.w3, m.w2 = (torch.nn.Linear(w.shape[1], w.shape[0], bias=False) for w in (g, u, d))
        with torch.no_grad():
            m.w1.weight.copy_(g), m.w3.weight.copy_(u), m.w2.weight.copy_(d)
        m.act_fn = fused.act
        experts.append(m)
    block = torch.nn.Module()
    block.gate, block.experts = fused.block.gate, experts
    from solstice.models.moe import _as_layer
    unfused = _as_layer(0, block, model.config)
    assert unfused is not None and not unfused.fused
    x = torch.randn(5, 32)
    assert torch.allclose(unfused.expert_outputs(x), fused.expert_outputs(x))


def test_dense_model_is_a_capability_error(tiny):
    with pytest.raises(CapabilityError, match="dense"):
        moe_layers(tiny("llama")[0])


def test_no_hook_left_behind_even_on_error(tiny):
    model, tok = tiny("mixtral")
    before = _hooks(model)
    D.all_experts(model, moe_layers(model), _ids(tok))
    assert _hooks(model) == before
    with pytest.raises(RuntimeError):
        with recording(moe_layers(model)):
            assert _hooks(model) == before + 2
            raise RuntimeError("boom")
    assert _hooks(model) == before


def test_hungarian_recovers_planted_permutation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(64, 16)).astype(np.float32)
    perm = rng.permutation(64)
    m = S.hungarian_match(a, a[perm], chunk=10)  # chunking must not change the answer
    assert np.array_equal(perm[m.permutation], np.arange(64))
    assert m.reordered_cosine == pytest.approx(1.0, abs=1e-6)
    assert m.raw_cosine < 0.5
    tau = S.hungarian_match(a, a).kendall_tau
    assert tau == pytest.approx(1.0) and S.hungarian_match(a, a).raw_cosine == pytest.approx(1.0, abs=1e-6)


def test_upcycled_permute_is_recovered_and_copy_is_identical(tiny):
    dense, _ = tiny("llama")
    moe, info = upcycle(dense, experts=4, init="permute", seed=3)
    layer = moe_layers(moe)[1]
    sims = S.matrix_similarity(layer)
    assert np.abs(sims["gate"][~np.eye(4, dtype=bool)]).max() < 0.2
    for proj in S.PROJECTIONS:
        match = S.reorder_similarity(layer, proj, [(0, 2)])[(0, 2)]
        assert match.reordered_cosine == pytest.approx(1.0, abs=1e-5)
        p0, p2 = info.permutations[1][0], info.permutations[1][2]  # expert e's neuron i = dense p_e[i]
        assert np.array_equal(p2.numpy()[match.permutation], p0.numpy())
    copy, _ = upcycle(dense, experts=4, init="copy")
    assert np.allclose(S.matrix_similarity(moe_layers(copy)[0])["up"], 1.0)
    # neuron-averaged similarity is permutation-invariant
    assert np.allclose(S.neuron_mean_similarity(layer)["down"], 1.0)


@pytest.mark.parametrize("init", ["copy", "permute"])
def test_upcycled_logits_equal_dense_at_init(tiny, init):
    dense, tok = tiny("llama")
    moe, _ = upcycle(dense, experts=8, top_k=2, init=init, router_std=0.5)
    with torch.no_grad():
        a, b = dense(_ids(tok)).logits, moe(_ids(tok)).logits
    assert (a - b).abs().max().item() < 1e-5
    noisy, _ = upcycle(dense, experts=8, init=init, noise=0.05)
    with torch.no_grad():
        assert (noisy(_ids(tok)).logits - a).abs().max().item() > 1e-5


def test_upcycled_checkpoint_loads_with_hf(tiny, tmp_path):
    from solstice.models.loader import load_model

    dense, tok = tiny("llama")
    moe, _ = upcycle(dense, experts=4, init="permute", router_std=0.3)
    moe.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = load_model(f"hf:{tmp_path}")
    from solstice.models.base import unwrap
    hf = unwrap(loaded).model
    with torch.no_grad():
        assert torch.allclose(hf(_ids(tok)).logits.float(), moe(_ids(tok)).logits, atol=1e-4)
    assert moe_layers(hf)[0].top_k == 2


def test_regression_r2_one_on_planted_and_triangle_length():
    x = np.linspace(-1, 1, 28)
    assert S.regress(x, x).r2 == pytest.approx(1.0)
    assert S.regress(x, 3 * x + 1).slope == pytest.approx(3.0)
    assert S.regress(x, np.zeros_like(x)).r2 == 0.0  # constant Y: no fit, documented
    assert len(S.lower_triangle(np.ones((8, 8)))) == 28


def test_gate_regression_r2_one_when_experts_mirror_router(tiny):
    """Plant W_gate rows' means equal to the router rows: gate R² = 1 in every layer."""
    model, _ = tiny("olmoe")
    layers = moe_layers(model)
    with torch.no_grad():
        for layer in layers:
            f = layer.experts.gate_up_proj.shape[1] // 2
            layer.experts.gate_up_proj[:, :f] = layer.router_weight[:, None, :].expand(-1, f, -1).clone()
    reg = S.gate_regression(layers)
    assert reg.mean_r2()["gate"] == pytest.approx(1.0)
    assert all(r.n == 28 for r in reg.per_layer["gate"])


def test_rank_counts_margins_and_angular_similarity(tiny):
    model, tok = tiny("olmoe")
    rec = D.all_experts(model, moe_layers(model), _ids(tok))
    rc = D.rank_counts(rec)
    T, L, E = rec.tokens, len(rec.layers), 8
    assert rc.cases == T * L
    assert (rc.counts.sum(0) == T * L).all() and (rc.counts.sum(1) == T * L).all()
    assert rc.counts.sum() == E * T * L
    sim = D.output_similarity(rec)
    for m in sim.maps:
        assert m.min() >= 0 and m.max() <= 1 + 1e-12
        assert np.allclose(np.diag(m), 1.0, atol=1e-6)
    v = np.array([[1.0, 2.0]])
    assert D.angular_similarity(v, -v)[0] == pytest.approx(0.0, abs=1e-6) and D.angular_similarity(v, v)[0] == pytest.approx(1.0, abs=1e-6)
    stats = D.routing_stats(rec)
    assert all(abs(x.sum() - 1) < 1e-12 for x in stats.load)
    w = D.chosen_weights(rec.layers[0])
    assert ((w > 0).sum(1) <= 2).all()


def test_streamed_layer_matches_model(tiny, tmp_path):
    model, _ = tiny("mixtral")
    model.save_pretrained(tmp_path)
    files = sorted(tmp_path.glob("*.safetensors"))
    live = moe_layers(model)[1]
    streamed = S.StreamedLayer(files, 1)
    for e in range(4):
        for a, b in zip(streamed.expert_weights(e), live.expert_weights(e)):
            assert np.allclose(a, b.numpy())
    assert np.allclose(S.matrix_similarity(streamed)["down"], S.matrix_similarity(live)["down"])


def test_training_moe_only_moves_experts_and_routers_not_the_rest(tiny):
    from solstice.models.upcycle import train_only_moe
    from solstice.training.loop import TrainConfig, train

    dense, tok = tiny("llama")
    moe, _ = upcycle(dense, experts=4, init="copy", noise=0.01, router_std=0.1)
    before = {k: v.clone() for k, v in moe.state_dict().items()}
    n = train_only_moe(moe)
    assert n == sum(p.numel() for k, p in moe.named_parameters() if ".mlp." in k)
    ids = tok(TEXT * 3).input_ids
    rows = [{"input_ids": ids[i:i + 32], "labels": ids[i:i + 32]} for i in range(0, len(ids) - 32, 32)]
    res = train(moe, tok, rows, TrainConfig(lr=1e-3, batch_size=2, max_steps=3))
    assert res.steps == 3 and all(np.isfinite(res.losses))
    after = moe.state_dict()
    assert not torch.equal(before["model.layers.0.mlp.gate.weight"], after["model.layers.0.mlp.gate.weight"])
    assert not torch.equal(before["model.layers.1.mlp.experts.down_proj"], after["model.layers.1.mlp.experts.down_proj"])
    assert torch.equal(before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"])


def test_streamed_flat_cosine_equals_the_stacked_cosine_matrix():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((37, 11))
    mats = [base + 0.3 * rng.standard_normal((37, 11)) for _ in range(4)] + [np.zeros((37, 11))]
    want = S.cosine_matrix(np.stack([m.ravel() for m in mats]))
    for chunk in (1, 5, 37, 100):  # chunks that do and do not divide the rows
        assert np.allclose(S.flat_cosine_matrix(mats, chunk_rows=chunk), want, atol=1e-12)
    half = [m.astype(np.float16) for m in mats]  # stored dtype of a streamed checkpoint
    assert np.allclose(S.flat_cosine_matrix(half), S.cosine_matrix(np.stack([m.astype(np.float64).ravel() for m in half])))
    assert S.flat_cosine_matrix(mats)[4].tolist() == [0.0] * 5  # a zero matrix has cosine 0 with everything
    with pytest.raises(ConfigError):
        S.flat_cosine_matrix([np.ones((2, 3)), np.ones((3, 2))])

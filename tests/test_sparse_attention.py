"""MoA sparse attention in the model layer: span rule, masks, plans, backends, per-head cache.
Tiny random Llama models; no model quality involved."""

from __future__ import annotations

import json
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from solstice.errors import CapabilityError, ConfigError  # noqa: E402
from solstice.models import sparse_attention as sa  # noqa: E402
from solstice.models.kv import cache_kwargs  # noqa: E402
from solstice.models.sparse_cache import PerHeadCache  # noqa: E402
from solstice.models.tiny import build_tiny  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny("llama")
    return model, tok


def _batch(seed: int = 0, b: int = 2, t: int = 200, pads=(37, 0)):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 250, (b, t), generator=g)
    mask = torch.ones_like(ids)
    for r, p in enumerate(pads[:b]):
        mask[r, :p] = 0
    return ids, mask


def _full_plan(model):
    sh = sa.model_shape(model)
    return sa.SparsePlan.uniform(1e9, 0.0, sh["num_layers"], sh["num_kv_heads"], sh["num_heads"] // sh["num_kv_heads"])


# -- span rule -------------------------------------------------------------------------------
def test_span_golden_values():
    assert sa.span(0, 0.5, 4096) == 2048
    assert sa.span(0, 0.0, 4096) == 128                  # clamped up to 128
    assert sa.span(100, 0.0, 4096) == 128
    assert sa.span(129, 0.0, 4096) == 192                # rounded up to a multiple of 64
    assert sa.span(8192, 0.0, 4096) == 4096              # clamped to N
    assert sa.span(0, 0.0, 100) == 100                   # short input: dense
    assert sa.span(-1024, 0.875, 16384) == 13312
    assert sa.density(0, 0.25, 4096) == 0.25


def _brute_row(real_row, s, i):
    """Python loop of the rule for one query row, for comparison."""
    ranks, c = [], 0
    for j in range(len(real_row)):
        ranks.append(c if real_row[j] else -1)
        c += int(real_row[j])
    sink, local = min(s, 64), s - min(s, 64)
    return [bool(real_row[j]) and j <= i and (ranks[j] < sink or ranks[i] - ranks[j] < local)
            for j in range(len(real_row))]


def test_mask_rows_keep_min_i1_s_and_the_sink_is_the_first_64_real_tokens():
    rng = random.Random(0)
    for _ in range(4):
        n = rng.randint(150, 330)
        pads = [rng.randint(0, 40), 0]
        real = torch.ones(2, n, dtype=torch.bool)
        for r, p in enumerate(pads):
            real[r, :p] = False
        rules = [(rng.choice([-256, 0, 64, 200]), rng.choice([0.0, 0.25, 0.5, 0.875])) for _ in range(3)]
        spans = torch.tensor([[sa.span(a, b, int(real[r].sum())) for a, b in rules] for r in range(2)])
        q_pos = torch.arange(n)
        m = sa.window_mask(real, q_pos, spans)
        for r in range(2):
            for g in range(3):
                for i in rng.sample(range(n), 12):
                    assert m[r, g, i].tolist() == _brute_row(real[r].tolist(), int(spans[r, g]), i)
        for r, p in enumerate(pads):
            for g in range(3):
                s = int(spans[r, g])
                counts = m[r, g, p:].sum(-1)
                expect = torch.clamp(torch.arange(1, n - p + 1), max=s)
                assert torch.equal(counts, expect)                     # min(i+1, S) keys per real row
                sink_cols = m[r, g, p + 64 :, p : p + 64]
                assert bool(sink_cols.all())                            # the first 64 real tokens, always
                assert not bool(m[r, g, :, :p].any())                   # never a pad key
                if s < n - p and s > 64:
                    row = m[r, g, -1]
                    assert not bool(row[p + 64 : n - (s - 64)].any())   # nothing between sink and band


# -- plans -----------------------------------------------------------------------------------
def test_plan_json_round_trip_per_head_and_per_kv(tmp_path):
    plan = sa.SparsePlan(((0.0, 512.0, -256.0), (128.0, 0.0, 0.0)), ((0.125, 0.0, 0.875), (0.5, 0.25, 0.25)), 3)
    for per in ("head", "kv"):
        p = tmp_path / f"{per}.json"
        plan.save(p, per=per)
        back = sa.SparsePlan.load(p, num_layers=2, num_heads=9, num_kv_heads=3)
        assert back == plan
    heads = plan.to_json("head")
    assert len(heads["alphas"][0]) == 9 and heads["alphas"][0][3:6] == [512.0] * 3


def test_gqa_mapping_query_head_4_lands_on_kv_head_1():
    from solstice.papers.moa.influence import to_units

    pooled = torch.zeros(2, 9, 4, 4).numpy()
    pooled[1, 4] = 1.0
    units = to_units(pooled, n_rep=3)
    nonzero = {int(u) for u in (units.reshape(6, -1).sum(1) > 0).nonzero()[0]}
    assert nonzero == {1 * 3 + 1}                                       # layer 1, KV head 4 // 3 = 1
    assert sa.SparsePlan.uniform(0, 0.5, 1, 3, 3).to_json("head")["alphas"][0] == [0.0] * 9


@pytest.mark.parametrize("bad, msg", [
    ("not json", "not valid JSON"),
    (json.dumps({"alphas": [[0, 0]]}), "'alphas' and 'betas'"),
    (json.dumps({"alphas": [[0, 0]], "betas": [[0.5, 0.5]]}), "one list per layer"),
    (json.dumps({"alphas": [[0, 0, 0], [0, 0, 0]], "betas": [[0, 0, 0], [0, 0, 0]]}), "expected 4"),
    (json.dumps({"alphas": [[0, 0, 0, 1], [0, 0, 0, 0]], "betas": [[0] * 4, [0] * 4]}), "differs from its KV group"),
    (json.dumps({"alphas": [["x", 0], [0, 0]], "betas": [[0, 0], [0, 0]]}), "non-numeric"),
])
def test_bad_plan_file_is_one_line_config_error(tmp_path, bad, msg):
    p = tmp_path / "plan.json"
    p.write_text(bad)
    with pytest.raises(ConfigError, match=msg) as ei:
        sa.SparsePlan.load(p, num_layers=2, num_heads=4, num_kv_heads=2)
    assert "\n" not in str(ei.value)


def test_unsupported_architecture_is_a_capability_error():
    model, _ = build_tiny("gpt2")
    with pytest.raises(CapabilityError, match="does not support GPT2LMHeadModel"):
        sa.apply_plan(model, None)


# -- backends ----------------------------------------------------------------------------------
def test_full_windows_equal_dense_bitwise_and_stock_sdpa(tiny):
    model, _ = tiny
    ids, mask = _batch()
    real = mask.bool()
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        stock = model(input_ids=ids, attention_mask=mask).logits
        sa.apply_plan(model, None)
        dense = model(input_ids=ids, attention_mask=mask).logits
        sa.apply_plan(model, _full_plan(model), chunk=64)
        chunked_dense = model(input_ids=ids, attention_mask=mask).logits
        sa.apply_plan(model, _full_plan(model))
        full = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(full, dense)
    assert (full - stock)[real].abs().max().item() < 1e-5
    assert (chunked_dense - stock)[real].abs().max().item() < 1e-5


def test_full_windows_in_generate_match_stock(tiny):
    model, tok = tiny
    ids, mask = _batch(t=80, pads=(11, 0))
    kw = dict(max_new_tokens=20, do_sample=False, output_logits=True, return_dict_in_generate=True,
              pad_token_id=tok.pad_token_id)
    model.set_attn_implementation("sdpa")
    stock = model.generate(input_ids=ids, attention_mask=mask, **kw)
    sa.apply_plan(model, _full_plan(model))
    ours = model.generate(input_ids=ids, attention_mask=mask, **kw)
    assert torch.equal(stock.sequences, ours.sequences)
    assert max((a - b).abs().max().item() for a, b in zip(stock.logits, ours.logits)) < 1e-5


def test_sparse_plan_changes_logits_only_beyond_the_window(tiny):
    model, _ = tiny
    ids, mask = _batch(pads=(0, 0), t=300)
    plan = sa.SparsePlan.uniform(0.0, 0.0, 2, 2, 2)                     # S = 128 everywhere
    with torch.no_grad():
        sa.apply_plan(model, None)
        dense = model(input_ids=ids, attention_mask=mask).logits
        sa.apply_plan(model, plan)
        sparse = model(input_ids=ids, attention_mask=mask).logits
        sa.apply_plan(model, plan, chunk=32)                              # chunks that skip unseen keys
        chunked = model(input_ids=ids, attention_mask=mask).logits
    assert (chunked - sparse).abs().max().item() < 1e-5
    assert torch.equal(dense[:, :128], sparse[:, :128])                  # rows with ≤ 128 keys: identical
    assert (dense[:, 200:] - sparse[:, 200:]).abs().max().item() > 1e-4


def test_flex_backend_matches_sdpa_path(tiny):
    model, _ = tiny
    pytest.importorskip("torch.nn.attention.flex_attention")
    ids, mask = _batch(t=160, pads=(17, 0))
    plan = sa.SparsePlan(((0.0, 64.0), (128.0, 0.0)), ((0.0, 0.25), (0.0, 0.5)), 2)
    with torch.no_grad():
        sa.apply_plan(model, plan)
        ref = model(input_ids=ids, attention_mask=mask).logits
        sa.apply_plan(model, plan, backend="flex")
        try:
            flex = model(input_ids=ids, attention_mask=mask).logits
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"FlexAttention unusable on this CPU build: {type(exc).__name__}")
    assert (ref - flex)[mask.bool()].abs().max().item() < 1e-4


# -- per-head cache ----------------------------------------------------------------------------
def test_per_head_cache_decode_equals_mask_simulation_over_ring_wraps(tiny):
    model, tok = tiny
    ids, mask = _batch(t=100, pads=(23, 0))
    # layer 0: KV head 0 keeps 128 (sink 64 + ring 64), head 1 keeps 256; layer 1: 192 and 128
    plan = sa.SparsePlan(((128.0, 256.0), (192.0, 0.0)), ((0.0, 0.0), (0.0, 0.0)), 2)
    n_total = 100 + 200
    kw = dict(max_new_tokens=200, do_sample=False, output_logits=True, return_dict_in_generate=True,
              pad_token_id=tok.pad_token_id, eos_token_id=None)
    sa.apply_plan(model, plan, total_length=n_total)
    sim = model.generate(input_ids=ids, attention_mask=mask, **kw)
    cache = PerHeadCache(model, n_total)
    dec = model.generate(input_ids=ids, attention_mask=mask, **cache_kwargs(model, cache), **kw)
    sa.apply_plan(model, plan)
    # the 64-slot ring of a 128 head wraps ≥ 2 times after the 100-token prompt
    assert (100 + 200 - 64) / 64 >= 2
    assert torch.equal(sim.sequences, dec.sequences)
    assert max((a - b).abs().max().item() for a, b in zip(sim.logits, dec.logits)) < 1e-5
    d = model.config.hidden_size // model.config.num_attention_heads
    expect = 2 * 2 * d * 4 * ((128 + 256) + (192 + 128))              # K+V, batch 2, fp32
    assert cache.nbytes() == expect


def test_per_head_cache_needs_a_plan(tiny):
    model, _ = tiny
    sa.apply_plan(model, None)
    with pytest.raises(ConfigError, match="needs a model switched to MoA"):
        PerHeadCache(model, 100)


def test_model_spec_option_applies_a_saved_plan(tmp_path):
    from solstice.models.base import GenParams
    from solstice.models.loader import load_model

    plan = sa.SparsePlan(((128.0, 0.0), (0.0, 0.0)), ((0.0, 0.5), (0.25, 1.0)), 2)
    path = tmp_path / "plan.json"
    plan.save(path)
    masked = load_model(f"tiny:llama?moa_plan={path}", cached=False)
    cached = load_model(f"tiny:llama?moa_plan={path}&moa_cache=1", cached=False)
    assert sa.current_plan(masked.model) == plan
    prompts = ["x" * 300, "a short one"]
    p = GenParams(max_new_tokens=90)
    assert [c[0].text for c in masked.generate(prompts, p)] == [c[0].text for c in cached.generate(prompts, p)]
    with pytest.raises(ConfigError, match="moa_cache needs moa_plan"):
        load_model("tiny:llama?moa_cache=1", cached=False)


def test_per_head_cache_non_contiguous_groups_and_batch_rows_equal_mask_simulation():
    """3 KV heads: KV heads 0 and 2 share a span (a non-contiguous group, read through an index),
    head 1 has its own; the second layer is one group. Three rows with different left padding
    fill their rings at different steps (masked, then unmasked decode)."""
    import transformers as tf

    from solstice.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(1)
    cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=3, max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = tf.LlamaForCausalLM(cfg).eval()
    ids, mask = _batch(seed=3, b=3, t=90, pads=(40, 0, 7))
    plan = sa.SparsePlan(((128.0, 256.0, 128.0), (192.0, 192.0, 192.0)), ((0.0,) * 3, (0.0,) * 3), 2)
    n_total = 90 + 180
    kw = dict(max_new_tokens=180, do_sample=False, output_logits=True, return_dict_in_generate=True,
              pad_token_id=tok.pad_token_id, eos_token_id=None)
    sa.apply_plan(model, plan, total_length=n_total)
    sim = model.generate(input_ids=ids, attention_mask=mask, **kw)
    cache = PerHeadCache(model, n_total)
    dec = model.generate(input_ids=ids, attention_mask=mask, **cache_kwargs(model, cache), **kw)
    layer0 = cache.layers[0]
    assert [g[0] for g in layer0.groups] == [[0, 2], [1]]
    assert (90 - 40 + 180 - 64) / 64 >= 2                              # the 64-slot ring wraps ≥ 2 times
    assert torch.equal(sim.sequences, dec.sequences)
    assert max((a - b).abs().max().item() for a, b in zip(sim.logits, dec.logits)) < 1e-5

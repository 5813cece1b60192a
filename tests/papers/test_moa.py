"""MoA: influence formula, profiling, config grid, MILP, data generators and the CLI's one-line
errors. Model-independent (tiny random Llama / toy tensors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import needs_data  # noqa: E402
from solstice.errors import ConfigError, DataError  # noqa: E402
from solstice.papers.moa import data as D  # noqa: E402
from solstice.papers.moa.influence import block_pool, head_influence, influence  # noqa: E402
from solstice.papers.moa.solver import (  # noqa: E402
    Problem,
    ScipyMilpSolver,
    block_layout,
    brute_force,
    check_solution,
    config_grid,
    config_loss,
    normalise,
    pareto_sweep,
)

ROOT = Path(__file__).resolve().parents[2]


# -- influence -----------------------------------------------------------------------------------
def _toy(seed=0, p=8, d=8):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(p, d, generator=g, dtype=torch.float64) for _ in range(3))
    w = torch.randn(d, d, generator=g, dtype=torch.float64)
    tgt = torch.randn(p, d, generator=g, dtype=torch.float64)
    return q, k, v, w, tgt


def _loss_of_a(a, v, w, tgt):
    """A 1-layer toy: O = A·V, projected, squared error."""
    return (((a @ v) @ w - tgt) ** 2).sum()


def _attn(q, k):
    p = q.shape[0]
    causal = torch.ones(p, p, dtype=torch.bool).tril()
    return torch.softmax(((q @ k.T) / q.shape[1] ** 0.5).masked_fill(~causal, float("-inf")), -1)


def test_g_equals_do_vt_equals_autograd_dl_da():
    q, k, v, w, tgt = _toy()
    a = _attn(q, k).detach().requires_grad_(True)
    o = a @ v
    o.retain_grad()
    loss = ((o @ w - tgt) ** 2).sum()
    (ga,) = torch.autograd.grad(loss, [a], retain_graph=True)
    (do,) = torch.autograd.grad(loss, [o])
    assert torch.allclose(do @ v.T, ga, atol=1e-10)


def test_influence_equals_exact_linearisation_of_the_renormalised_row_drop():
    q, k, v, w, tgt = _toy(1)
    a = _attn(q, k).detach()
    g = torch.func.grad(lambda x: _loss_of_a(x, v, w, tgt))(a)
    e = influence(a, g, eps=0.0)
    p = a.shape[0]
    for i in range(1, p):
        for j in range(i + 1):
            delta = a[i] * a[i, j] / (1 - a[i, j])              # renormalise the rest of the row ...
            delta[j] = -a[i, j]                                  # ... and drop key j
            da = torch.zeros_like(a)
            da[i] = delta
            _, lin = torch.func.jvp(lambda x: _loss_of_a(x, v, w, tgt), (a,), (da,))
            assert abs(float(lin) - float(e[i, j])) < 1e-6
    assert torch.allclose(e[0], -a[0] * g[0])                   # row 0: a single key


def test_pooled_blocks_equal_elementwise_causal_sum():
    p, b = 256, 64
    g = torch.Generator().manual_seed(2)
    q, k, v, do = (torch.randn(p, 16, generator=g) for _ in range(4))
    pooled = head_influence(q, k, v, do, 0.25, b)
    a = _attn(q * (0.25 * 16 ** 0.5), k)
    e = influence(a, do @ v.T).abs().tril()
    assert pooled.shape == (4, 4)
    assert torch.allclose(pooled.sum(), e.sum(), rtol=1e-4)
    assert torch.allclose(pooled[2, 1], e[128:192, 64:128].sum(), rtol=1e-4)
    assert float(pooled.triu(1).abs().sum()) == 0.0
    assert torch.equal(block_pool(torch.ones(128, 128), 64), torch.full((2, 2), 4096.0))


def test_profile_sequence_on_a_tiny_model_matches_manual_recompute():
    from solstice.models.tiny import build_tiny
    from solstice.papers.moa.influence import Recorder, profile_sequence

    model, _ = build_tiny("llama")
    rec = Recorder()
    import transformers

    transformers.AttentionInterface.register("moa_profile_test", rec)
    model.set_attn_implementation("moa_profile_test")
    ids = torch.randint(0, 250, (128,), generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(128, dtype=torch.bool)
    mask[64:] = True
    out = profile_sequence(model, rec, ids, mask, 64)
    assert out.shape == (2, 4, 2, 2)
    assert bool((out >= 0).all()) and float(out.sum()) > 0
    assert float(out[:, :, 0, 1].abs().sum()) == 0.0             # nothing above the diagonal
    model.set_attn_implementation("eager")


# -- config grid and MILP --------------------------------------------------------------------------
def test_config_grid_sizes():
    assert len(config_grid(2048, 4096, 512, 256)) == 48         # the spec's small-scale grid
    assert len(config_grid(8192, 16384, 2048, 1024)) == 48      # upstream's grid
    for a, b in config_grid(2048, 4096, 512, 256):
        assert a + 2048 * b <= 2048 and a + 4096 * b <= 4096 and a + 512 * b > 0


def test_block_layout_rule():
    lay = block_layout(0, 0.25, 512)                              # nb = 2 blocks
    assert lay.shape == (8, 8)
    assert lay[7].tolist() == [True, False, False, False, False, False, True, True]
    assert lay.sum(1).tolist() == [1, 2, 3, 3, 3, 3, 3, 3]
    units = np.ones((1, 8, 8)) * np.tril(np.ones((8, 8)))
    z = config_loss(units, [(0, 0.25), (1e6, 0)], 512)
    assert z[0, 1] == 0 and z[0, 0] == np.tril(np.ones((8, 8))).sum() - lay.sum()


def _small_problem(seed, budget=0.5):
    configs = [(0.0, 0.0), (0.0, 0.25), (0.0, 0.5), (512.0, 0.75)]
    prob = Problem.build(1, 3, configs, [1024, 2048], budget)      # 3 units × 4 configs, one layer
    rng = np.random.default_rng(seed)
    return prob, rng.random((3, 4))


@pytest.mark.parametrize("seed", range(6))
def test_milp_equals_brute_force_and_meets_constraints(seed):
    prob, cost = _small_problem(seed)
    sol = ScipyMilpSolver().solve(prob, cost)
    best = brute_force(prob, cost)
    assert best is not None
    assert abs(sol.objective - best[1]) < 1e-9
    assert check_solution(prob, sol.assign) == []


def test_rules_per_layer_constraint_binds():
    configs = [(0.0, 0.5), (0.0, 0.375), (0.0, 0.625)]
    prob = Problem.build(1, 3, configs, [1024], 0.5, lower_ratio=0.9, max_rules_per_layer=2)
    cost = np.array([[5.0, 0.0, 5.0], [5.0, 5.0, 0.0], [0.0, 5.0, 5.0]])   # unconstrained optimum uses 3 rules
    sol = ScipyMilpSolver().solve(prob, cost)
    assert len(set(sol.assign)) <= 2 and check_solution(prob, sol.assign) == []
    assert abs(sol.objective - brute_force(prob, cost)[1]) < 1e-9


def test_unmeetable_density_is_a_config_error():
    prob, cost = _small_problem(0, budget=0.05)
    with pytest.raises(ConfigError, match="no MoA plan meets the density budget"):
        ScipyMilpSolver().solve(prob, cost)


def test_pareto_sweep_plans_are_feasible_and_non_dominated():
    rng = np.random.default_rng(4)
    configs = config_grid(1024, 2048, 256, 128)
    prob = Problem.build(3, 2, configs, [512, 1024, 2048], 0.5)
    objs = {512: rng.random((6, len(configs))), 1024: rng.random((6, len(configs)))}
    plans = pareto_sweep(prob, objs, bands=3, time_limit=30)
    assert plans
    for pl in plans:
        assert check_solution(prob, pl["assign"]) == []
        for other in plans:
            if other is not pl:
                assert not all(other["objectives"][k] <= pl["objectives"][k] - 1e-12 for k in (512, 1024))
    single = ScipyMilpSolver().solve(prob, normalise(objs[512]))
    assert min(pl["objectives"][512] for pl in plans) <= single.objective + 1e-6


# -- data ------------------------------------------------------------------------------------------
def test_generators_are_seeded_and_answers_are_in_the_prompt():
    count = lambda s: len(s) // 4  # noqa: E731  (a stand-in token counter)
    a = D.make_lines(count, 1500, 20, seed=3)
    b = D.make_lines(count, 1500, 20, seed=3)
    assert [x.prompt for x in a] == [x.prompt for x in b]
    for it in a:
        key = it.prompt.rsplit("in line ", 1)[1].split("?")[0]
        assert f"line {key}: REGISTER_CONTENT is <{it.answer}>" in it.prompt
    assert sorted({int(x.depth * 10) for x in a}) == list(range(10))   # every depth bin is used
    pk = D.make_passkey(count, 1000, 10, seed=1)
    assert all(str(x.answer) in x.prompt for x in pk)
    seq = D.copy_sequence(100, 200, 50, 0)
    assert seq[:50] == seq[50:] and len(seq) == 100
    assert D.first_int("The number is 12345, not 6") == 12345 and D.first_int("none") is None


def test_empty_bucket_is_a_one_line_data_error():
    with pytest.raises(DataError, match=r"no calibration item has a token length in \(1536, 2048\]"):
        D.bucket([100, 900, 3000], 1536, 2048)
    assert D.bucket([100, 1900, 2048, 3000], 1536, 2048) == [1, 2]


@needs_data
def test_shipped_lines_parity():
    root = Path(os.environ["SOLSTICE_DATA"])
    rows = D.load_shipped_lines(root / D.LINES.path)
    par = D.shipped_parity(rows)
    assert par["n"] == 100
    assert par["value_matches"] == 1.0 and par["line_counts"] == 1.0 and par["template_matches"] == 1.0


# -- CLI: one line, exit 2 -------------------------------------------------------------------------
def _cli(*args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "solstice", *args, "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)


@needs_data
def test_cli_unsupported_architecture_and_unmeetable_density_exit_2(tmp_path):
    r = _cli("run", "moa", "--model", "tiny:gpt2", tmp_path=tmp_path)
    assert r.returncode == 2, r.stderr[-500:]
    assert "does not support GPT2LMHeadModel" in r.stderr and "Traceback" not in r.stderr
    r = _cli("run", "moa", "--model", "tiny:llama", "--set", "densities=[0.02]", tmp_path=tmp_path)
    assert r.returncode == 2, r.stderr[-500:]
    assert "density 0.02 cannot be met" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@needs_data
def test_cli_bad_plan_file_exit_2(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"alphas": [[0]], "betas": [[0.5]]}))
    r = _cli("run", "moa", "--model", f"tiny:llama?moa_plan={bad}", tmp_path=tmp_path)
    assert r.returncode == 2, r.stderr[-500:]
    assert "one list per layer" in r.stderr and "Traceback" not in r.stderr

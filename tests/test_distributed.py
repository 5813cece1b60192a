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


# -- (a) the generic loop: two ranks take the single-process step ---------------------------------------
def test_two_ranks_train_like_one_process_on_the_same_global_batch(tmp_path):
    import torch

    import dist_worker

    r = torchrun(str(TESTS / "dist_worker.py"), "loop", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"loop-rank{k}.json").read_text()) for k in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank reports the same global losses, norms and counts
    got = ranks[0]
    assert got["world"] == 2
    single = tmp_path / "single"
    single.mkdir()
    for name, *_ in dist_worker.VARIANTS:
        ref = dist_worker.train_variant(name, single)
        assert got[name]["target_tokens"] == ref.target_tokens and got[name]["tokens"] == ref.tokens
        assert got[name]["losses"] == pytest.approx(ref.losses, rel=1e-5, abs=1e-6)
        assert got[name]["grad_norms"] == pytest.approx(ref.grad_norms, rel=1e-4, abs=1e-6)
        a, b = _load(tmp_path / f"{name}.safetensors"), _load(single / f"{name}.safetensors")
        assert set(a) == set(b) and not any(k.startswith("module.") for k in a)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    # the step really moved the weights (the comparison above is not between two untouched models)
    from solstice.models.tiny import build_tiny

    fresh, _ = build_tiny("llama")
    w = _load(tmp_path / "adamw_micro.safetensors")
    name = next(k for k in w if "q_proj" in k)
    assert float((w[name] - dict(fresh.named_parameters())[name].detach()).abs().max()) > 1e-3
    # a batch the ranks cannot share is one clear error, on every rank
    assert "does not split over 2 ranks" in got["odd_batch"]
    assert "leave a step of 1 for 2 ranks" in got["short_last_step"]


# -- (b) one run, written by rank 0 only ------------------------------------------------------------------
def test_rank_zero_alone_writes_the_run_and_its_checkpoints_load(tmp_path):
    import torch

    from solstice.core.records import RunRecord
    from solstice.models.loader import load_model

    out = tmp_path / "runs"
    env = _env(DIST_AUDIT_ROOT=str(out), DIST_AUDIT_OUT=str(tmp_path))
    r = torchrun("-m", "solstice", "run", "toytrain", "--out", str(out), "--dist-backend", "gloo", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list((out / "toytrain").iterdir())
    assert len(runs) == 1  # one run, not one per rank
    run = runs[0]
    assert json.loads((tmp_path / "audit-rank1.json").read_text()) == []  # rank 1 wrote nothing there
    rec = RunRecord(run).read()
    assert rec["status"] == "completed" and rec["distributed"]["world_size"] == 2
    assert rec["distributed"]["backend"] == "gloo"
    assert len(rec["environments"]) == 1  # one process's segment
    rows = RunRecord(run).load_samples()
    assert sorted(r["sample_id"] for r in rows) == [f"ex-{i}" for i in range(6)]  # each once
    assert RunRecord(run).verify_seal() == "intact"
    # the checkpoints: plain names, loadable as hf:<dir>, equal to the trained weights
    state = _load(run / "artifacts" / "checkpoints" / "final.safetensors")
    assert state and not any(k.startswith("module.") for k in state)
    loaded = load_model(f"hf:{run / 'artifacts' / 'model'}?device=cpu")
    params = dict(loaded.model.named_parameters())
    for k, v in state.items():
        torch.testing.assert_close(params[k].detach(), v)
    # one process on the same global batch gives the same run
    from solstice.core.runner import run_paper

    os.environ["SOLSTICE_PLUGINS"] = "dist_worker:PAPER"
    try:
        one = run_paper("toytrain", out=tmp_path / "one")
    finally:
        os.environ.pop("SOLSTICE_PLUGINS", None)
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

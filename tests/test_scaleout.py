"""Scale-out: shards and merge, continuous ctx.map against an endpoint under faults, the vllm: spec."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env, needs_data
from solstice.core.records import RunRecord
from solstice.core.runner import run_paper
from solstice.core.shard import merge, parse_shard, shard_of
from solstice.errors import ConfigError, MissingDependencyError
from stub_openai import StubServer


def _rows(d: Path) -> list[dict]:
    return RunRecord(d).load_samples()


def _metrics(d: Path) -> dict:
    return json.loads((d / "metrics.json").read_text())


def _toy(tmp_path, name, *, shard=None, sets=("n=23", "batch_size=3"), models=()):
    return run_paper("toy", out=tmp_path / name, sets=list(sets), shard=shard, models=list(models), argv=["t"])


def test_parse_shard_and_slices_cover_every_sample_once():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "a/b", "2", "1/0"):
        with pytest.raises(ConfigError, match="i/n"):
            parse_shard(bad)
    keys = [f"gen/item-{i}" for i in range(500)]
    owners = [shard_of(k, 4) for k in keys]
    assert set(owners) == {1, 2, 3, 4} and all(owners.count(i) > 60 for i in range(1, 5))
    assert owners == [shard_of(k, 4) for k in keys]  # deterministic


def test_two_shards_merged_equal_the_unsharded_run(tmp_path, toy_env):
    full = _toy(tmp_path, "full")
    a = _toy(tmp_path, "a", shard="1/2")
    b = _toy(tmp_path, "b", shard="2/2")
    assert full.status == "completed" and a.status == b.status == "shard_done"
    assert RunRecord(full.path).read()["maps"]["-"]["in_flight_batches"] == 1  # a local model: one batch at a time
    ra, rb = _rows(a.path), _rows(b.path)
    assert 0 < len(ra) < 23 and len(ra) + len(rb) == 23 and not ({r["sample_id"] for r in ra} & {r["sample_id"] for r in rb})
    assert not (a.path / "metrics.json").exists()
    m = merge([b.path, a.path], out=tmp_path / "merged", argv=["t"])  # any order
    assert m.status == "completed"
    assert _rows(m.path) == _rows(full.path)
    assert _metrics(m.path) == _metrics(full.path)
    meta = RunRecord(m.path).read()
    assert meta["merge"]["computed_here"] == 0 and meta["merge"]["recorded_by_shards"] == 23
    assert meta["config_hash"] == RunRecord(full.path).read()["config_hash"] and "shard" not in meta
    assert [e["kind"] for e in meta["environments"]] == ["merge"] and meta["run_id"] != RunRecord(a.path).read()["run_id"]
    assert RunRecord(a.path).read()["environments"][0]["shard"] == "1/2"
    assert [c["status"] for c in meta["claims"]] == [c["status"] for c in RunRecord(full.path).read()["claims"]]


def test_merge_refuses_overlapping_missing_and_mismatched_shards(tmp_path, toy_env):
    a = _toy(tmp_path, "a", shard="1/2").path
    b = _toy(tmp_path, "b", shard="2/2").path
    other = _toy(tmp_path, "o", shard="2/2", sets=("n=24", "batch_size=3")).path
    with pytest.raises(ConfigError, match="overlapping shards: shard 1/2 is given twice"):
        merge([a, a], out=tmp_path / "m")
    with pytest.raises(ConfigError, match="shard 2/2 is missing"):
        merge([a], out=tmp_path / "m")
    with pytest.raises(ConfigError, match="different config hash"):
        merge([a, other], out=tmp_path / "m")
    # a shard of another code revision (its run.json as that revision would have written it)
    moved = tmp_path / "other-rev"
    shutil.copytree(b, moved)
    meta = json.loads((moved / "run.json").read_text())
    for seg in meta["environments"]:
        seg["git"] = {"sha": "0" * 40, "dirty": False}
    (moved / "run.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="different code revision"):
        merge([a, moved], out=tmp_path / "m")
    # a sample recorded by two shards
    dup = tmp_path / "dup"
    shutil.copytree(b, dup)
    with open(dup / "samples.jsonl", "a") as f:
        f.write(json.dumps(_rows(a)[0]) + "\n")
    with pytest.raises(ConfigError, match="overlapping shards: sample"):
        merge([a, dup], out=tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing written by a refused merge
    r = subprocess.run([sys.executable, "-m", "solstice", "merge", str(a), str(a), "--out", str(tmp_path / "m")],
                       capture_output=True, text=True, env=cli_env())
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "overlapping shards" in r.stderr


def test_an_unfinished_shard_is_refused_and_a_resumed_shard_stays_that_shard(tmp_path, toy_env):
    a = _toy(tmp_path, "a", shard="1/2").path
    meta = json.loads((a / "run.json").read_text())
    b = _toy(tmp_path, "b", shard="2/2").path
    meta_b = json.loads((b / "run.json").read_text())
    meta_b["status"] = "running"  # as a killed shard leaves it
    (b / "run.json").write_text(json.dumps(meta_b))
    with pytest.raises(ConfigError, match="did not finish.*--resume"):
        merge([a, b], out=tmp_path / "m")
    res = run_paper("toy", resume=b, argv=["t"])
    assert res.status == "shard_done" and RunRecord(b).read()["shard"] == {"index": 2, "count": 2}
    assert merge([a, b], out=tmp_path / "m").status == "completed" and meta["shard"]["index"] == 1


def test_continuous_map_against_a_faulty_endpoint_records_every_sample_once(tmp_path, toy_env):
    """256 requests in flight, every 7th answer a 429, every 11th a 503, every 13th stalls."""
    with StubServer() as stub:
        st = stub.state
        st.every_429, st.every_5xx, st.every_stall, st.stall_s = 7, 11, 13, 3.0
        st.delay = 0.05
        spec = f"openai:stub@{stub.url}?concurrency=256&timeout=1.5&retries=8&backoff=0.05"
        res = _toy(tmp_path, "c", sets=("n=256", "batch_size=4"), models=[f"target={spec}"])
        assert res.status == "completed", res.error
        rows = _rows(res.path)
        assert [r["sample_id"] for r in rows] == [f"item-{i:03d}" for i in range(256)]
        assert all(r["output"] == f"stub reply: word{i}" for i, r in enumerate(rows))
        # every sample answered (a loaded machine may also answer a request the client had given up on)
        assert st.answered >= 256
        # the feed was continuous, not one batch of 4 at a time (batch-at-a-time peaks at 4); the exact peak
        # depends on how fast a loaded machine starts client threads, so the bound is well above 4, not 256
        assert st.max_in_flight > 16
        meta = RunRecord(res.path).read()
        tp = meta["models"]["target"]["throughput"]
        assert tp["requests"] == 256 and tp["throttled_429"] > 0  # one parsed answer per sample and tp["server_errors_5xx"] > 0 and tp["stalls"] > 0
        assert tp["completion_tokens"] == 3 * 256 and tp["token_counts"] == "server usage"
        assert tp["requests_per_s"] > 0 and tp["in_flight_limit_min"] < 256  # the limit backed off
        assert meta["maps"]["-"]["in_flight_batches"] == 65


def test_context_window_comes_from_the_server_or_a_required_option():
    from solstice.models import load_model

    with StubServer() as stub:
        m = load_model(f"openai:stub@{stub.url}", cached=False)
        with pytest.raises(ConfigError, match="context_window=N"):
            _ = m.context_window  # no silent 8K
        assert load_model(f"openai:stub@{stub.url}?context_window=3000", cached=False).context_window == 3000
        stub.state.model_meta = {"max_model_len": 32768, "owned_by": "vllm"}
        m2 = load_model(f"openai:stub@{stub.url}", cached=False)
        assert m2.context_window == 32768
        # vLLM continues an assistant prefill; the keys go only to a vLLM server
        prefill = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "```python"}]
        m2.generate([prefill])
        assert stub.state.requests[-1]["continue_final_message"] is True
        stub.state.model_meta = {}
        load_model(f"openai:stub@{stub.url}", cached=False).generate([prefill])
        assert "continue_final_message" not in stub.state.requests[-1]


def test_vllm_spec_capabilities_and_missing_dependency(tmp_path):
    from solstice.models.loader import (
        BACKEND_CAPABILITIES,
        load_model,
        parse_spec,
        preflight,
        static_capabilities,
    )
    from solstice.models.vllm_backend import engine_args

    ms = parse_spec("vllm:Qwen/Qwen2.5-7B-Instruct?tensor_parallel_size=2&dtype=bfloat16&gpu_memory_utilization=0.85")
    assert (ms.kind, ms.target) == ("vllm", "Qwen/Qwen2.5-7B-Instruct")
    assert engine_args(ms) == {"model": "Qwen/Qwen2.5-7B-Instruct", "tensor_parallel_size": 2, "dtype": "bfloat16",
                               "gpu_memory_utilization": 0.85}
    caps = static_capabilities(ms)
    assert {"generate", "chat", "loglikelihood", "label_logprobs"} <= caps and "whitebox" not in caps
    assert BACKEND_CAPABILITIES["vllm"] == caps
    with pytest.raises(ConfigError, match="unknown vllm: option 'tp'"):
        engine_args(parse_spec("vllm:m?tp=2"))
    with pytest.raises(ConfigError, match="not a valid value"):
        engine_args(parse_spec("vllm:m?tensor_parallel_size=two"))
    if __import__("importlib").util.find_spec("vllm") is None:  # the test environment has no vLLM
        with pytest.raises(MissingDependencyError, match=r"'vllm' is not installed.*solstice-llm\[vllm\]"):
            load_model("vllm:facebook/opt-125m", cached=False)
        with pytest.raises(MissingDependencyError):
            preflight("vllm:facebook/opt-125m")
        r = subprocess.run([sys.executable, "-m", "solstice", "run", "toy", "--out", str(tmp_path), "--model",
                            "vllm:facebook/opt-125m"], capture_output=True, text=True, env=cli_env())
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "solstice-llm[vllm]" in r.stderr
        assert not (tmp_path / "toy").exists()


def test_show_says_which_backends_a_paper_runs_on():
    r = subprocess.run([sys.executable, "-m", "solstice", "show", "migu"], capture_output=True, text=True, env=cli_env())
    assert r.returncode == 0 and "White-box access: needed" in r.stdout
    r = subprocess.run([sys.executable, "-m", "solstice", "show", "toy"], capture_output=True, text=True, env=cli_env())
    assert "runs on any backend" in r.stdout and "vllm" in r.stdout


def _bcb_setup(tmp_path, monkeypatch, n=4):
    """A stratified stdlib slice (no shipped exclusions) and a samples file: its canonical solutions,
    with every third one broken, so that pass and fail rows both occur."""
    from solstice.data.sources import resolve
    from solstice.papers.bigcodebench.evaluate import exclusions, gt_solution
    from solstice.papers.bigcodebench.tasks import data_source, load_tasks, stratified

    tasks = load_tasks(resolve(data_source("v0.1.0_hf", "full")))
    pool = [t for t in tasks if not t.third_party and t.task_id not in exclusions()]
    picked = stratified(pool, n, seed=3)
    samples = tmp_path / "samples.jsonl"
    with open(samples, "w") as f:
        for k, t in enumerate(picked):
            sol = gt_solution(t) if k % 3 else "def task_func(*a, **k):\n    return None\n"
            f.write(json.dumps({"task_id": t.task_id, "solution": sol}) + "\n")
    ids = ",".join(t.task_id.rsplit("/", 1)[1] for t in picked)
    return [f"task_ids={ids}", f"samples={samples}", "workers=1", "timeout=30", "calibration=uncalibrated",
            "check_gt=false"]


def _stable(rows):
    return [{k: v for k, v in r.items() if k != "duration"} for r in rows]  # wall time of each execution


@needs_data
def test_bigcodebench_slice_sharded_and_merged_equals_unsharded(tmp_path, monkeypatch):
    sets = _bcb_setup(tmp_path, monkeypatch)

    def go(name, shard=None):
        return run_paper("bigcodebench", out=tmp_path / name, sets=sets, shard=shard, allow_code_exec=True, argv=["t"])

    full = go("full")
    assert full.status == "completed", full.error
    a, b = go("a", "1/2"), go("b", "2/2")
    assert a.status == b.status == "shard_done"
    assert 0 < len(_rows(a.path)) < 4 and len(_rows(a.path)) + len(_rows(b.path)) == 4
    m = merge([a.path, b.path], out=tmp_path / "m", argv=["t"])
    assert m.status == "completed", m.error
    assert _stable(_rows(m.path)) == _stable(_rows(full.path))
    assert _metrics(m.path) == _metrics(full.path)
    assert RunRecord(m.path).read()["merge"]["computed_here"] == 0
    statuses = {r["status"] for r in _rows(full.path)}
    assert statuses == {"pass", "fail"}


def test_the_default_executor_never_imports_ray(tmp_path):
    code = ("import sys; from solstice.cli.main import main\n"
            "try:\n    main(['run', 'toy', '--out', sys.argv[1], '--set', 'n=3'])\nexcept SystemExit:\n    pass\n"
            "assert 'ray' not in sys.modules and 'vllm' not in sys.modules, 'imported'\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=cli_env())
    assert r.returncode == 0, r.stderr
    assert (next((tmp_path / "toy").iterdir()) / "metrics.json").is_file()

"""`solstice rescore`: a new run from a finished one, reusing what does not depend on the new role."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env
from solstice.core.records import RunRecord


@pytest.fixture()
def judged_env(monkeypatch):
    monkeypatch.setenv("SOLSTICE_PLUGINS", "toy_judged:PAPER")


def test_rescore_same_judge_same_metrics_other_judge_new_ones(tmp_path, judged_env):
    from solstice.core.rescore import rescore
    from solstice.core.runner import run_paper

    calls = tmp_path / "calls.txt"
    first = run_paper("toy_judged", out=tmp_path / "runs", sets=[f"calls_log={calls}"])
    assert first.status == "completed" and first.metrics["judged_accuracy"].value == 1.0
    assert len(calls.read_text().split()) == 12
    before = (first.path / "run.json").read_text(), (first.path / "samples.jsonl").read_text()

    same = rescore(first.path, ["judge=fake:const=yes"], out=tmp_path / "re")
    assert same.status == "completed" and same.path != first.path
    assert {k: v.to_json() for k, v in same.metrics.items()} == {k: v.to_json() for k, v in first.metrics.items()}

    other = rescore(first.path, ["judge=fake:const=no"], out=tmp_path / "re")
    assert other.metrics["judged_accuracy"].value == 0.0 and other.metrics["exact"].value == 1.0
    assert len(calls.read_text().split()) == 12  # the answers were reused, never regenerated
    meta = json.loads((other.path / "run.json").read_text())
    lineage = meta["lineage"]["rescored_from"]
    assert lineage["changed_roles"] == ["judge"] and lineage["records_kept"] == 12
    assert lineage["records_recomputed"] == 12 and lineage["run_id"] == json.loads(before[0])["run_id"]
    assert meta["model_specs"] == {"target": "fake:echo", "judge": "fake:const=no"}
    assert [s["kind"] for s in RunRecord(other.path).environments] == ["start", "rescore"]
    assert meta["run_id"] != lineage["run_id"]
    assert {c["key"]: c["status"] for c in meta["claims"]} == {"judged": "not reproduced"}
    # the old run is untouched
    assert ((first.path / "run.json").read_text(), (first.path / "samples.jsonl").read_text()) == before


def test_changing_the_target_recomputes_everything(tmp_path, judged_env):
    from solstice.core.rescore import rescore
    from solstice.core.runner import run_paper

    calls = tmp_path / "calls.txt"
    first = run_paper("toy_judged", out=tmp_path / "runs", sets=[f"calls_log={calls}"])
    other = rescore(first.path, ["target=fake:const=nope"], out=tmp_path / "re")
    assert len(calls.read_text().split()) == 24 and other.metrics["exact"].value == 0.0


def test_rescore_cli_refuses_bad_input_in_one_line(tmp_path):
    env = {**cli_env(), "SOLSTICE_PLUGINS": "toy_judged:PAPER"}
    run = subprocess.run([sys.executable, "-m", "solstice", "run", "toy_judged", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    run_dir = Path(run.stdout.strip().splitlines()[-1])
    for args in (["--model", "grader=fake:echo"], ["--model", "fake:echo"]):
        r = subprocess.run([sys.executable, "-m", "solstice", "rescore", str(run_dir), *args], capture_output=True,
                           text=True, env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    ok = subprocess.run([sys.executable, "-m", "solstice", "rescore", str(run_dir), "-m", "judge=fake:const=no",
                         "--out", str(tmp_path / "re")], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert os.path.isdir(ok.stdout.strip().splitlines()[-1])


def test_rescore_sets_a_role_the_old_run_predates(tmp_path, judged_env):
    from solstice.core.rescore import rescore
    from solstice.core.runner import run_paper

    first = run_paper("toy_judged", out=tmp_path / "runs", sets=[f"calls_log={tmp_path / 'calls.txt'}"])
    meta = json.loads((first.path / "run.json").read_text())
    del meta["model_specs"]["judge"]  # a run recorded before the paper gained this role
    (first.path / "run.json").write_text(json.dumps(meta))
    other = rescore(first.path, ["judge=fake:const=no"], out=tmp_path / "re")
    lineage = json.loads((other.path / "run.json").read_text())["lineage"]["rescored_from"]
    assert other.status == "completed" and lineage["old_models"] == {"judge": ""}

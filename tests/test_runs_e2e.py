"""End to end through the CLI with the toy paper: run, kill, resume, report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import cli_env
from solstice.core.records import RunRecord


def solstice(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "solstice", *args], capture_output=True, text=True, env=env or cli_env(), **kw)


def test_run_writes_a_complete_record(tmp_path):
    r = solstice("run", "toy", "--out", str(tmp_path), "--set", "n=10", "--seed", "5")
    assert r.returncode == 0, r.stderr
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "completed" and meta["paper"]["id"] == "toy" and meta["seed"] == 5
    assert meta["config"]["n"] == 10 and len(meta["config_hash"]) == 8
    assert meta["model_specs"] == {"target": "fake:echo"} and "libraries" in meta["env"]
    assert meta["timings"]["wall_s"] >= 0 and "argv" in meta
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(r["correct"] for r in rows)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == {"value": 1.0, "n": 10, "ci95": [1.0, 1.0], "higher_is_better": True}
    assert {c["key"]: c["status"] for c in meta["claims"]} == {"acc": "reproduced", "beats": "reproduced", "items": "pass",
                                                            "big": "not run"}


def test_kill_resume_report(tmp_path):
    calls = tmp_path / "calls.txt"
    args = ["run", "toy", "--out", str(tmp_path / "runs"), "--set", "n=24", "--set", "sleep=0.4", "--set", f"calls_log={calls}"]
    p = subprocess.Popen([sys.executable, "-m", "solstice", *args], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        done = calls.read_text().split() if calls.exists() else []
        if len(done) >= 8:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    run_dir = next((tmp_path / "runs" / "toy").iterdir())
    assert RunRecord(run_dir).read()["status"] == "running"
    assert not (run_dir / "metrics.json").exists()
    recorded = {r["sample_id"] for r in RunRecord(run_dir).load_samples()}
    assert 4 <= len(recorded) < 24

    # a changed config is refused
    bad = solstice("run", "toy", "--resume", str(run_dir), "--set", "n=25")
    assert bad.returncode == 2 and "config changed" in bad.stderr and "Traceback" not in bad.stderr

    r = solstice("run", "toy", "--resume", str(run_dir))
    assert r.returncode == 0, r.stderr
    rows = RunRecord(run_dir).load_samples()
    assert len(rows) == 24 and len({x["sample_id"] for x in rows}) == 24
    computed = calls.read_text().split()
    # finished samples were not computed again (only the batch in flight at the kill may repeat)
    assert all(computed.count(s) == 1 for s in recorded)
    meta = RunRecord(run_dir).read()
    assert meta["status"] == "completed" and meta["resumed"] and len(meta["timings"]["attempts"]) == 1

    rep = solstice("report", str(run_dir), "--out", str(tmp_path / "report"))
    assert rep.returncode == 0, rep.stderr
    assert "✅ reproduced" in rep.stdout and "| — | needs a 70B model |" in rep.stdout
    html = (tmp_path / "report" / "index.html").read_text()
    assert "<table>" in html and "data:image/png;base64" in html


def test_sigterm_marks_the_run_interrupted(tmp_path):
    calls = tmp_path / "calls.txt"
    p = subprocess.Popen([sys.executable, "-m", "solstice", "run", "toy", "--out", str(tmp_path), "--set", "sleep=0.3",
                          "--set", f"calls_log={calls}"], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (calls.exists() and calls.read_text()):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "--resume" in err
    run_dir = next((tmp_path / "toy").iterdir())
    assert RunRecord(run_dir).read()["status"] == "interrupted"
    assert not (run_dir / "metrics.json").exists()


def test_reproduce_reuses_finished_runs(tmp_path):
    env = cli_env()
    args = ["reproduce", "--only", "toy", "--out", str(tmp_path / "runs"), "--report", str(tmp_path / "rep")]
    r1 = solstice(*args, env=env)
    assert r1.returncode == 0, r1.stderr
    r2 = solstice(*args, env=env)
    assert r2.returncode == 0 and "reusing completed run" in r2.stderr
    assert len(list((tmp_path / "runs" / "toy").iterdir())) == 1
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| toy | smoke | fake:echo | plumbing check: ran end to end" in md


def test_reproduce_skips_a_paper_whose_data_is_absent(tmp_path):
    env = cli_env()
    env["SOLSTICE_DATA"] = str(tmp_path / "no-data")
    args = ["reproduce", "--only", "toy", "--scale", "needs-data", "--out", str(tmp_path / "runs"),
            "--report", str(tmp_path / "rep")]
    r = solstice(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert "skipped, its data is not available here" in r.stderr and "Traceback" not in r.stderr
    assert "needs data" in (tmp_path / "rep" / "report.md").read_text()
    one = solstice("run", "toy", "--scale", "needs-data", "--out", str(tmp_path / "runs"), env=env)
    assert one.returncode == 2 and "toy/absent.txt" in one.stderr


def test_reproduce_refuses_an_unknown_scale_before_writing_anything(tmp_path):
    r = solstice("reproduce", "--only", "toy", "--scale", "bogus", "--out", str(tmp_path / "runs"),
                 "--report", str(tmp_path / "rep"), env=cli_env())
    assert r.returncode == 2 and "scale 'bogus'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "rep").exists() and not (tmp_path / "runs").exists()

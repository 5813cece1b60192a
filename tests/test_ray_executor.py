"""`--executor ray` on a local Ray cluster: the same records as in-process, and a killed worker
loses nothing (only its unfinished batch runs again)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import cli_env
from solstice.core.records import RunRecord
from solstice.core.runner import run_paper

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a local cluster takes ~10-20 s to start on 2 cores


@pytest.fixture(scope="module")
def cluster():
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = cli_env()["PYTHONPATH"]  # the workers import the toy paper too
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def test_ray_records_equal_in_process(tmp_path, toy_env, cluster):
    sets = ["n=30", "batch_size=4"]
    local = run_paper("toy", out=tmp_path / "local", sets=sets, argv=["t"])
    remote = run_paper("toy", out=tmp_path / "ray", sets=sets, executor="ray", argv=["t"])
    assert remote.status == "completed", remote.error
    assert RunRecord(remote.path).load_samples() == RunRecord(local.path).load_samples()
    assert remote.metrics == local.metrics
    maps = RunRecord(remote.path).read()["maps"]["-"]
    assert maps["executor"] == "ray" and maps["in_flight_batches"] == 2 and maps["computed"] == 30


def test_a_killed_worker_reruns_only_its_unfinished_batch(tmp_path, toy_env, cluster):
    from solstice.core import ray_executor

    calls = tmp_path / "calls.txt"
    sets = ["n=24", "batch_size=2", "sleep=0.5", f"calls_log={calls}"]
    killed: list[int] = []

    def killer():
        deadline = time.time() + 120
        while time.time() < deadline:
            if ray_executor.ACTIVE and calls.exists() and len(calls.read_text().split()) >= 6:
                pid = ray_executor.ACTIVE[0].pids[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    res = run_paper("toy", out=tmp_path / "runs", sets=sets, executor="ray", argv=["t"])
    t.join()
    assert killed and res.status == "completed", res.error
    rows = RunRecord(res.path).load_samples()
    assert [r["sample_id"] for r in rows] == [f"item-{i:03d}" for i in range(24)] and all(r["correct"] for r in rows)
    computed = calls.read_text().split()
    again = {s for s in set(computed) if computed.count(s) > 1}
    assert len(again) <= 2  # at most the one batch (of 2) the dead worker had not returned
    assert RunRecord(res.path).read()["maps"]["-"]["workers_replaced"] == 1


def test_killed_driver_resumes_without_recomputing(tmp_path):
    calls = tmp_path / "calls.txt"
    env = cli_env(SOLSTICE_RAY_WORKERS="2")
    args = ["run", "toy", "--out", str(tmp_path / "runs"), "--executor", "ray", "--set", "n=24", "--set", "batch_size=2",
            "--set", "sleep=0.4", "--set", f"calls_log={calls}"]
    p = subprocess.Popen([sys.executable, "-m", "solstice", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (calls.exists() and len(calls.read_text().split()) >= 8):
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the driver and the local cluster it started
    p.wait()
    run_dir = next((tmp_path / "runs" / "toy").iterdir())
    recorded = {r["sample_id"] for r in RunRecord(run_dir).load_samples()}
    assert 2 <= len(recorded) < 24
    r = subprocess.run([sys.executable, "-m", "solstice", "run", "toy", "--resume", str(run_dir), "--executor", "ray"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = RunRecord(run_dir).load_samples()
    assert len(rows) == 24 and len({x["sample_id"] for x in rows}) == 24
    computed = calls.read_text().split()
    assert all(computed.count(s) == 1 for s in recorded)  # recorded samples never ran again

"""The sandbox contains what model-written code can do: every case runs as a real job in one pool
(jobs run in parallel), and each test checks the job's status and what is left outside."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")

TEST = """
import unittest
class TestCases(unittest.TestCase):
    def test_it(self):
        f()
"""
TIMEOUT = 3.0


def _cases(victim: str, port: int, harness_pid: int, outside: str) -> dict[str, str]:
    return {
        "ok": "def f():\n    assert 1 + 1 == 2\n",
        "loop": "def f():\n    while True:\n        pass\n",
        "fork_bomb": "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
        "memory_bomb": "def f():\n    x = []\n    while True:\n        x.append(bytes(256 * 2**20))\n",
        "kill_parent": "import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGKILL)\n",
        "kill_harness": f"import os, signal\ndef f():\n    os.kill({harness_pid}, signal.SIGKILL)\n",
        "killpg_parent": "import os, signal\ndef f():\n    os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n",
        "delete_outside": f"import os\ndef f():\n    os.remove({victim!r})\n",
        "write_outside": f"def f():\n    open({outside!r}, 'w').write('escaped')\n",
        "write_tmp": "def f():\n    open('/tmp/solstice_sandbox_escape.txt', 'w').write('escaped')\n",
        "huge_output": "import sys\ndef f():\n    for _ in range(300):\n        sys.stdout.write('x' * 100000)\n",
        "network_local": f"import socket\ndef f():\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n",
        "network_out": "import socket\ndef f():\n    socket.create_connection(('1.1.1.1', 53), timeout=2).close()\n",
        "read_env": (
            "import os\ndef f():\n    assert 'SOLSTICE_TEST_CANARY' not in os.environ, 'in own environment'\n"
            "    pid, seen = os.getpid(), []\n    for _ in range(8):\n"
            "        pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
            "        if pid <= 1:\n            break\n        try:\n"
            "            if b'solstice-canary' in open(f'/proc/{pid}/environ', 'rb').read():\n"
            "                seen.append(pid)\n        except OSError:\n            pass\n"
            "    assert not seen, f'canary readable in {seen}'\n"
        ),
        "orphan": "import subprocess, time\ndef f():\n    subprocess.Popen(['sleep', '1000'], start_new_session=True)\n    while True:\n        time.sleep(0.1)\n",
        "matplotlib": "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\ndef f():\n    plt.plot([1, 2, 3])\n    plt.savefig('plot.png')\n",
        "cwd_write": "import os\ndef f():\n    assert not os.path.exists('left.txt'), 'cwd is not fresh'\n    open('left.txt', 'w').write('x')\n",
        "cwd_write_again": "import os\ndef f():\n    assert not os.path.exists('left.txt'), 'cwd is not fresh'\n    open('left.txt', 'w').write('x')\n",
    }


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    from solstice.sandbox import Job, SandboxConfig, SandboxPool

    d = tmp_path_factory.mktemp("sandbox")
    victim = d / "victim.txt"
    victim.write_text("keep me")
    outside = str(d / "escaped.txt")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    os.environ["SOLSTICE_TEST_CANARY"] = "solstice-canary"
    cases = _cases(str(victim), srv.getsockname()[1], os.getpid(), outside)
    pool = SandboxPool(SandboxConfig(workers=2, timeout=TIMEOUT, memory_mb=768, max_processes=64))
    try:
        t0 = time.monotonic()
        slow = {"matplotlib": 60.0}  # an import under load, not a containment case
        results = pool.run_all([Job(k, v + TEST, timeout=slow.get(k)) for k, v in cases.items()])
        wall = time.monotonic() - t0
        after = pool.run_all([Job("after", cases["ok"] + TEST)])
        leftovers = {w.slot: _descendants(w.proc.pid) for w in pool.workers}
        yield {"results": results, "after": after["after"], "victim": victim, "outside": outside, "wall": wall,
               "leftovers": leftovers, "restarts": pool.restarts, "isolation": pool.isolation}
    finally:
        pool.close()
        srv.close()
        os.environ.pop("SOLSTICE_TEST_CANARY", None)
        if os.path.exists("/tmp/solstice_sandbox_escape.txt"):
            os.remove("/tmp/solstice_sandbox_escape.txt")


def _descendants(pid: int) -> list[int]:
    from solstice.sandbox.linux import descendants

    return descendants(pid)


def _status(outcome, name):
    r = outcome["results"][name]
    return r.status, r


def test_a_plain_job_passes_and_the_harness_survives_everything(outcome):
    assert outcome["results"]["ok"].status == "pass"
    assert outcome["after"].status == "pass"  # the pool still works after the whole batch
    assert outcome["restarts"] == 0  # no worker died
    assert os.getpid() > 0


def test_infinite_loop_times_out_within_the_limit(outcome):
    status, r = _status(outcome, "loop")
    assert status == "timeout" and TIMEOUT <= r.duration < TIMEOUT + 3
    assert "timed out" in r.details["ALL"] and "test_it" in r.details["ALL"]


def test_fork_bomb_is_contained_and_its_processes_are_gone(outcome):
    status, _ = _status(outcome, "fork_bomb")
    assert status in ("timeout", "fail")
    assert all(not v for v in outcome["leftovers"].values()), outcome["leftovers"]


def test_memory_bomb_fails_the_sample_not_the_harness(outcome):
    status, r = _status(outcome, "memory_bomb")
    assert status in ("fail", "timeout")
    if status == "fail":
        assert "MemoryError" in r.details.get("test_it", "") + r.details.get("ALL", "") or "SIGKILL" in r.exit


@pytest.mark.parametrize("name", ["kill_parent", "kill_harness", "killpg_parent"])
def test_killing_the_parent_or_the_harness_is_refused(outcome, name):
    status, r = _status(outcome, name)
    assert status == "fail"
    assert "PermissionError" in r.details["test_it"] or "Operation not permitted" in r.details["test_it"]


def test_deleting_a_file_outside_fails_and_the_file_survives(outcome):
    status, _ = _status(outcome, "delete_outside")
    assert status == "fail"
    assert outcome["victim"].read_text() == "keep me"


@pytest.mark.parametrize("name,path", [("write_outside", None), ("write_tmp", "/tmp/solstice_sandbox_escape.txt")])
def test_writes_outside_the_sample_never_reach_the_host(outcome, name, path):
    path = path or outcome["outside"]
    assert not os.path.exists(path)
    if name == "write_outside":
        assert outcome["results"][name].status == "fail"


def test_huge_output_is_capped(outcome):
    status, r = _status(outcome, "huge_output")
    assert status == "pass"
    assert r.stdout_bytes == 300 * 100000
    assert len(r.stdout) < 20000 and "more bytes dropped" in r.stdout


@pytest.mark.parametrize("name", ["network_local", "network_out"])
def test_no_network_not_even_the_hosts_loopback(outcome, name):
    status, r = _status(outcome, name)
    assert status == "fail", r.details


def test_the_harness_environment_is_not_readable(outcome):
    if outcome["isolation"]["user"].startswith("root"):
        pytest.skip("this machine refuses the privilege drop: samples run as root and could read any process")
    status, r = _status(outcome, "read_env")
    assert status == "pass", r.details


def test_timeout_kills_the_whole_process_tree(outcome):
    status, _ = _status(outcome, "orphan")
    assert status == "timeout"
    assert all(not v for v in outcome["leftovers"].values())


def test_matplotlib_imports_under_a_small_relative_memory_limit(outcome):
    status, r = _status(outcome, "matplotlib")
    assert status == "pass", r.details


def test_every_job_gets_a_fresh_working_directory(outcome):
    assert outcome["results"]["cwd_write"].status == "pass"
    assert outcome["results"]["cwd_write_again"].status == "pass"


def test_isolation_report_names_every_layer(outcome):
    iso = outcome["isolation"]
    assert {"network", "user", "filesystem", "signals", "memory", "processes"} <= set(iso)
    if os.geteuid() == 0:
        assert iso["user"].startswith("uid") or "failed" in iso["user"]


def test_per_test_details_and_module_errors():
    from solstice.sandbox import Job, SandboxConfig, SandboxPool

    two = ("import unittest\nclass TestCases(unittest.TestCase):\n    def test_a(self):\n        self.assertEqual(1, 2)\n"
           "    def test_b(self):\n        pass\n    def test_c(self):\n        raise KeyError('k')\n")
    with SandboxPool(SandboxConfig(workers=1, timeout=10, preload=())) as pool:
        res = pool.run_all([Job("t", two), Job("syntax", "def f(:\n" + two), Job("script", "print('hi')", runner="script")])
    t = res["t"]
    assert t.status == "fail" and set(t.details) == {"test_a", "test_c"}
    assert t.tests == {"test_a": "fail", "test_b": "pass", "test_c": "error"}
    assert "AssertionError: 1 != 2" in t.details["test_a"] and "KeyError" in t.details["test_c"]
    assert res["syntax"].status == "fail" and "SyntaxError" in res["syntax"].details["ALL"]
    assert res["script"].status == "pass" and res["script"].stdout.strip() == "hi"


def test_imports_are_found_by_ast():
    from solstice.sandbox import imported_modules, missing_modules

    src = "import os, numpy as np\nfrom a.b import c\nfrom . import rel\ndef f():\n    import json\n"
    assert imported_modules(src) == {"os", "numpy", "a", "json"}
    assert imported_modules("import os\nthis is not python\nfrom re import x") == {"os", "re"}
    assert missing_modules({"os", "solstice_no_such_module"}) == ["solstice_no_such_module"]


def test_fallback_layers_alone_still_contain(tmp_path):
    """Without namespaces and Landlock (e.g. a container without CAP_SYS_ADMIN), the uid drop (as
    root) and the audit hook still refuse network, writes outside the sample and signals."""
    from solstice.sandbox import Job, SandboxConfig, SandboxPool

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    target = tmp_path / "outside.txt"
    cases = {
        "net": f"import socket\ndef f():\n    socket.create_connection(('127.0.0.1', {srv.getsockname()[1]}), timeout=2)\n",
        "write": f"def f():\n    open({str(target)!r}, 'w').write('x')\n",
        "write_tmp": "def f():\n    open('/tmp/solstice_fallback_escape.txt', 'w').write('x')\n",
        "kill": "import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGKILL)\n",
        "ok": "import os\ndef f():\n    open('here.txt', 'w').write('fine')\n    os.remove('here.txt')\n",
    }
    cfg = SandboxConfig(workers=1, timeout=10, network_namespace=False, private_tmp=False, landlock=False)
    try:
        with SandboxPool(cfg) as pool:
            iso = pool.isolation
            res = pool.run_all([Job(k, v + TEST) for k, v in cases.items()])
    finally:
        srv.close()
    assert "audit hook" in iso["network"] and "audit hook" in iso["filesystem"]
    assert res["ok"].status == "pass", res["ok"].details
    for k in ("net", "write", "write_tmp", "kill"):
        assert res[k].status == "fail", (k, res[k].details)
    assert not target.exists() and not os.path.exists("/tmp/solstice_fallback_escape.txt")


def test_a_virtualenv_under_tmp_stays_visible_under_the_private_tmp():
    """The private /tmp of each job must not hide an interpreter that lives under /tmp: a venv
    built in a 0700 directory below /tmp runs samples that import from its site-packages, and
    the job cannot write into it."""
    import shutil
    import subprocess
    import tempfile

    from solstice.sandbox import Job, SandboxConfig, SandboxPool

    base = tempfile.mkdtemp(prefix="solstice-venv-test-", dir="/tmp")
    try:
        venv = os.path.join(base, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True)
        py = os.path.join(venv, "bin", "python")
        site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                              capture_output=True, text=True).stdout.strip()
        with open(os.path.join(site, "solstice_tmp_probe.py"), "w") as f:
            f.write("VALUE = 42\n")
        prog = (f"import sys, solstice_tmp_probe\ndef f():\n    assert sys.prefix == {venv!r}, sys.prefix\n"
                "    assert solstice_tmp_probe.VALUE == 42\n")
        write = "import solstice_tmp_probe\ndef f():\n    open(solstice_tmp_probe.__file__, 'a').write('x')\n"
        for kw in ({}, {"network_namespace": False, "drop_privileges": False}):
            with SandboxPool(SandboxConfig(workers=1, timeout=20, python=py, **kw)) as pool:
                iso = pool.isolation
                res = pool.run_all([Job("import", prog + TEST), Job("write", write + TEST)])
            if "private /tmp" not in iso["filesystem"]:
                pytest.skip(f"no private /tmp on this machine: {iso['notes']}")
            assert os.path.realpath(venv) in iso.get("filesystem_binds", []), iso
            assert res["import"].status == "pass", (kw, res["import"].details)
            assert res["write"].status == "fail", (kw, res["write"].details)
        with open(os.path.join(site, "solstice_tmp_probe.py")) as f:
            assert f.read() == "VALUE = 42\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_sample_cannot_forge_its_verdict_and_zero_tests_is_an_error():
    """Result lines written by the sample itself (to every descriptor it has, at import time,
    then exiting cleanly) carry no job nonce and are ignored; a program without tests is an
    error, not a pass."""
    from solstice.sandbox import Job, SandboxConfig, SandboxPool

    forge = ("import json, os\nfor ev in ({'event': 'begin'}, {'event': 'start', 'test': 'test_it'},\n"
             "           {'event': 'test', 'test': 'test_it', 'outcome': 'pass'},\n"
             "           {'event': 'done', 'tests_run': 1, 'failures': 0, 'errors': 0, 'skipped': 0}):\n"
             "    for fd in range(1, 64):\n        try:\n            os.write(fd, (json.dumps(ev) + '\\n').encode())\n"
             "        except OSError:\n            pass\nos._exit(0)\ndef f():\n    assert False\n")
    empty = "import unittest\nclass TestCases(unittest.TestCase):\n    pass\n"
    with SandboxPool(SandboxConfig(workers=1, timeout=10, preload=())) as pool:
        res = pool.run_all([Job("forge", forge + TEST), Job("empty", empty), Job("ok", "def f():\n    pass\n" + TEST)])
    assert res["forge"].status == "fail", res["forge"]
    assert "before the tests finished" in res["forge"].details["ALL"]
    assert res["empty"].status == "error" and "0 tests" in res["empty"].details["ALL"]
    assert res["ok"].status == "pass"


def test_two_live_pools_never_share_a_job_uid():
    """RLIMIT_NPROC counts a uid's processes host-wide: if two pools (two runs, two shards) ran
    jobs under the same uid, one job holding threads would starve the other's. Pool `a` holds 40
    threads while pool `b`'s job starts 20, each under a 48-process limit."""
    import threading

    from solstice.sandbox import Job, SandboxConfig, SandboxPool

    if os.geteuid() != 0:
        pytest.skip("jobs change uid only when the harness runs as root")
    hold = ("import threading, time\ndef f():\n    ev = threading.Event()\n"
            "    ts = [threading.Thread(target=ev.wait, args=(8,)) for _ in range(N)]\n"
            "    for t in ts:\n        t.start()\n    time.sleep(S)\n    ev.set()\n")
    cfg = SandboxConfig(workers=1, timeout=20, preload=(), max_processes=48)
    with SandboxPool(cfg) as a, SandboxPool(cfg) as b:
        assert a.isolation.get("user", "").startswith("uid"), a.isolation
        assert abs(a.uid_base - b.uid_base) >= cfg.workers
        got: dict[str, object] = {}
        job_a = Job("a", hold.replace("N", "40").replace("S", "5") + TEST)
        t = threading.Thread(target=lambda: got.update(a=a.run_all([job_a])))
        t.start()
        time.sleep(2.0)  # a's 40 threads are up
        rb = b.run_all([Job("b", hold.replace("N", "20").replace("S", "0.5") + TEST)])["b"]
        t.join()
    assert got["a"]["a"].status == "pass", got["a"]["a"].details
    assert rb.status == "pass", rb.details

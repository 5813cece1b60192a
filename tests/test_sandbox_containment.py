"""Containment attacks run the way real code would (subprocesses, os.system, ctypes), under the
strongest isolation this machine gives and under the reduced set a host without namespaces and
without a privilege drop leaves (Landlock, seccomp, rlimits, the memory poll).

The harness runs in its own process with a secret in its real exec environment (so /proc/PID/environ
holds it); the test process serves a Unix socket and a UDP port the jobs try to reach, and checks
the host's /dev/shm afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import uuid

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")

CONFIGS = {
    "strongest": {},
    "no_namespaces_same_user": {"network_namespace": False, "private_tmp": False, "drop_privileges": False},
}
TEST = "\nimport unittest\nclass TestCases(unittest.TestCase):\n    def test_it(self):\n        f()\n"

HARNESS = r"""
import json, os, sys
from solstice.sandbox import Job, SandboxConfig, SandboxPool
cfg, jobs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
me = os.getpid()
with SandboxPool(SandboxConfig(workers=2, timeout=20, memory_mb=256, max_processes=64, **cfg)) as pool:
    zygotes = [w.proc.pid for w in pool.workers]
    res = pool.run_all([Job(k, v.replace("HARNESS_PID", str(me)).replace("ZYGOTE_PID", str(zygotes[0])))
                        for k, v in jobs.items()])
    out = {"isolation": pool.isolation, "restarts": pool.restarts,
           "results": {k: {"status": r.status, "details": r.details, "stdout": r.stdout, "duration": r.duration}
                       for k, r in res.items()}}
print("RESULT " + json.dumps(out))
"""


def _attacks(unix_path: str, udp_port: int, shm_name: str, secret: str) -> dict[str, str]:
    sub = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({unix_path!r}); s.sendall(b'subprocess')"
    return {
        "ok": "def f():\n    assert 1 + 1 == 2\n",
        # a Unix socket on a path the job can see (world-connectable, like an X11 or agent socket)
        "unix_socket": (
            "import socket, subprocess, sys\ndef f():\n    got = []\n"
            f"    try:\n        s = socket.socket(socket.AF_UNIX)\n        s.connect({unix_path!r})\n"
            "        s.sendall(b'in-process')\n        got.append('in-process')\n    except OSError:\n        pass\n"
            f"    r = subprocess.run([sys.executable, '-c', {sub!r}])\n"
            "    if r.returncode == 0:\n        got.append('subprocess')\n    assert not got, got\n"
        ),
        # UDP to the host's loopback: Python, a shell's /dev/udp, and libc sendto through ctypes
        "udp": (
            "import ctypes, os, socket, struct\ndef f():\n"
            f"    try:\n        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'python', ('127.0.0.1', {udp_port}))\n"
            "    except OSError:\n        pass\n"
            f"    os.system(\"bash -c 'echo shell > /dev/udp/127.0.0.1/{udp_port}' 2>/dev/null\")\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n    fd = libc.socket(2, 2, 0)\n    if fd >= 0:\n"
            f"        addr = struct.pack('<HH4s8x', 2, socket.htons({udp_port}), socket.inet_aton('127.0.0.1'))\n"
            "        libc.sendto(fd, b'ctypes', 6, 0, addr, len(addr))\n"
        ),
        # the host's /dev/shm: open(), a shell, and a subprocess
        "dev_shm": (
            "import os, subprocess\ndef f():\n"
            f"    try:\n        open('/dev/shm/{shm_name}-a', 'w').write('x')\n    except OSError:\n        pass\n"
            f"    os.system('echo x > /dev/shm/{shm_name}-b 2>/dev/null')\n"
            f"    subprocess.run(['touch', '/dev/shm/{shm_name}-c'], stderr=subprocess.DEVNULL)\n"
        ),
        # fork, then every child allocates (and touches) 160 MiB and holds it: 6 x 160 MiB > 256 MiB
        "fork_allocate": (
            "import os, time\ndef f():\n    kids = []\n    for _ in range(6):\n        pid = os.fork()\n"
            "        if pid == 0:\n            try:\n                b = bytearray(160 * 2**20)\n"
            "                for i in range(0, len(b), 4096):\n                    b[i] = 1\n"
            "                time.sleep(15)\n            finally:\n                os._exit(0)\n"
            "        kids.append(pid)\n    for p in kids:\n        os.waitpid(p, 0)\n"
        ),
        # the harness's secret, through /proc of every process: Python and grep in a shell
        "proc_environ": (
            "import os, subprocess\ndef f():\n    seen = []\n    for pid in os.listdir('/proc'):\n"
            "        if pid.isdigit() and int(pid) != os.getpid():\n            try:\n"
            f"                if {secret.encode()!r} in open(f'/proc/{{pid}}/environ', 'rb').read():\n"
            "                    seen.append(pid)\n            except OSError:\n                pass\n"
            f"    r = subprocess.run('grep -l {secret} /proc/[0-9]*/environ 2>/dev/null', shell=True, capture_output=True)\n"
            "    assert not seen and not r.stdout.strip(), (seen, r.stdout)\n"
        ),
        # the harness and the worker: os.kill, kill(1) through os.system and subprocess, libc kill
        "kill_harness": (
            "import ctypes, os, signal, subprocess\ndef f():\n    for pid in (HARNESS_PID, ZYGOTE_PID):\n"
            "        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
            "        os.system(f'kill -9 {pid} 2>/dev/null')\n"
            "        subprocess.run(['kill', '-9', str(pid)], stderr=subprocess.DEVNULL)\n"
            "        ctypes.CDLL(None).kill(pid, 9)\n"
        ),
    }


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def attacked(request):
    name = request.param
    sock_dir = tempfile.mkdtemp(prefix="sbx-", dir=os.getcwd())  # outside /tmp, so a private /tmp cannot hide it
    os.chmod(sock_dir, 0o755)
    unix_path = os.path.join(sock_dir, "s")
    unix_srv = socket.socket(socket.AF_UNIX)
    unix_srv.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix_srv.listen()
    unix_srv.settimeout(0.2)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    received: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for srv in (unix_srv, udp):
                try:
                    if srv is unix_srv:
                        conn, _ = srv.accept()
                        received.append("unix:" + conn.recv(100).decode(errors="replace"))
                        conn.close()
                    else:
                        received.append("udp:" + srv.recv(100).decode(errors="replace"))
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    shm_name = f"solstice-attack-{uuid.uuid4().hex[:8]}"
    secret = f"solstice-secret-{uuid.uuid4().hex}"
    jobs = {k: v + TEST for k, v in _attacks(unix_path, udp.getsockname()[1], shm_name, secret).items()}
    env = dict(os.environ, SOLSTICE_ATTACK_SECRET=secret)
    try:
        proc = subprocess.run([sys.executable, "-c", HARNESS, json.dumps(CONFIGS[name]), json.dumps(jobs)],
                              env=env, capture_output=True, text=True, timeout=240)
        stop.set()
        t.join()
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        shm_left = [f for f in os.listdir("/dev/shm") if f.startswith(shm_name)]
        yield {"name": name, "code": proc.returncode, "stderr": proc.stderr[-3000:], "received": received,
               "out": json.loads(line[7:]) if line else None, "shm_left": shm_left}
    finally:
        stop.set()
        unix_srv.close()
        udp.close()
        for f in os.listdir("/dev/shm"):
            if f.startswith(shm_name):
                os.remove(os.path.join("/dev/shm", f))
        import shutil

        shutil.rmtree(sock_dir, ignore_errors=True)


def _res(a, key):
    assert a["out"] is not None, f"the harness did not finish (exit {a['code']}): {a['stderr']}"
    return a["out"]["results"][key]


def test_the_harness_survives_and_reports_its_isolation(attacked):
    assert attacked["code"] == 0 and attacked["out"] is not None, attacked["stderr"]
    assert _res(attacked, "ok")["status"] == "pass"
    iso = attacked["out"]["isolation"]
    assert iso["level"] == ("reduced" if attacked["name"] != "strongest" else iso["level"])
    if attacked["name"] != "strongest":
        assert any("network namespace" in w for w in iso["warnings"]) and any("/tmp" in w for w in iso["warnings"])


def test_killing_the_harness_or_its_worker_fails(attacked):
    r = _res(attacked, "kill_harness")
    assert r["status"] == "pass", r["details"]  # the job itself ran to the end ...
    assert attacked["out"]["restarts"] == 0  # ... and no worker died


def test_no_unix_socket_connection_reaches_the_host(attacked):
    r = _res(attacked, "unix_socket")
    assert not [x for x in attacked["received"] if x.startswith("unix:")], attacked["received"]
    assert r["status"] == "pass", r["details"]


def test_no_udp_datagram_reaches_the_host(attacked):
    _res(attacked, "udp")
    assert not [x for x in attacked["received"] if x.startswith("udp:")], attacked["received"]


def test_the_hosts_dev_shm_is_not_writable(attacked):
    _res(attacked, "dev_shm")
    assert attacked["shm_left"] == []


def test_fork_then_allocate_is_bounded_in_total(attacked):
    r = _res(attacked, "fork_allocate")
    assert r["status"] in ("fail", "error"), r
    assert "memory limit" in r["details"].get("ALL", ""), r["details"]
    assert r["duration"] < 12  # killed, not left to sleep out its 15 s


def test_the_harness_environment_secret_is_not_readable(attacked):
    r = _res(attacked, "proc_environ")
    assert r["status"] == "pass", r["details"]


def test_strict_isolation_refuses_a_reduced_sandbox():
    from solstice.errors import CapabilityError
    from solstice.sandbox import SandboxConfig, SandboxPool

    with pytest.raises(CapabilityError, match="network namespace"):
        SandboxPool(SandboxConfig(workers=1, network_namespace=False, strict=True))
    with SandboxPool(SandboxConfig(workers=1)) as pool:
        level = pool.isolation["level"]
    if level == "full":  # this machine allows full isolation: strict runs
        with SandboxPool(SandboxConfig(workers=1, strict=True)) as pool:
            assert pool.isolation["warnings"] == []

"""Harness side of the sandbox: a pool of worker processes (one zygote per slot) that run jobs in
fresh isolated processes and stream results back as they finish.

    with SandboxPool(SandboxConfig(workers=2, preload=("numpy",))) as pool:
        for res in pool.run([Job("a", program, timeout=10)]):
            res.status, res.details, res.duration

A worker that dies (or hangs past a job's timeout plus a grace period) is replaced and its job
is reported with status `error`; the harness never goes down with a job.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from solstice.errors import BackendError, CapabilityError, ConfigError
from solstice.sandbox.zygote import read_frame, write_frame

log = logging.getLogger(__name__)

STATUSES = ("pass", "fail", "timeout", "error")
# Environment variables a job may see (everything else of the harness's environment is dropped).
CHILD_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
}


def worker_pythonpath() -> str:
    """PYTHONPATH of a sandbox worker: this package's source root, then the harness's own."""
    pkg_root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([pkg_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


@dataclass
class SandboxConfig:
    """How jobs are isolated. The defaults are the strongest the machine allows; each layer can be
    switched off (to test a fallback) but never silently: `SandboxPool.isolation` says what is on."""

    workers: int = 2
    timeout: float = 60.0  # wall-clock seconds per job (a job may give its own)
    memory_mb: int = 4096  # address space a job may add on top of its worker's baseline
    file_size_mb: int = 1024  # largest file a job may write (RLIMIT_FSIZE)
    tmp_size_mb: int = 1024  # size of the private /tmp (tmpfs) of each job
    max_processes: int = 256  # processes + threads of one job (RLIMIT_NPROC)
    preload: tuple[str, ...] = ()  # modules imported once per worker, before forking jobs
    network_namespace: bool = True
    private_tmp: bool = True
    landlock: bool = True
    seccomp: bool = True  # libseccomp filter (needs pyseccomp in the sample's interpreter)
    cgroup: bool = True  # a cgroup v2 memory limit per job where the host delegates one
    strict: bool = False  # refuse to run (CapabilityError) below full isolation
    restrict_reads: bool = True  # Landlock: reads only below system and Python directories
    drop_privileges: bool = True  # as root: run jobs as an unprivileged uid (a claimed block + slot)
    uid_base: int = 62000  # first uid of the first block (blocks of UID_BLOCK uids, one per live pool)
    read_paths: tuple[str, ...] = ()  # extra readable directories (e.g. NLTK data)
    pass_env: tuple[str, ...] = ("NLTK_DATA",)  # harness variables a job may see
    grace_s: float = 15.0  # extra time before a silent worker is declared hung
    base_dir: str | None = None  # where worker directories go (default: a fresh temp dir)
    python: str = sys.executable


@dataclass
class Job:
    id: str
    program: str
    runner: str = "unittest"  # "unittest": run the program's TestCases; "script": run it as __main__
    timeout: float | None = None
    stdin: str | None = None
    module_name: str = "__test__"
    preset_globals: bool = True  # put sys, os, environ in the module namespace (BigCodeBench)
    disable_exit: bool = True  # builtins.exit / quit = None (BigCodeBench)
    test_class: str = "TestCases"

    def frame(self, default_timeout: float) -> dict[str, Any]:
        d = asdict(self)
        d["timeout"] = float(self.timeout or default_timeout)
        return d


@dataclass
class ExecResult:
    id: str
    status: str  # pass | fail | timeout | error
    details: dict[str, str] = field(default_factory=dict)  # test name (or "ALL") -> error text
    tests: dict[str, str] = field(default_factory=dict)  # test name -> pass/fail/error/skip
    duration: float = 0.0
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    max_rss_mb: float | None = None
    exit: str = ""

    @classmethod
    def from_frame(cls, d: dict[str, Any]) -> ExecResult:
        keys = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in keys})


class _Worker:
    def __init__(self, pool: SandboxPool, slot: int) -> None:
        self.pool, self.slot = pool, slot
        self.slot_dir = os.path.join(pool.base_dir, f"slot-{slot}")
        self.proc: subprocess.Popen | None = None
        self.job: Job | None = None
        self.deadline = 0.0
        self.ready: dict[str, Any] = {}
        self.start()

    def start(self) -> None:
        cfg = self.pool.config
        env = {k: v for k, v in CHILD_ENV.items()}
        env["PYTHONPATH"] = worker_pythonpath()
        cache = os.path.join(self.slot_dir, "cache")
        env.update(HOME=self.slot_dir, MPLCONFIGDIR=os.path.join(cache, "matplotlib"),
                   XDG_CACHE_HOME=cache, XDG_CONFIG_HOME=os.path.join(self.slot_dir, "config"))
        child_env = dict(CHILD_ENV)
        child_env["PATH"] = os.pathsep.join([os.path.dirname(cfg.python), CHILD_ENV["PATH"]])
        for k in cfg.pass_env:
            if k in os.environ:
                child_env[k] = env[k] = os.environ[k]
        os.makedirs(self.slot_dir, exist_ok=True)
        self.log_path = os.path.join(self.pool.base_dir, f"worker-{self.slot}.log")
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [cfg.python, "-m", "solstice.sandbox.zygote"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=logf, env=env, cwd=self.slot_dir, close_fds=True, start_new_session=True,
            )
        read_paths = list(cfg.read_paths) + [p for p in (os.environ.get("NLTK_DATA", ""),
                                                         os.path.expanduser("~/nltk_data")) if p and os.path.isdir(p)]
        write_frame(self.proc.stdin.fileno(), {
            "slot": self.slot, "slot_dir": self.slot_dir, "preload": list(cfg.preload), "memory_mb": cfg.memory_mb,
            "file_size_mb": cfg.file_size_mb, "tmp_size_mb": cfg.tmp_size_mb, "max_processes": cfg.max_processes,
            "network_namespace": cfg.network_namespace, "private_tmp": cfg.private_tmp, "landlock": cfg.landlock,
            "restrict_reads": cfg.restrict_reads, "drop_privileges": cfg.drop_privileges, "uid_base": self.pool.uid_base,
            "read_paths": read_paths, "child_env": child_env, "seccomp": cfg.seccomp, "cgroup": cfg.cgroup,
        })
        self.proc.stdin.flush()
        msg = read_frame(self.proc.stdout.fileno())
        if msg is None or msg.get("event") != "ready":
            why = (msg or {}).get("message") or self._log_tail() or "no answer"
            self.stop()
            raise BackendError(f"sandbox worker {self.slot} could not start: {why}")
        self.ready = msg
        self.job = None

    def _log_tail(self) -> str:
        try:
            lines = Path(self.log_path).read_text(errors="replace").strip().splitlines()
            return lines[-1] if lines else ""
        except OSError:
            return ""

    def send(self, job: Job) -> None:
        timeout = float(job.timeout or self.pool.config.timeout)
        self.job = job
        self.deadline = time.monotonic() + timeout + self.pool.config.grace_s
        write_frame(self.proc.stdin.fileno(), job.frame(self.pool.config.timeout))

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None


class SandboxPool:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        if not sys.platform.startswith("linux"):
            raise ConfigError("the sandbox needs Linux (namespaces, rlimits, /proc); run the evaluation on Linux")
        if self.config.workers < 1:
            raise ConfigError("sandbox workers must be >= 1")
        self._own_base = self.config.base_dir is None
        self.base_dir = self.config.base_dir or tempfile.mkdtemp(prefix="solstice-sandbox-")
        os.makedirs(self.base_dir, exist_ok=True)
        os.chmod(self.base_dir, 0o711)
        _protect_harness()
        self.workers: list[_Worker] = []
        self.uid_base, self._uid_lock = self.config.uid_base, None
        try:
            if self.config.drop_privileges and os.geteuid() == 0:
                self.uid_base, self._uid_lock = claim_uid_block(self.config.uid_base, self.config.workers)
            for i in range(self.config.workers):
                self.workers.append(_Worker(self, i))
        except BaseException:
            self.close()
            raise
        self.restarts = 0
        iso = self.isolation
        if self.config.strict and iso.get("level") != "full":
            self.close()
            raise CapabilityError("isolation=strict: this machine gives only reduced sandbox isolation: "
                                  + "; ".join(iso.get("warnings") or ["unknown"]) + " (" + "; ".join(iso.get("notes") or []) + ")")

    @property
    def isolation(self) -> dict[str, Any]:
        return dict(self.workers[0].ready.get("isolation", {})) if self.workers else {}

    @property
    def preload_errors(self) -> dict[str, str]:
        return dict(self.workers[0].ready.get("preload_errors", {})) if self.workers else {}

    def worker_rss_mb(self) -> float:
        """Peak resident memory of the worker processes (MiB, summed)."""
        from solstice.sandbox.linux import vm_peak_rss_bytes

        total = 0.0
        for w in self.workers:
            try:
                total += vm_peak_rss_bytes(w.proc.pid) / 2**20
            except (OSError, AttributeError):
                pass
        return total

    def run(self, jobs: Iterable[Job]) -> Iterator[ExecResult]:
        """Run every job; yield results in completion order."""
        todo = deque(jobs)
        for w in self.workers:
            if w.job is not None:  # a result still owed to an abandoned run(): never hand it to this one
                self._restart(w)
        sel = selectors.DefaultSelector()
        try:
            for w in self.workers:
                sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            busy = 0
            while todo or busy:
                for w in self.workers:
                    if w.job is None and todo:
                        w.send(todo.popleft())
                        busy += 1
                now = time.monotonic()
                wait = max(0.05, min((w.deadline - now for w in self.workers if w.job), default=1.0))
                for key, _ in sel.select(timeout=wait):
                    w = key.data
                    msg = read_frame(w.proc.stdout.fileno())
                    job = w.job
                    if msg is None:  # the worker died
                        res = self._replace(w, sel, "the sandbox worker died")
                    else:
                        res = ExecResult.from_frame(msg)
                        w.job = None
                    if job is not None:
                        busy -= 1
                        res.id = job.id
                        yield res
                now = time.monotonic()
                for w in self.workers:
                    if w.job is not None and now > w.deadline:
                        job = w.job
                        res = self._replace(w, sel, "the sandbox worker hung past the job's timeout")
                        busy -= 1
                        res.id = job.id
                        yield res
        finally:
            sel.close()

    def run_all(self, jobs: Iterable[Job]) -> dict[str, ExecResult]:
        return {r.id: r for r in self.run(jobs)}

    def _restart(self, w: _Worker) -> None:
        if w.proc is not None and w.proc.poll() is None:
            w.proc.kill()
        try:
            w.stop()
        except OSError:
            pass
        w.start()

    def _replace(self, w: _Worker, sel: selectors.BaseSelector, why: str) -> ExecResult:
        job = w.job
        code = w.proc.poll() if w.proc else None
        try:
            sel.unregister(w.proc.stdout)
        except (KeyError, ValueError):
            pass
        if w.proc is not None and w.proc.poll() is None:
            w.proc.kill()
        try:
            w.stop()
        except OSError:
            pass
        self.restarts += 1
        log.warning("%s (job %s, exit %s); restarting it", why, job.id if job else "-", code)
        w.start()
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        return ExecResult(job.id if job else "", "error", {"ALL": f"{why} (exit code {code})"})

    def close(self) -> None:
        for w in self.workers:
            try:
                w.stop()
            except OSError:
                pass
        self.workers = []
        if self._uid_lock is not None:
            self._uid_lock.close()  # releases the uid block
            self._uid_lock = None
        if self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


UID_BLOCK = 64  # uids per pool: the most workers one pool may have when it drops privileges
UID_BLOCKS = 55  # blocks tried above uid_base (62000 + 55 x 64 stays below 65534, the top of a 16-bit uid map)


def claim_uid_block(base: int, workers: int) -> tuple[int, Any]:
    """The first uid of a block of UID_BLOCK uids from `base` that no other live pool on this host
    holds, and the open lock file that holds it (released when closed, or when the process dies).
    Jobs of two pools must never share a uid: RLIMIT_NPROC counts a uid's processes host-wide (a
    fork bomb in one run would starve the jobs of another, e.g. two shards of one evaluation) and
    processes of one uid may signal one another."""
    import fcntl

    if workers > UID_BLOCK:
        raise ConfigError(f"a sandbox pool that drops privileges has at most {UID_BLOCK} workers (asked for {workers})")
    locks = Path(tempfile.gettempdir()) / "solstice-sandbox-uids"
    locks.mkdir(mode=0o755, exist_ok=True)
    for i in range(UID_BLOCKS):
        start = base + i * UID_BLOCK
        f = open(locks / f"{start}.lock", "a")  # noqa: SIM115 - held open for the pool's life
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        return start, f
    raise BackendError(f"no free block of sandbox uids above {base}: {UID_BLOCKS} pools are running on this host")


def _protect_harness() -> None:
    """Make this process non-dumpable so that its /proc entries (environ, memory) are unreadable
    to jobs that run as the harness's own user (or as root without capabilities)."""
    try:
        from solstice.sandbox import linux

        linux.prctl(linux.PR_SET_DUMPABLE, 0)
    except OSError:
        log.warning("could not make the harness non-dumpable; jobs may read its environment")

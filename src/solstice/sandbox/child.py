"""What runs inside one sandboxed sample process (forked from a worker's zygote).

`enter(plan, job, result_fd)` isolates the process (own session and process group, private /tmp
in a mount namespace, rlimits, Landlock, an unprivileged user, a clean environment, an audit hook
as a last Python-level guard), then runs the job's runner and streams JSON events to
`result_fd`: {"event": "start"|"test"|"error"|"done", ...}. It never returns: the process ends with
os._exit so that the sample's atexit handlers and buffered state cannot stall the worker.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback

from solstice.sandbox import linux

TRACE_CAP = 4000


class _Emitter:
    """Writes events as JSON lines; keeps its own references so that a sample that rebinds
    json/os names cannot break the channel by accident."""

    def __init__(self, fd: int, nonce: str = "") -> None:
        self.fd, self.dumps, self.write, self.nonce = fd, json.dumps, os.write, nonce

    def __call__(self, **event) -> None:
        event["n"] = self.nonce  # the worker ignores lines without this job's nonce
        data = (self.dumps(event, default=str) + "\n").encode("utf-8", "replace")
        try:
            while data:
                n = self.write(self.fd, data)
                data = data[n:]
        except OSError:
            pass


def _trace(exc: BaseException) -> str:
    """The traceback of an exception raised by the sample, without the runner's own frame."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    return _cap("".join(traceback.format_exception(type(exc), exc, tb)))


def _cap(text: str, limit: int = TRACE_CAP) -> str:
    return text if len(text) <= limit else "...[truncated]...\n" + text[-limit:]


# -- isolation ---------------------------------------------------------------------------------
def _close_fds(result_fd: int) -> None:
    """Close every inherited descriptor except stdio and the result channel (the zygote's channel
    to the harness must not be reachable from the sample)."""
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, 1 << 16)


def _private_tmp(plan: dict) -> str:
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)
    opts = f"size={int(plan['tmp_size_mb'])}m,mode=1777"
    # paths the interpreter needs below the covered directories (a venv or checkout under /tmp):
    # held open before the tmpfs hides them, then bind-mounted back, read-only, at their places
    keep = [(p, os.open(p, os.O_PATH | os.O_CLOEXEC)) for p in plan.get("tmp_binds", [])]
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(d):
            linux.mount("tmpfs", d, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, opts)
    for p, fd in keep:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(p, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
            open(p, "w").close()
        linux.mount(f"/proc/self/fd/{fd}", p, None, linux.MS_BIND | linux.MS_REC)
        try:
            linux.mount("none", p, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
        except OSError:
            pass  # the files stay protected by their owner and Landlock
        os.close(fd)
    for i, (block, paths) in enumerate(plan.get("expose", [])):
        _expose(block, paths, f"/tmp/.expose-{i}")
    work = "/tmp/work"
    os.mkdir(work, 0o700)
    if plan.get("uid") is not None:
        os.chown(work, plan["uid"], plan["gid"])
    return work


def _expose(block: str, paths: list[str], stage: str) -> None:
    """Cover a directory the sample's user cannot enter (e.g. a 0700 home holding the Python
    installation) with an empty tmpfs that shows only `paths`, bind-mounted at their places."""
    os.mkdir(stage)
    for j, p in enumerate(paths):
        s = f"{stage}/{j}"
        os.mkdir(s) if os.path.isdir(p) else open(s, "w").close()
        linux.mount(p, s, None, linux.MS_BIND | linux.MS_REC)
    linux.mount("tmpfs", block, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=1m,mode=0755")
    for j, p in enumerate(paths):
        s = f"{stage}/{j}"
        if os.path.isdir(s):
            os.makedirs(p, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "w").close()
        linux.mount(s, p, None, linux.MS_BIND | linux.MS_REC)
        linux.umount(s)


def _limits(plan: dict) -> None:
    def setlim(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))

    setlim(resource.RLIMIT_AS, linux.vm_size_bytes() + int(plan["memory_mb"]) * 2**20)
    setlim(resource.RLIMIT_CORE, 0)
    setlim(resource.RLIMIT_FSIZE, int(plan["file_size_mb"]) * 2**20)
    if plan.get("nproc"):
        setlim(resource.RLIMIT_NPROC, int(plan["nproc"]))


def _landlock(plan: dict, work: str) -> None:
    abi = int(plan["landlock_abi"])
    rights = linux.landlock_fs_rights(abi)
    read = linux.LL_FS_READ_FILE | linux.LL_FS_READ_DIR | linux.LL_FS_EXECUTE
    handled = rights if plan.get("landlock_read") else rights & ~read
    rules = [(work, rights)]
    writable = (["/dev/shm"] if plan.get("shm_writable") else []) + (["/tmp", "/var/tmp"] if plan.get("private_tmp") else [])
    rules += [(d, rights) for d in writable]
    dev_rw = linux.LL_FS_READ_FILE | linux.LL_FS_WRITE_FILE | linux.LL_FS_TRUNCATE | linux.LL_FS_IOCTL_DEV
    rules += [(f"/dev/{n}", dev_rw) for n in ("null", "zero", "full", "random", "urandom", "tty")]
    rules += [(p, read) for p in plan.get("read_roots", [])]
    linux.landlock_restrict(abi, handled_fs=handled, rules=rules, block_tcp=plan.get("landlock_tcp", False),
                            scope_signals=plan.get("landlock_signals", False))


def _audit_hook(plan: dict, work: str):
    """A Python-level guard (bypassable through ctypes; the kernel layers are the real fence):
    no signals to processes outside the sample, no inet sockets when there is no private network
    namespace, no writes outside the sample's directories when Landlock is not active."""
    import socket

    me = os.getpid()
    roots = tuple(os.path.realpath(p) for p in [work, "/dev/null"] + (["/dev/shm"] if plan.get("shm_writable") else [])
                  + (["/tmp", "/var/tmp"] if plan.get("private_tmp") else []))
    net_guard, fs_guard = plan.get("net_guard", False), plan.get("fs_guard", False)
    inet = (socket.AF_INET, socket.AF_INET6)
    wflags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    local_hosts = {"localhost", "127.0.0.1", "::1", "", None}
    path_events = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                   "os.utime", "os.link", "os.symlink", "shutil.rmtree", "os.rename", "os.setxattr",
                   "os.removexattr"}
    realpath, join, getcwd, fspath = os.path.realpath, os.path.join, os.getcwd, os.fspath
    parent_of = linux.parent_of

    def inside(p) -> bool:
        try:
            if isinstance(p, int):
                return True
            p = fspath(p)
            if isinstance(p, bytes):
                p = p.decode(errors="replace")
            full = realpath(join(getcwd(), p))
        except Exception:  # noqa: BLE001
            return False
        return any(full == r or full.startswith(r + os.sep) for r in roots)

    def ours(pid: int) -> bool:
        if pid in (0, me):
            return True
        for _ in range(64):
            pid = parent_of(pid) or 0
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    def hook(event: str, args: tuple) -> None:
        if event in ("os.kill", "os.killpg"):
            target = args[0]
            ok = ours(abs(target)) if event == "os.kill" else (target in (0, os.getpgid(0)) or ours(target))
            if not ok:
                raise PermissionError(1, "the sandbox forbids signalling processes outside the sample")
        elif net_guard and event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            if getattr(args[0], "family", None) in inet:
                raise PermissionError(1, "network access is disabled in the sandbox")
        elif net_guard and event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
            if args and args[0] not in local_hosts:
                raise socket.gaierror(socket.EAI_NONAME, "name resolution is disabled in the sandbox")
        elif fs_guard and event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & wflags)
            if path is not None and writing and not inside(path):
                raise PermissionError(13, f"the sandbox forbids writing outside its directory: {path}")
        elif fs_guard and event in path_events:
            paths = args[:2] if event in ("os.rename", "os.link", "os.symlink") else args[:1]
            if event == "os.symlink":
                paths = args[1:2]
            for p in paths:
                if p is not None and not inside(p):
                    raise PermissionError(13, f"the sandbox forbids changing files outside its directory: {p}")

    sys.addaudithook(hook)


def _environment(plan: dict, work: str) -> None:
    env = dict(plan["env"])
    tmp = "/tmp" if plan.get("private_tmp") else work
    env.update(HOME=work, TMPDIR=tmp, PWD=work, MPLCONFIGDIR=os.path.join(work, ".config", "matplotlib"),
               XDG_CACHE_HOME=os.path.join(work, ".cache"), XDG_CONFIG_HOME=os.path.join(work, ".config"))
    os.environ.clear()
    os.environ.update(env)
    import tempfile
    import time

    tempfile.tempdir = None
    if hasattr(time, "tzset"):
        time.tzset()
    import random

    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()


def _streams() -> None:
    import io

    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True)
    sys.__stdout__, sys.__stderr__, sys.__stdin__ = sys.stdout, sys.stderr, sys.stdin


def isolate(plan: dict, job: dict, result_fd: int) -> str:
    """Apply every isolation layer of `plan`; returns the working directory."""
    os.setsid()
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if job.get("cgroup"):  # join the job's memory cgroup before anything is allocated
        with open(os.path.join(job["cgroup"], "cgroup.procs"), "w") as f:
            f.write("0")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    _close_fds(result_fd)
    work = _private_tmp(plan) if plan.get("private_tmp") else job["workdir"]
    os.chdir(work)
    os.makedirs(os.path.join(work, ".config", "matplotlib"), exist_ok=True)
    os.makedirs(os.path.join(work, ".cache"), exist_ok=True)
    if plan.get("uid") is not None:
        for d in (os.path.join(work, ".config"), os.path.join(work, ".config", "matplotlib"),
                  os.path.join(work, ".cache")):
            os.chown(d, plan["uid"], plan["gid"])
    if job.get("stdin") is not None:
        fd = os.open(os.path.join(work, ".stdin"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, job["stdin"].encode())
        os.lseek(fd, 0, 0)
        os.dup2(fd, 0)
        os.close(fd)
    _limits(plan)
    if plan.get("landlock_abi"):
        _landlock(plan, work)
    if plan.get("uid") is not None:
        linux.drop_to_user(plan["uid"], plan["gid"], plan.get("keep_caps", 0))
    elif plan.get("drop_caps"):
        linux.set_capabilities(0)
    if plan.get("seccomp"):
        from solstice.sandbox import seccomp

        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        seccomp.install(deny_unix=True, deny_inet=bool(plan.get("seccomp_inet")), protect=list(plan.get("protect", [])))
    _environment(plan, work)
    _streams()
    _audit_hook(plan, work)
    return work


# -- runners -----------------------------------------------------------------------------------
def _unittest_runner(job: dict, emit: _Emitter) -> None:
    import builtins
    import types
    import unittest

    name = job.get("module_name") or "__test__"
    module = types.ModuleType(name)
    module.__dict__.update({"__builtins__": builtins, "__file__": f"{name}.py", "__package__": None,
                            "__doc__": None})
    if job.get("preset_globals", True):
        module.__dict__.update({"sys": sys, "os": os, "environ": os.environ})
    if job.get("disable_exit", True):
        builtins.exit = None
        builtins.quit = None
    try:
        import faulthandler

        faulthandler.disable()
    except Exception:  # noqa: BLE001
        pass
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")
    sys.modules[name] = module
    try:
        exec(compile(job["program"], f"{name}.py", "exec"), module.__dict__)
        cases = getattr(module, job.get("test_class") or "TestCases", None)
        if cases is None:
            cases = [v for v in module.__dict__.values()
                     if isinstance(v, type) and issubclass(v, unittest.TestCase) and v.__module__ == name]
            if not cases:
                raise LookupError(f"no {job.get('test_class') or 'TestCases'} class in the program")
        loader = unittest.TestLoader()
        suites = [loader.loadTestsFromTestCase(c) for c in (cases if isinstance(cases, list) else [cases])]
        suite = unittest.TestSuite(suites)
    except BaseException as exc:  # noqa: BLE001 - the sample's module-level error is a result
        emit(event="error", where="module", message=f"{type(exc).__name__}: {exc}", trace=_trace(exc))
        return

    def short(test) -> str:
        return test.id().split(".")[-1]

    class Result(unittest.TestResult):
        def startTest(self, test):
            super().startTest(test)
            emit(event="start", test=short(test))

        def addSuccess(self, test):
            super().addSuccess(test)
            emit(event="test", test=short(test), outcome="pass")

        def addFailure(self, test, err):
            super().addFailure(test, err)
            emit(event="test", test=short(test), outcome="fail", trace=_cap(self.failures[-1][1]))

        def addError(self, test, err):
            super().addError(test, err)
            emit(event="test", test=short(test), outcome="error", trace=_cap(self.errors[-1][1]))

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            emit(event="test", test=short(test), outcome="skip", trace=str(reason)[:500])

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                kind = "fail" if issubclass(err[0], test.failureException) else "error"
                bucket = self.failures if kind == "fail" else self.errors
                emit(event="test", test=short(test), outcome=kind, trace=_cap(bucket[-1][1]))

    result = Result()
    try:
        suite.run(result)
    except BaseException as exc:  # noqa: BLE001 - e.g. SystemExit escaping the test machinery
        emit(event="error", where="tests", message=f"{type(exc).__name__}: {exc}",
             trace=_cap(traceback.format_exc()))
        return
    emit(event="done", tests_run=result.testsRun, failures=len(result.failures), errors=len(result.errors),
         skipped=len(result.skipped))


def _script_runner(job: dict, emit: _Emitter) -> None:
    import builtins
    import types

    module = types.ModuleType("__main__")
    module.__dict__.update({"__builtins__": builtins, "__file__": "main.py", "__name__": "__main__"})
    sys.modules["__main__"] = module
    code = 0
    try:
        exec(compile(job["program"], "main.py", "exec"), module.__dict__)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001
        emit(event="error", where="program", message=f"{type(exc).__name__}: {exc}", trace=_trace(exc))
        return
    if code:
        emit(event="error", where="program", message=f"SystemExit: {code}", trace="")
        return
    emit(event="done", tests_run=0, failures=0, errors=0, skipped=0)


RUNNERS = {"unittest": _unittest_runner, "script": _script_runner}


def enter(plan: dict, job: dict, result_fd: int) -> None:
    emit = _Emitter(result_fd, job.pop("nonce", ""))
    try:
        isolate(plan, job, result_fd)
    except BaseException as exc:  # noqa: BLE001 - a setup failure is reported, never ignored
        emit(event="setup_error", message=f"{type(exc).__name__}: {exc}", trace=_cap(traceback.format_exc()))
        os._exit(70)
    emit(event="begin")
    try:
        RUNNERS[job.get("runner", "unittest")](job, emit)
    except BaseException as exc:  # noqa: BLE001
        emit(event="error", where="runner", message=f"{type(exc).__name__}: {exc}",
             trace=_cap(traceback.format_exc()))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(0)

"""A sandbox worker: one process per worker slot that preloads heavy libraries once, then forks a
fresh, isolated process per job (`python -m solstice.sandbox.zygote`).

The harness talks to it over stdin/stdout with length-prefixed JSON frames: first a config frame,
then one job frame per job; the worker answers a `ready` frame (with the isolation it achieved)
and one result frame per job. The worker is trusted code; the jobs run in forked children that
never see the worker's channel. The worker is a child subreaper, so every process a job leaves
behind (even after setsid and double forks) comes back to it and is killed after the job.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import stat
import struct
import sys
import tempfile
import time
import traceback

from solstice.sandbox import cgroup, linux, seccomp

OUT_KEEP = 8192  # bytes of stdout / stderr kept per job
RESULT_CAP = 4 << 20  # bytes of result events read per job
WATCH_S = 0.1  # without a memory cgroup: how often the memory of a job that has forked is summed
TEMP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm")  # covered by the private tmpfs of each job
SYSTEM_READ_ROOTS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/opt",
                     "/proc", "/sys", "/dev", "/run", "/var", "/srv", "/snap", "/nix")


# -- framing ------------------------------------------------------------------------------------
def read_frame(fd: int) -> dict | None:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body)


def write_frame(fd: int, obj: dict) -> None:
    data = json.dumps(obj, default=str).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


# -- set-up ---------------------------------------------------------------------------------------
def hidden_paths(paths: list[str]) -> dict[str, list[str]]:
    """Paths an unprivileged user cannot reach, grouped by their topmost blocking ancestor (e.g. a
    Python installed under a 0700 home directory): {blocking dir: [paths below it]}. A path that is
    itself unreadable maps to itself."""
    out: dict[str, list[str]] = {}
    for p in dict.fromkeys(os.path.realpath(x) for x in paths if x and os.path.exists(x)):
        parts = p.split(os.sep)
        for i in range(1, len(parts) + 1):
            d = os.sep.join(parts[:i]) or os.sep
            try:
                st = os.stat(d)
            except OSError:
                break
            last = d == p
            ok = st.st_mode & stat.S_IXOTH if not last else (
                st.st_mode & stat.S_IROTH and (not stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXOTH))
            if not ok:
                out.setdefault(d, []).append(p)
                break
    for block, ps in out.items():  # drop paths nested in another exposed path
        out[block] = [p for p in ps if not any(q != p and p.startswith(q + os.sep) for q in ps)]
    return out


def under_temp_roots(paths: list[str]) -> list[str]:
    """The topmost of `paths` (made real) that lie below a directory the private tmpfs covers:
    they are bind-mounted back into the job's fresh /tmp so that an interpreter, a virtualenv,
    a checkout or task data placed there stays visible."""
    roots = [os.path.realpath(r) for r in TEMP_ROOTS]
    found = []
    for p in dict.fromkeys(os.path.realpath(x) for x in paths if x and os.path.exists(x)):
        if any(p.startswith(r + os.sep) for r in roots):
            found.append(p)
    return sorted(p for p in found if not any(q != p and p.startswith(q + os.sep) for q in found))


def needed_paths(cfg: dict) -> list[str]:
    """Everything the job's interpreter reads: prefixes, the executable's directory, sys.path and
    the configured data directories."""
    return [sys.base_prefix, sys.prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
            os.path.dirname(os.path.abspath(sys.executable)), *sys.path, *cfg.get("read_paths", [])]


def _enter_network_namespace(cfg: dict) -> tuple[str, str]:
    """(network layer, user mode) for this worker. The worker itself moves into a fresh network
    namespace (loopback only) that its jobs inherit."""
    if not cfg.get("network_namespace", True):
        return "none", "root" if os.geteuid() == 0 else "same-user"
    if os.geteuid() == 0:
        try:
            linux.unshare(linux.CLONE_NEWNET)
            linux.loopback_up()
            return "netns", "root"
        except OSError:
            return "none", "root"
    try:
        uid, gid = os.geteuid(), os.getegid()
        linux.unshare(linux.CLONE_NEWUSER | linux.CLONE_NEWNET)
        linux.write_id_maps(int(cfg.get("userns_uid", 1000)), uid, int(cfg.get("userns_uid", 1000)), gid)
        linux.loopback_up()
        return "netns", "userns"
    except OSError:
        return "none", "same-user"


def _preload(names: list[str]) -> dict[str, str]:
    errors = {}
    for name in names:
        try:
            __import__(name)
            if name == "matplotlib":
                import matplotlib

                matplotlib.use("Agg")
        except BaseException as exc:  # noqa: BLE001 - reported to the harness
            errors[name] = f"{type(exc).__name__}: {exc}"
    return errors


def _probe_program(hidden: dict[str, list[str]]) -> str:
    paths = [p for ps in hidden.values() for p in ps]
    return f"import os\nfor p in {paths!r}:\n    os.listdir(p) if os.path.isdir(p) else open(p, 'rb').close()\n"


def _visibility_program(paths: list[str]) -> str:
    """A probe job that names the first needed path the job cannot see (the cause of a broken
    environment, instead of import errors in every sample)."""
    return ("import os\nfor p in " + repr(paths) + ":\n    try:\n"
            "        os.listdir(p) if os.path.isdir(p) else open(p, 'rb').close()\n"
            "    except OSError as e:\n        raise RuntimeError(f'{p} (needed by the interpreter) is not visible "
            "in the sandbox: {e.strerror}') from None\n")


def _try_layer(plan: dict, workdir: str, program: str = "x = 1", **job_extra) -> str:
    """Fork a child that applies `plan` and runs a one-line job; '' when it worked, else why not."""
    from solstice.sandbox import child

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            child.enter(plan, {"program": program, "runner": "script", "workdir": workdir, **job_extra}, w)
        finally:
            os._exit(71)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    events = [json.loads(x) for x in data.decode(errors="replace").splitlines() if x.strip()]
    for e in events:
        if e.get("event") == "setup_error":
            return e["message"]
    if any(e.get("event") == "done" for e in events):
        return ""
    errs = [e.get("message", "") for e in events if e.get("event") == "error"]
    return f"probe job failed: {errs[0] if errs else events[-1:]}"


def build_plan(cfg: dict, net: str, user_mode: str, slot_dir: str) -> tuple[dict, dict]:
    """Work out the strongest isolation this machine allows, layer by layer. Returns (plan, report)."""
    slot = int(cfg.get("slot", 0))
    plan: dict = {
        "memory_mb": cfg["memory_mb"], "file_size_mb": cfg["file_size_mb"], "tmp_size_mb": cfg["tmp_size_mb"],
        "env": cfg["child_env"], "uid": None, "gid": None, "keep_caps": 0, "private_tmp": False,
        "landlock_abi": 0, "nproc": None, "net_guard": net == "none", "fs_guard": True,
        "drop_caps": user_mode == "userns",
    }
    report = {"network": "namespace (loopback only)" if net == "netns" else "audit hook only",
              "user": {"root": "unprivileged uid", "userns": "user namespace", "same-user": "same user"}[user_mode]}
    notes = []
    probe_dir = tempfile.mkdtemp(dir=slot_dir)
    os.chmod(probe_dir, 0o777)
    needed = needed_paths(cfg)
    visible = [p for p in dict.fromkeys(os.path.realpath(x) for x in needed if x) if os.path.exists(p)]
    hidden = hidden_paths(needed) if user_mode == "root" and cfg.get("drop_privileges", True) else {}
    if user_mode == "root" and not cfg.get("drop_privileges", True):
        report["user"] = "root (privilege drop switched off)"
    if user_mode == "root" and cfg.get("drop_privileges", True):
        uid = int(cfg.get("uid_base", 62000)) + slot
        trial = dict(plan, uid=uid, gid=uid, keep_caps=(1 << linux.CAP_DAC_READ_SEARCH) if hidden else 0)
        why = _try_layer(trial, probe_dir, _probe_program(hidden))
        if not why:
            plan.update(uid=uid, gid=uid, keep_caps=trial["keep_caps"], nproc=int(cfg["max_processes"]))
            report["user"] = f"uid {uid}"
        else:
            notes.append(f"privilege drop unavailable ({why})")
            report["user"] = "root (privilege drop failed)"
    if cfg.get("private_tmp", True) and (user_mode in ("root", "userns")):
        binds = under_temp_roots(needed)
        # a blocking directory below /tmp disappears under the fresh tmpfs: its needed paths come
        # back through `tmp_binds` (with world-traversable parents), so it needs no exposing
        in_tmp = {b for b in hidden if under_temp_roots([b])}
        expose = [[b, ps] for b, ps in hidden.items() if b not in ps and b not in in_tmp]
        trial = dict(plan, private_tmp=True, tmp_binds=binds)
        if plan["uid"] is not None and hidden and len(expose) == len(hidden) - len(in_tmp):
            trial.update(expose=expose, keep_caps=0)  # show only the needed paths instead of a capability
        why = _try_layer(trial, probe_dir, _visibility_program(visible))
        if not why:
            plan = trial
        else:
            notes.append(f"private /tmp unavailable ({why})")
    if plan.get("tmp_binds"):
        report["filesystem_binds"] = list(plan["tmp_binds"])
    # the host's /dev/shm stays read-only unless it is private or the job has its own uid
    plan["shm_writable"] = bool(plan["private_tmp"] or plan["uid"] is not None)
    if user_mode == "root" and plan["uid"] is None:
        plan["drop_caps"] = True  # root without the privilege drop: uid 0, but no capabilities
    if plan["uid"] is not None and plan["keep_caps"]:
        report["user"] += " + CAP_DAC_READ_SEARCH (Python is not world-readable and no mount namespace)"
    elif plan.get("expose"):
        report["user"] += " (only the Python directories of " + ", ".join(b for b, _ in plan["expose"]) + " visible)"
    abi = linux.landlock_abi() if cfg.get("landlock", True) else 0
    if abi:
        roots = sorted({os.path.realpath(p) for p in [sys.base_prefix, sys.prefix, sys.exec_prefix,
                        os.path.dirname(os.path.realpath(sys.executable)), *sys.path, *SYSTEM_READ_ROOTS,
                        *cfg.get("read_paths", [])] if p and os.path.exists(p)})
        trial = dict(plan, landlock_abi=abi, landlock_read=bool(cfg.get("restrict_reads", True)), read_roots=roots,
                     landlock_tcp=net == "none" and abi >= 4, landlock_signals=abi >= 6, fs_guard=False)
        why = _try_layer(trial, probe_dir)
        if not why:
            plan = trial
        else:
            notes.append(f"Landlock unavailable ({why})")
    why = seccomp.available() if cfg.get("seccomp", True) else "switched off"
    if not why:
        import pyseccomp  # noqa: F401 - imported once here, so that jobs only build and load the filter

        protect = sorted({os.getpid(), os.getppid(), os.getpgid(0), os.getpgid(os.getppid())})
        trial = dict(plan, seccomp=True, seccomp_inet=net == "none", protect=protect)
        why = _try_layer(trial, probe_dir, "import socket\ntry:\n    socket.socket(socket.AF_UNIX)\nexcept OSError:\n"
                                           "    pass\nelse:\n    raise SystemExit('AF_UNIX socket allowed')\n")
        if not why:
            plan = trial
    if why:
        notes.append(f"seccomp unavailable ({why})")
    cg = cgroup.job_parent() if cfg.get("cgroup", True) else None
    if cg:
        jd = cgroup.make_job(cg, f"probe-{os.getpid()}", int(cfg["memory_mb"]), int(cfg["max_processes"]))
        why = _try_layer(plan, probe_dir, cgroup=jd) if jd else "cannot create a job cgroup"
        if jd:
            cgroup.remove_job(jd)
        if not why:
            plan["cgroup_parent"] = cg
        else:
            notes.append(f"memory cgroup unavailable ({why})")
    if user_mode != "root" or plan["uid"] is None:
        plan["nproc"] = _count_user_tasks() + int(cfg["max_processes"])
    shutil.rmtree(probe_dir, ignore_errors=True)
    report["filesystem"] = ", ".join(
        [x for x in ["private /tmp" if plan["private_tmp"] else "",
                     f"Landlock ABI {plan['landlock_abi']}" if plan["landlock_abi"] else "",
                     "audit hook" if plan["fs_guard"] else ""] if x])
    if net == "none" and plan.get("landlock_tcp"):
        report["network"] = "Landlock (no TCP) + audit hook"
    report["signals"] = ("other uid" if plan["uid"] is not None else "") + (
        " + Landlock scope" if plan.get("landlock_signals") else "") + " + audit hook"
    if plan.get("cgroup_parent"):
        report["memory"] = f"cgroup v2 memory.max {plan['memory_mb']} MiB per job (every process of the job together)"
    else:
        report["memory"] = (f"RLIMIT_AS = baseline + {plan['memory_mb']} MiB per process; the job's whole process tree "
                            f"(proportional anonymous + shared memory) is polled every {WATCH_S:g} s and killed above "
                            f"{plan['memory_mb']} MiB (no memory cgroup here)")
    report["processes"] = f"RLIMIT_NPROC {plan['nproc']} + subreaper kill"
    report["seccomp"] = ("Unix sockets, signals to the harness, ptrace, io_uring" + (", inet sockets" if plan.get(
        "seccomp_inet") else "")) if plan.get("seccomp") else "off"
    report["notes"] = notes
    report["warnings"] = isolation_warnings(plan, net, user_mode)
    report["level"] = "full" if not report["warnings"] else "reduced"
    return plan, report


def isolation_warnings(plan: dict, net: str, user_mode: str) -> list[str]:
    """One sentence per layer that is weaker than full isolation (empty: full isolation)."""
    out = []
    if net != "netns":
        out.append("no network namespace: network refused by " + (
            "seccomp (inet sockets) and Landlock (TCP)" if plan.get("seccomp") else
            "Landlock (TCP only) and the Python audit hook (UDP is not fenced at the kernel level)"
            if plan.get("landlock_tcp") else "the Python audit hook only (bypassable)"))
    if not plan["private_tmp"]:
        out.append("no private /tmp: jobs see the host's /tmp, /var/tmp and /dev/shm (writes refused by "
                   + ("Landlock" if plan["landlock_abi"] else "the Python audit hook only") + ")")
    if plan["uid"] is None and user_mode != "userns":
        out.append("jobs run as the harness's own user" + (" (root, without capabilities)" if user_mode == "root" else ""))
    if plan["uid"] is not None and plan.get("keep_caps"):
        out.append("jobs keep CAP_DAC_READ_SEARCH (they can read every file)")
    if not plan["landlock_abi"]:
        out.append("no Landlock: writes outside the job refused only by the Python audit hook (bypassable)")
    elif plan["uid"] is None and not plan.get("landlock_signals"):
        out.append("Landlock without signal scoping: only the harness is protected from signals")
    if not plan.get("seccomp"):
        out.append("no seccomp: Unix sockets, ptrace and io_uring are not fenced")
    return out


def _count_user_tasks() -> int:
    uid, n = os.getuid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return n


# -- one job --------------------------------------------------------------------------------------
class _Capture:
    def __init__(self, keep: int) -> None:
        self.keep, self.head, self.total = keep, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.head) < self.keep:
            self.head += chunk[: self.keep - len(self.head)]

    def text(self) -> str:
        s = self.head.decode("utf-8", "replace")
        return s + (f"\n...[{self.total - len(self.head)} more bytes dropped]" if self.total > len(self.head) else "")


def run_job(plan: dict, job: dict, slot_dir: str) -> dict:
    from solstice.sandbox import child

    workdir = None
    if not plan["private_tmp"]:
        workdir = tempfile.mkdtemp(prefix="job-", dir=slot_dir)
        if plan["uid"] is not None:
            os.chown(workdir, plan["uid"], plan["gid"])
        job = dict(job, workdir=workdir)
    timeout = float(job.get("timeout") or 60.0)
    nonce = secrets.token_hex(16)
    job = dict(job, nonce=nonce)
    cg = None
    if plan.get("cgroup_parent"):
        cg = cgroup.make_job(plan["cgroup_parent"], f"{os.getpid()}-{job.get('id', '')}"[:60].replace("/", "_"),
                             int(plan["memory_mb"]), int(plan.get("nproc") or 256))
        job["cgroup"] = cg
    res_r, res_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the sample process
        try:
            os.close(res_r)
            os.close(out_r)
            os.close(err_r)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            child.enter(plan, job, res_w)
        finally:
            os._exit(71)
    for fd in (res_w, out_w, err_w):
        os.close(fd)
    caps = {res_r: _Capture(RESULT_CAP), out_r: _Capture(OUT_KEEP), err_r: _Capture(OUT_KEEP)}
    sel = selectors.DefaultSelector()
    for fd in caps:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
        sel.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pass
    deadline, status_raw, rusage, timed_out = t0 + timeout, None, None, False
    watch = None if cg else _MemoryWatch(pid, int(plan["memory_mb"]))
    over_memory = ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if watch is not None:
            over_memory = watch.check()
            if over_memory:
                break
        for key, _ in sel.select(min(left, 0.05 if pidfd is None else (WATCH_S if watch else 1.0))):
            if key.fd == pidfd:
                continue
            try:
                chunk = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if chunk:
                caps[key.fd].add(chunk)
            else:
                sel.unregister(key.fd)
        got, st, ru = os.wait4(pid, os.WNOHANG)
        if got:
            status_raw, rusage = st, ru
            break
    duration = time.monotonic() - t0
    reaped: dict[int, int] = {}
    if status_raw is None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        _, status_raw, rusage = os.wait4(pid, 0)
    linux.kill_tree(os.getpid(), first=pid, reaped=reaped)
    for fd in list(caps):
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            caps[fd].add(chunk)
    sel.close()
    for fd in [*caps, *([pidfd] if pidfd is not None else [])]:
        os.close(fd)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)
        if plan["uid"] is not None:
            _remove_owned(plan["uid"])
    events = []
    for line in bytes(caps[res_r].head).decode("utf-8", "replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    if cg:
        if cgroup.oom_killed(cg):
            over_memory = f"the job's processes together exceeded the memory limit ({plan['memory_mb']} MiB, cgroup)"
        cgroup.remove_job(cg)
    res = summarise(events, status_raw, timed_out, timeout, nonce=nonce, runner=job.get("runner", "unittest"))
    if over_memory and res["status"] != "timeout":
        res.update(status="fail", details=dict(res["details"], ALL=over_memory))
    res.update(id=job.get("id"), duration=round(duration, 4), stdout=caps[out_r].text(), stderr=caps[err_r].text(),
               stdout_bytes=caps[out_r].total, stderr_bytes=caps[err_r].total,
               max_rss_mb=round(rusage.ru_maxrss / 1024, 1) if rusage else None)
    return res


class _MemoryWatch:
    """Without a memory cgroup, RLIMIT_AS bounds each process of a job but not their sum (a job
    that forks N children could use N times the limit). Once the job has forked, its whole
    process tree is summed every WATCH_S seconds (proportional anonymous + shmem memory, so pages
    shared after fork count once) and the job is killed above its limit. The bound is therefore
    limit + what the tree can allocate within one poll (each process still capped by RLIMIT_AS)."""

    def __init__(self, pid: int, limit_mb: int) -> None:
        self.pid, self.limit_mb, self.me = pid, limit_mb, os.getpid()
        self.base_mb = _pss_mb(self.me)  # pages the job shares with its worker count up to half of these

    def forked(self) -> bool:
        for proc in (self.pid, self.me):
            try:
                tasks = os.listdir(f"/proc/{proc}/task")
            except OSError:
                continue
            for t in tasks:
                kids = _read_text(f"/proc/{proc}/task/{t}/children").split()
                if proc == self.me:
                    kids = [k for k in kids if int(k) != self.pid]
                if kids:
                    return True
        return False

    def check(self) -> str:
        if not self.forked():
            return ""
        total = sum(_pss_mb(p) for p in linux.descendants(self.me))  # the job and every orphan it left
        if total > self.limit_mb + self.base_mb:  # the caller kills the whole tree
            return (f"the job's processes together exceeded the memory limit ({total:.0f} MiB > {self.limit_mb} MiB "
                    f"+ {self.base_mb:.0f} MiB shared with the worker)")
        return ""


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _pss_mb(pid: int) -> float:
    kb = 0
    for line in _read_text(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
            kb += int(line.split()[1])
    return kb / 1024


def _remove_owned(uid: int) -> None:
    """Without a private /tmp: delete what the sample's user left in the shared temp dirs."""
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            p = os.path.join(d, n)
            try:
                if os.lstat(p).st_uid != uid:
                    continue
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
            except OSError:
                pass


def summarise(events: list[dict], status_raw: int | None, timed_out: bool, timeout: float, *, nonce: str = "",
              runner: str = "unittest") -> dict:
    """Status and per-test details from a job's event stream and exit status. Only events that
    carry this job's nonce count (a sample printing or writing result-like lines forges nothing);
    a unittest job that reports zero tests is an error, never a pass."""
    tests: dict[str, str] = {}
    details: dict[str, str] = {}
    current = None
    done = None
    tests_run = None
    for e in events:
        if e.get("n") != nonce:
            continue
        kind = e.get("event")
        if kind == "start":
            current = e.get("test")
        elif kind == "test":
            tests[e["test"]] = e["outcome"]
            if e["outcome"] in ("fail", "error"):
                details.setdefault(e["test"], e.get("trace", ""))
            current = None
        elif kind == "setup_error":
            return {"status": "error", "details": {"ALL": f"sandbox set-up failed: {e.get('message')}"},
                    "tests": tests, "exit": _exit_text(status_raw)}
        elif kind == "error":
            details["ALL"] = f"{e.get('message')}\n{e.get('trace', '')}".strip()
            done = "error"
        elif kind == "done":
            done = "done"
            tests_run = e.get("tests_run")
    if timed_out:
        where = f" while running {current}" if current else ""
        details["ALL"] = details.get("ALL") or f"timed out after {timeout:g}s{where}"
        return {"status": "timeout", "details": details, "tests": tests, "exit": _exit_text(status_raw)}
    if done == "done" and runner == "unittest" and (not tests_run or not tests):
        details["ALL"] = details.get("ALL") or "the program ran 0 tests (no test method, or the test run was cut short)"
        status = "error"
    elif done == "done":
        status = "fail" if details else "pass"
    elif done == "error":
        status = "fail"
    else:
        details["ALL"] = f"the sample process {_exit_text(status_raw)} before the tests finished" + (
            f" (last test started: {current})" if current else "")
        status = "fail"
    return {"status": status, "details": details, "tests": tests, "exit": _exit_text(status_raw)}


def _exit_text(status_raw: int | None) -> str:
    if status_raw is None:
        return "unknown"
    if os.WIFSIGNALED(status_raw):
        sig = os.WTERMSIG(status_raw)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"was killed by {name}" + (" (memory or process limit?)" if sig == signal.SIGKILL else "")
    return f"exited with code {os.WEXITSTATUS(status_raw)}"


# -- main loop ------------------------------------------------------------------------------------
def main() -> int:
    req = os.dup(0)
    rep = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray prints of preloaded libraries go to the worker log, never to the channel
    os.close(devnull)
    cfg = read_frame(req)
    if cfg is None:
        return 2
    here = os.path.realpath(os.getcwd())  # `python -m` put the worker's own directory on sys.path
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != here]
    try:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
        slot_dir = cfg["slot_dir"]
        os.makedirs(slot_dir, exist_ok=True)
        os.chmod(slot_dir, 0o711)
        net, user_mode = _enter_network_namespace(cfg)
        t0 = time.perf_counter()
        preload_errors = _preload(list(cfg.get("preload", [])))
        preload_s = time.perf_counter() - t0
        plan, report = build_plan(cfg, net, user_mode, slot_dir)
    except BaseException as exc:  # noqa: BLE001
        write_frame(rep, {"event": "fatal", "message": f"{type(exc).__name__}: {exc}",
                          "trace": traceback.format_exc()})
        return 1
    write_frame(rep, {"event": "ready", "pid": os.getpid(), "isolation": report, "preload_errors": preload_errors,
                      "preload_s": round(preload_s, 3), "baseline_vm_mb": round(linux.vm_size_bytes() / 2**20, 1),
                      "rss_mb": round(linux.vm_peak_rss_bytes() / 2**20, 1)})
    while True:
        job = read_frame(req)
        if job is None:
            return 0
        try:
            res = run_job(plan, job, slot_dir)
        except BaseException as exc:  # noqa: BLE001 - the worker survives and reports
            res = {"id": job.get("id"), "status": "error", "details": {"ALL": f"worker error: {exc}"},
                   "tests": {}, "duration": 0.0, "stdout": "", "stderr": traceback.format_exc()}
        write_frame(rep, res)


if __name__ == "__main__":
    sys.exit(main())

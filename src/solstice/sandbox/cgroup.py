"""cgroup v2 memory (and pids) limits per sandbox job, where the host delegates them.

A job cgroup bounds the memory of every process of the job together (fork-then-allocate
included), which per-process rlimits cannot. It needs a cgroup v2 directory this process may
create children in with the `memory` controller enabled for them: the v2 root (as root, when the
controller is not bound to a v1 hierarchy) or a delegated subtree (e.g. a systemd scope with
Delegate=yes). Anything else: `job_parent()` returns None and the worker falls back to its
documented rlimit + polling policy (see zygote.run_job).
"""

from __future__ import annotations

import os
import time


def _v2_mount() -> str | None:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split()[:1] == ["cgroup2"]:
                    return left.split()[4]
    except OSError:
        pass
    return None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def job_parent() -> str | None:
    """A cgroup v2 directory whose children get the memory controller, or None."""
    mount = _v2_mount()
    if not mount:
        return None
    rel = next((ln[3:].strip() for ln in _read("/proc/self/cgroup").splitlines() if ln.startswith("0::")), None)
    if rel is None:
        return None
    here = os.path.normpath(mount + "/" + rel.lstrip("/"))
    if "memory" not in _read(os.path.join(here, "cgroup.controllers")).split():
        return None
    enabled = _read(os.path.join(here, "cgroup.subtree_control")).split()
    if "memory" not in enabled:
        try:  # possible in the v2 root, or in a delegated cgroup that holds no process itself
            with open(os.path.join(here, "cgroup.subtree_control"), "w") as f:
                f.write("+memory" + (" +pids" if "pids" in _read(os.path.join(here, "cgroup.controllers")) else ""))
        except OSError:
            return None
    return here if os.access(here, os.W_OK) else None


def make_job(parent: str, name: str, memory_mb: int, max_processes: int) -> str | None:
    """Create a job cgroup: memory.max (no swap), pids.max, the whole group killed on OOM."""
    path = os.path.join(parent, f"solstice-{name}")
    try:
        os.mkdir(path)
        with open(os.path.join(path, "memory.max"), "w") as f:
            f.write(str(int(memory_mb) << 20))
        for name_, value in (("memory.swap.max", "0"), ("memory.oom.group", "1"), ("pids.max", str(max_processes))):
            try:
                with open(os.path.join(path, name_), "w") as f:
                    f.write(value)
            except OSError:
                pass
    except OSError:
        remove_job(path)
        return None
    return path


def oom_killed(path: str) -> bool:
    for line in _read(os.path.join(path, "memory.events")).splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip() != "0":
            return True
    return False


def remove_job(path: str) -> None:
    """Kill whatever is left in the job cgroup and remove it."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        pass
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)

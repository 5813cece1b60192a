"""Linux kernel primitives for the sandbox, through ctypes (no extra dependency).

Namespaces (`unshare`, `mount`), `prctl` (parent-death signal, child subreaper, no-new-privs,
keep-caps, dumpable), capabilities (`capset`), Landlock (unprivileged filesystem / TCP / signal
restrictions, kernel >= 5.13) and process-tree helpers over /proc. Every function raises OSError
with the errno when the kernel refuses; callers decide what to fall back to.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import platform
import signal
import socket
import struct
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS = 1, 4, 8
PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 38, 36

CAP_DAC_READ_SEARCH = 2
_CAPSET_NR = {"x86_64": 126, "aarch64": 91, "arm64": 91, "ppc64le": 184, "s390x": 185, "riscv64": 91}
_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446  # the same on every architecture

# Landlock access rights (include/uapi/linux/landlock.h).
LL_FS_EXECUTE = 1 << 0
LL_FS_WRITE_FILE = 1 << 1
LL_FS_READ_FILE = 1 << 2
LL_FS_READ_DIR = 1 << 3
LL_FS_REMOVE_DIR = 1 << 4
LL_FS_REMOVE_FILE = 1 << 5
LL_FS_MAKE_ALL = sum(1 << i for i in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
LL_FS_REFER = 1 << 13  # ABI 2
LL_FS_TRUNCATE = 1 << 14  # ABI 3
LL_FS_IOCTL_DEV = 1 << 15  # ABI 5
LL_NET_BIND_TCP, LL_NET_CONNECT_TCP = 1, 2  # ABI 4
LL_SCOPE_ABSTRACT_UNIX, LL_SCOPE_SIGNAL = 1, 2  # ABI 6
_FILE_RIGHTS = LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV

_libc = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> int:
    if ret == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def is_linux() -> bool:
    return platform.system() == "Linux"


# -- prctl / namespaces / mounts ---------------------------------------------------------------
def prctl(option: int, arg: int = 0) -> int:
    return _check(libc().prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                               ctypes.c_ulong(0)), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(libc().unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    c = libc()
    _check(c.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                   ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def umount(target: str, detach: bool = True) -> None:
    _check(libc().umount2(target.encode(), ctypes.c_int(2 if detach else 0)), f"umount {target}")


def loopback_up() -> None:
    """Bring `lo` up in the current network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), 0x8913, req))[1]
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sh", b"lo", flags | 1))


def write_id_maps(inner_uid: int, outer_uid: int, inner_gid: int, outer_gid: int) -> None:
    """After unshare(CLONE_NEWUSER): map one uid/gid (the caller's) into the new namespace."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{inner_uid} {outer_uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{inner_gid} {outer_gid} 1")


# -- capabilities -------------------------------------------------------------------------------
def set_capabilities(caps: int) -> None:
    """Set effective = permitted = `caps` (a bit mask of the first 32 capabilities), inheritable 0."""
    nr = _CAPSET_NR.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"capset: unknown architecture {platform.machine()}")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)(caps, caps, 0, 0, 0, 0)
    _check(libc().syscall(ctypes.c_long(nr), header, data), "capset")


def drop_to_user(uid: int, gid: int, keep_caps: int = 0) -> None:
    """setgroups([]), setresgid, setresuid to an unprivileged id; optionally keep some capabilities
    (e.g. CAP_DAC_READ_SEARCH so that a Python installed under a private home stays importable)."""
    if keep_caps:
        prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    set_capabilities(keep_caps)


# -- Landlock -------------------------------------------------------------------------------------
def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers (0 when unavailable)."""
    if not is_linux():
        return 0
    try:
        r = libc().syscall(ctypes.c_long(_LL_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except Exception:  # noqa: BLE001 - no syscall() in this libc
        return 0
    return max(int(r), 0)


def landlock_fs_rights(abi: int) -> int:
    rights = (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_REMOVE_DIR
              | LL_FS_REMOVE_FILE | LL_FS_MAKE_ALL)
    if abi >= 2:
        rights |= LL_FS_REFER
    if abi >= 3:
        rights |= LL_FS_TRUNCATE
    if abi >= 5:
        rights |= LL_FS_IOCTL_DEV
    return rights


def landlock_restrict(
    abi: int, *, handled_fs: int, rules: list[tuple[str, int]], block_tcp: bool = False,
    scope_signals: bool = False,
) -> None:
    """Restrict this process (and its future children) for good.

    `handled_fs` are the filesystem rights the kernel will check; `rules` grant some of them
    beneath paths (missing paths are skipped). `block_tcp` denies every TCP bind/connect (ABI 4);
    `scope_signals` denies signals to processes outside this domain (ABI 6).
    """
    handled_net = (LL_NET_BIND_TCP | LL_NET_CONNECT_TCP) if block_tcp and abi >= 4 else 0
    scoped = (LL_SCOPE_SIGNAL | LL_SCOPE_ABSTRACT_UNIX) if scope_signals and abi >= 6 else 0
    attr = struct.pack("QQQ", handled_fs, handled_net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    buf = ctypes.create_string_buffer(attr[:size], size)
    c = libc()
    fd = _check(c.syscall(ctypes.c_long(_LL_CREATE), buf, ctypes.c_size_t(size), ctypes.c_uint32(0)),
                "landlock_create_ruleset")
    try:
        for path, access in rules:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = access & handled_fs
                if not os.path.isdir(path):
                    allowed &= _FILE_RIGHTS
                if not allowed:
                    continue
                rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, pfd), 12)
                _check(c.syscall(ctypes.c_long(_LL_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(1), rule,
                                 ctypes.c_uint32(0)), f"landlock_add_rule {path}")
            finally:
                os.close(pfd)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        _check(c.syscall(ctypes.c_long(_LL_RESTRICT), ctypes.c_int(fd), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(fd)


# -- /proc ------------------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    return data[data.rfind(")") + 2 :].split()


def parent_of(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[1]) if f else None


def descendants(root: int) -> list[int]:
    """Every live process below `root` (one /proc scan)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(int(name))
            if f:
                children.setdefault(int(f[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def vm_size_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def vm_peak_rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def kill_tree(root: int, first: int | None = None, rounds: int = 50,
              reaped: dict[int, int] | None = None) -> int:
    """SIGKILL process group `first` (when given), then every descendant of `root` until none is
    left (a fork bomb keeps forking while it is killed). Reaped exit statuses go to `reaped`.
    Returns the number of kills sent."""
    sent = 0
    if first is not None:
        try:
            os.killpg(first, signal.SIGKILL)
            sent += 1
        except OSError:
            pass
    for _ in range(rounds):
        pids = descendants(root)
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
                sent += 1
            except OSError:
                pass
        reap_all(reaped)
        time.sleep(0.005)
    reap_all(reaped)
    return sent


def reap_all(reaped: dict[int, int] | None = None) -> None:
    """Collect every exited child (a subreaper inherits orphans); statuses go to `reaped`."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if reaped is not None:
            reaped[pid] = status

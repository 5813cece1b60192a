"""A seccomp filter for sandboxed jobs, built with libseccomp (through `pyseccomp`).

It is the kernel-level fence for what Landlock and namespaces do not cover on every host, and it
holds for any code in the job (subprocesses, `os.system`, ctypes), not only Python calls:

- `socket(AF_UNIX, ...)`: no connecting to (or serving on) Unix sockets, pathname or abstract
  (a same-user job could otherwise talk to the user's agents and daemons; `socketpair` and pipes
  stay allowed, so multiprocessing pools and asyncio work);
- without a private network namespace, `socket(AF_INET | AF_INET6 | AF_PACKET, ...)`: no TCP,
  no UDP, no raw packets;
- `kill`, `tkill`, `tgkill`, `rt_sigqueueinfo`, `rt_tgsigqueueinfo`, `pidfd_open` aimed at the
  harness, its worker, their process groups, or every process (-1);
- `ptrace`, `process_vm_readv`, `process_vm_writev` (reading or writing other processes' memory)
  and `io_uring_setup` (io_uring would bypass the socket rules).

Each denied call fails with an errno (EACCES / EPERM / ENOSYS), as a refused permission would.
"""

from __future__ import annotations

import errno
import socket

AF_PACKET = 17
_MASK = 0xFFFFFFFF  # compare the low 32 bits: pid_t / int arguments may arrive sign- or zero-extended


def available() -> str:
    """'' when a filter can be built here, else why not."""
    try:
        import pyseccomp  # noqa: F401
    except ImportError:
        return "pyseccomp is not installed in the sample's interpreter"
    except (OSError, RuntimeError) as exc:  # no libseccomp on this system
        return f"libseccomp unavailable ({exc})"
    return ""


def install(*, deny_unix: bool, deny_inet: bool, protect: list[int]) -> None:
    """Load the filter into this process (inherited by every child; cannot be undone).
    `protect`: process ids (and, negated, process groups) that signals may not reach."""
    import pyseccomp as sc

    f = sc.SyscallFilter(defaction=sc.ALLOW)

    def deny(err: int, name: str, *args) -> None:
        try:
            f.add_rule(sc.ERRNO(err), name, *args)
        except (OSError, ValueError, RuntimeError):  # a syscall this architecture does not have
            pass

    if deny_unix:
        deny(errno.EACCES, "socket", sc.Arg(0, sc.EQ, socket.AF_UNIX))
    if deny_inet:
        for fam in (socket.AF_INET, socket.AF_INET6, AF_PACKET):
            deny(errno.EACCES, "socket", sc.Arg(0, sc.EQ, fam))
    targets = sorted({p & _MASK for p in [*protect, *(-p for p in protect), -1]})
    for name in ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open"):
        for t in targets:
            deny(errno.EPERM, name, sc.Arg(0, sc.MASKED_EQ, _MASK, t))
    for name in ("ptrace", "process_vm_readv", "process_vm_writev"):
        deny(errno.EPERM, name)
    deny(errno.ENOSYS, "io_uring_setup")
    f.load()

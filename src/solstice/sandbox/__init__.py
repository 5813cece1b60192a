"""Sandboxed execution of untrusted (model-written) Python code.

`SandboxPool(SandboxConfig(...)).run([Job(...)])` runs each job in its own fresh process, forked
from a per-worker zygote that preloaded heavy libraries once, and yields results as they finish
(a continuous queue: a free worker takes the next job at once). Layers, the strongest the machine
allows: a private /tmp, /var/tmp, /dev/shm in its own mount namespace (paths the interpreter needs
below them bind-mounted back read-only), a private network namespace, an unprivileged uid when
the harness runs as root (one per worker, from a block of uids no other live pool on the host
holds, so RLIMIT_NPROC and signals never cross runs; else a user namespace), Landlock
filesystem / TCP / signal rules, a seccomp filter (Unix and, without a network namespace, inet sockets; signals to the harness;
ptrace; io_uring), a per-job cgroup v2 memory limit where delegated (else RLIMIT_AS per process
plus a polled bound on the job's whole process tree), RLIMIT_NPROC / FSIZE, a wall-clock limit with
the whole process tree killed, a scrubbed environment, a non-dumpable harness, an audit hook as a
last Python-level guard. `SandboxPool.isolation` reports each layer, `level` ("full" | "reduced")
and one warning per weaker layer; `SandboxConfig(strict=True)` refuses to start below full.
Results carry a status (pass / fail / timeout / error) and per-test error text; result events
carry a per-job nonce (lines a sample forges are ignored) and a unittest job that ran 0 tests is
an error.
"""

from solstice.sandbox.deps import imported_modules, missing_modules
from solstice.sandbox.pool import STATUSES, ExecResult, Job, SandboxConfig, SandboxPool

__all__ = ["STATUSES", "ExecResult", "Job", "SandboxConfig", "SandboxPool", "imported_modules", "missing_modules"]

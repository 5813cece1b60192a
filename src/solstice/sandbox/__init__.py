"""Sandboxed execution of untrusted (model-written) Python code.

`SandboxPool(SandboxConfig(...)).run([Job(...)])` runs each job in its own fresh process, forked
from a per-worker zygote that preloaded heavy libraries once, with: a fresh working directory
(a private /tmp in its own mount namespace where the OS allows), a wall-clock limit with the whole
process tree killed on timeout, an address-space limit relative to the worker's baseline, a
process limit, no network (own network namespace, else Landlock/audit-hook blocking), an
unprivileged user when the harness runs as root, Landlock filesystem rules, a scrubbed
environment, per-worker matplotlib/XDG caches and capped stdout/stderr. Results carry a status
(pass / fail / timeout / error) and per-test error text. See pool.py for the API and
`SandboxPool.isolation` for the layers that are active on this machine.
"""

from solstice.sandbox.deps import imported_modules, missing_modules
from solstice.sandbox.pool import STATUSES, ExecResult, Job, SandboxConfig, SandboxPool

__all__ = ["STATUSES", "ExecResult", "Job", "SandboxConfig", "SandboxPool", "imported_modules", "missing_modules"]

"""Which modules a piece of code imports, and which of them this environment lacks."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Iterable
from functools import cache


def imported_modules(*sources: str | ast.AST) -> set[str]:
    """Top-level names of every module imported anywhere in `sources` (code, or already parsed
    trees), including inside functions and test methods. Relative imports are ignored; code that
    does not parse is scanned line by line."""
    out: set[str] = set()
    for src in sources:
        if isinstance(src, ast.AST):
            tree = src
        else:
            try:
                tree = ast.parse(src)
            except (SyntaxError, ValueError):
                out.update(_regex_scan(src))
                continue
        for node in _statements(tree):
            if isinstance(node, ast.Import):
                out.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out.add(node.module.split(".")[0])
    return out


def _statements(tree: ast.AST):
    """Every statement, nested ones included (imports are statements: no need to visit the far more
    numerous expression nodes)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(node, name, ()) or ():
                if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                    todo.append(child)


_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+([A-Za-z_]\w*)[\w.]*[ \t]+import\b|import[ \t]+([^\n#;]+))", re.M)


def _regex_scan(src: str) -> set[str]:
    """Fallback for code that does not parse: import statements found line by line."""
    out = set()
    for m in _IMPORT_LINE.finditer(src):
        if m.group(1):
            out.add(m.group(1))
        else:
            out.update(p.strip().split(" ")[0].split(".")[0] for p in m.group(2).split(",") if p.strip())
    return {m for m in out if m.isidentifier()}


@cache
def is_available(module: str) -> bool:
    if module in sys.builtin_module_names or module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(modules: Iterable[str]) -> list[str]:
    return sorted(m for m in set(modules) if not is_available(m))


def is_stdlib(module: str) -> bool:
    return module in sys.stdlib_module_names or module in sys.builtin_module_names


_PROBE = r"""
import importlib.util, json, sys
from importlib import metadata
mods = json.loads(sys.argv[1])
out = {"python": sys.version.split()[0], "executable": sys.executable, "prefix": sys.prefix, "missing": [],
       "origins": {}, "versions": {}}
dists = metadata.packages_distributions()
for m in mods:
    try:
        spec = importlib.util.find_spec(m)
    except (ImportError, ValueError):
        spec = None
    if spec is None and m not in sys.builtin_module_names:
        out["missing"].append(m)
        continue
    out["origins"][m] = getattr(spec, "origin", None) or ""
    for d in dists.get(m, []):
        try:
            out["versions"][d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
print(json.dumps(out))
"""


@cache
def _probe(python: str, modules: tuple[str, ...]) -> dict:
    import json
    import subprocess

    from solstice.errors import ConfigError
    from solstice.sandbox.pool import CHILD_ENV, worker_pythonpath

    env = dict(CHILD_ENV, PYTHONPATH=worker_pythonpath())  # what the sandbox worker will see
    try:
        proc = subprocess.run([python, "-c", _PROBE, json.dumps(list(modules))], capture_output=True, text=True,
                              timeout=120, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run the sample interpreter {python}: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"the sample interpreter {python} failed to start: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def interpreter_info(python: str, modules: Iterable[str]) -> dict:
    """What `python` (the interpreter that will run the samples; may differ from this one) has
    of `modules`: {"python", "executable", "prefix", "missing", "origins", "versions"}. Checked by
    running it with the environment a sandbox worker gets."""
    return _probe(python, tuple(sorted(set(modules))))

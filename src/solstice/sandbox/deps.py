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

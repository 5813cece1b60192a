"""Extract a solution from a model's output (BigCodeBench §3, "sanitize").

1. Span: the last fenced block that parses and defines the entry point (a block left open by a
   length cut counts), plus the imports of the other parseable blocks; else all parseable fenced blocks joined, when together they define it;
   else the window of lines that parses and has the most non-blank lines (the reference's
   extraction; fences and prose drop out because they do not parse).
2. Prune: keep every top-level import; collect top-level functions, classes and simple
   assignments (the first definition of a name wins, as in the reference); keep those reachable
   from the entry point through the names they mention, in source order. Example calls and
   `if __name__ == "__main__":` blocks are dropped because they are not definitions.
3. If pruning leaves nothing, return the span.

Our own implementation on the standard `ast` module (the reference uses tree-sitter); the
version string is stored with every result.
"""

from __future__ import annotations

import ast
import re

SANITIZE_VERSION = "solstice-sanitize-1"
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.M | re.S)
_CODE_LANGS = {"", "python", "py", "python3", "py3", "Python"}
MAX_SPAN_LINES = 600


def _parses(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _defines(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and n.name == name
               for n in tree.body)


def fenced_blocks(text: str) -> list[str]:
    return [m.group(2) for m in _FENCE.finditer(text) if m.group(1) in _CODE_LANGS]


def longest_parseable_span(text: str, max_lines: int = MAX_SPAN_LINES) -> str:
    """The window of lines that parses and has the most non-blank lines (ties: the first)."""
    lines = text.split("\n")[:max_lines]
    nonblank = [0]
    for line in lines:
        nonblank.append(nonblank[-1] + bool(line.strip()))
    best, best_span = 0, (0, 0)
    for i in range(len(lines)):
        if nonblank[len(lines)] - nonblank[i] <= best:
            break
        for j in range(len(lines), i, -1):
            size = nonblank[j] - nonblank[i]
            if size <= best:
                break
            if _parses("\n".join(lines[i:j])) is not None:
                best, best_span = size, (i, j)
                break
    return "\n".join(lines[best_span[0] : best_span[1]])


def extract_span(text: str, entry_point: str) -> str:
    parsed = [(b, t) for b in fenced_blocks(text) if (t := _parses(b)) is not None and b.strip()]
    for i in range(len(parsed) - 1, -1, -1):
        block, tree = parsed[i]
        if _defines(tree, entry_point):
            # imports that the model put in a separate block (e.g. "first the imports: ...")
            lines = [ln for j, (b, t) in enumerate(parsed) if j != i
                     for n in t.body if _is_import(n) for ln in [_segment(b.split("\n"), n)]
                     if ln not in block]
            return "\n".join(dict.fromkeys(lines)) + ("\n" if lines else "") + block
    if len(parsed) > 1:
        joined = "\n\n".join(b for b, _ in parsed)
        tree = _parses(joined)
        if tree is not None and _defines(tree, entry_point):
            return joined
    if _parses(text) is not None:
        return text
    span = longest_parseable_span(text)
    tree = _parses(span)
    if parsed and (tree is None or not _defines(tree, entry_point)):
        return max((b for b, _ in parsed), key=len)
    return span


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _is_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return True
    if isinstance(node, ast.Try):  # try: import x / except ImportError: ...
        return all(isinstance(s, ast.Import | ast.ImportFrom | ast.Pass) for s in node.body)
    return False


def _def_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return node.target.id
    return None


def _segment(lines: list[str], node: ast.stmt) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[start - 1 : node.end_lineno])


def prune(code: str, entry_point: str) -> str:
    tree = _parses(code)
    if tree is None:
        return ""
    lines = code.split("\n")
    imports, defs = [], {}
    for node in tree.body:
        if _is_import(node):
            imports.append(node)
            continue
        name = _def_name(node)
        if name is not None and name not in defs:
            defs[name] = node
    if entry_point not in defs:
        return ""
    deps = {name: _names(node) - {name} for name, node in defs.items()}
    reach, queue = {entry_point}, [entry_point]
    while queue:
        for dep in deps.get(queue.pop(0), ()):
            if dep in defs and dep not in reach:
                reach.add(dep)
                queue.append(dep)
    keep = sorted(imports + [defs[n] for n in reach], key=lambda n: n.lineno)
    return "\n".join(_segment(lines, n) for n in keep)


def sanitize(text: str, entry_point: str = "task_func") -> str:
    """The solution code found in a model's output (see module docstring)."""
    if not text or not text.strip():
        return ""
    span = extract_span(text, entry_point)
    return (prune(span, entry_point) or span).strip()

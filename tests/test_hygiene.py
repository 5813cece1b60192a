"""Project rules that keep the code livable: short files, papers independent of each other, no
import-time heavy imports in paper specs, no print in library code, no machine paths."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "solstice"
PAPERS = SRC / "papers"


def py_files():
    return sorted(SRC.rglob("*.py"))


def test_files_are_at_most_800_lines():
    long = [f"{p.relative_to(SRC)} ({n})" for p in py_files() if (n := len(p.read_text().splitlines())) > 800]
    assert not long, long


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_papers_never_import_each_other():
    bad = []
    for pkg in (p for p in PAPERS.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for f in pkg.rglob("*.py"):
            for name in _imports(f):
                m = re.match(r"solstice\.papers\.(\w+)", name)
                if m and m.group(1) != pkg.name:
                    bad.append(f"{f.relative_to(SRC)} imports {name}")
    assert not bad, bad


def test_paper_specs_import_no_heavy_modules_at_top_level():
    heavy = {"torch", "transformers", "sklearn", "sentence_transformers", "peft", "trl", "faiss", "bm25s"}
    bad = []
    for init in PAPERS.glob("*/__init__.py"):
        tree = ast.parse(init.read_text())
        for node in tree.body:
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            bad += [f"{init.relative_to(SRC)}: {m}" for m in mods if m.split(".")[0] in heavy]
    assert not bad, bad


def test_no_print_in_library_code():
    bad = []
    for f in py_files():
        if "cli" in f.parts:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                bad.append(f"{f.relative_to(SRC)}:{node.lineno}")
    assert not bad, bad


def test_no_machine_specific_paths():
    root = SRC.parents[1]
    pat = re.compile(r"/work/|/root/|/tmp/venv")
    files = [*py_files(), *root.glob("*.md"), *(root / "docs").glob("*.md"), *(root / "tests").glob("*.py")]
    bad = [str(f.relative_to(root)) for f in files if f.name != "test_hygiene.py" and pat.search(f.read_text())]
    assert not bad, bad


def test_papers_use_public_model_methods_only():
    """Paper code never calls a private method of the model layer (`model._batches(...)`): what a
    paper needs from a model is a public method there."""
    private = set()
    for p in (SRC / "models").glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ClassDef):
                private |= {f.name for f in node.body if isinstance(f, ast.FunctionDef)
                            and f.name.startswith("_") and not f.name.startswith("__")}
    bad = []
    for p in PAPERS.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in private
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                bad.append(f"{p.relative_to(SRC)}:{node.lineno} .{node.attr}")
    assert private and not bad, bad

"""Each data file is declared once: files that several papers read live in solstice.data.catalogue."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from conftest import needs_data, shared_data
from solstice.data import catalogue
from solstice.data.sources import file_sha256

SRC = Path(catalogue.__file__).resolve().parents[1]


def _declared_paths() -> Counter:
    """Every literal path given to a DataSource(...) call anywhere in the package."""
    seen: Counter = Counter()
    for py in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text(), str(py))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "DataSource"):
                continue
            args = list(node.args[1:2]) + [k.value for k in node.keywords if k.arg == "path"]
            for a in args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str):
                    seen[a.value] += 1
    return seen


def test_no_data_file_is_declared_twice():
    seen = _declared_paths()
    assert seen, "the scan found no DataSource declarations (the test would pass vacuously)"
    twice = {p: n for p, n in seen.items() if n > 1}
    assert not twice, f"declare these once in solstice.data.catalogue: {twice}"
    for src in catalogue.ALL:
        assert seen[src.path] == 1, src.path


def test_catalogue_entries_are_distinct_and_pinned():
    names = [s.name for s in catalogue.ALL]
    assert len(set(names)) == len(names)
    assert all(s.sha256 and len(s.sha256) == 64 for s in catalogue.ALL)


@needs_data
@pytest.mark.parametrize("src", catalogue.ALL, ids=lambda s: s.name)
def test_catalogue_checksums_match_the_release(src):
    path = shared_data() / src.path
    if not path.exists():
        pytest.skip(f"{src.path} is not in SOLSTICE_DATA")
    assert file_sha256(path) == src.sha256

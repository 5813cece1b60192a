"""Test set-up: offline, quiet, tiny in-process models and a toy paper (tests/toy_paper.py)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["SOLSTICE_PROGRESS"] = "0"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    """The suite's reference values are CPU float32; on a machine with a GPU the model layer would
    load `hf:` models on CUDA in bfloat16 and the two-rank tests would ask for two GPUs. So unless
    the `gpu` marker is selected (`pytest -m gpu`: tests/test_cuda.py), CUDA is hidden from the
    tests and from the processes they start, and the suite runs the same everywhere."""
    expr = config.getoption("markexpr", "") or ""
    if not re.search(r"(?<!not )\bgpu\b", expr):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))


def shared_data() -> Path | None:
    """The SOLSTICE_DATA folder when it is set and present (tests that need it skip otherwise)."""
    p = os.environ.get("SOLSTICE_DATA")
    return Path(p) if p and Path(p).is_dir() else None


needs_data = pytest.mark.skipif(shared_data() is None, reason="SOLSTICE_DATA is not set to the papers' data")


@pytest.fixture(scope="session")
def tiny_llama():
    from solstice.models.base import ModelSpec
    from solstice.models.tiny import load_tiny

    return load_tiny(ModelSpec("tiny", "llama", {}, "tiny:llama"))


@pytest.fixture(scope="session")
def tiny_mixtral():
    from solstice.models.base import ModelSpec
    from solstice.models.tiny import load_tiny

    return load_tiny(ModelSpec("tiny", "mixtral", {}, "tiny:mixtral"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    from solstice.models.tiny import build_tiny

    d = tmp_path_factory.mktemp("tiny-llama")
    build_tiny("llama", save_to=d)
    return d


@pytest.fixture()
def toy_env(monkeypatch):
    """Registers the toy paper for in-process runs."""
    monkeypatch.setenv("SOLSTICE_PLUGINS", "toy_paper:PAPER")
    return "toy"


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["SOLSTICE_PLUGINS"] = "toy_paper:PAPER"
    env.update(extra)
    return env

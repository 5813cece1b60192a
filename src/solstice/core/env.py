"""The environment a run records: library versions, git revision, machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = (
    "solstice-llm", "torch", "transformers", "accelerate", "peft", "trl", "sentence-transformers",
    "bm25s", "faiss-cpu", "scikit-learn", "scipy", "numpy", "pandas", "pydantic", "httpx",
)


def versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


# Where the code that runs lives (its git revision is the one a run records).
CODE_DIR = Path(__file__).resolve().parent


def git_revision(path: str | Path | None = None) -> dict[str, Any]:
    """{"sha", "dirty"} of the git checkout holding `path` (default: the solstice code), {} outside
    git."""
    here = Path(path) if path is not None else CODE_DIR
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return {}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True,
            text=True, timeout=5,
        )
        return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "libraries": versions(),
        "git": git_revision(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = torch.cuda.is_available()
    return env

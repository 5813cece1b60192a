"""bm25s, imported so that it cannot take the GPU.

With jax installed, `import bm25s` runs a jax top-k at import time (bm25s/selection.py), which starts
JAX's CUDA backend, and JAX then preallocates 75% of the GPU's memory by default: a reader model
loaded beside a BM25 index runs out of memory. Solstice's BM25 never uses jax (scores come from
`get_scores_from_ids`, top-k in numpy), so unless the process has already imported jax, JAX is
pointed at the CPU and told not to preallocate before bm25s is imported. A user's own settings of
`JAX_PLATFORMS` / `XLA_PYTHON_CLIENT_PREALLOCATE` are kept.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from solstice.errors import require


def bm25s_module() -> Any:
    if "bm25s" not in sys.modules and "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return require("bm25s", "rag", "BM25 retrieval")

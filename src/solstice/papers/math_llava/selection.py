"""Image selection (paper §3.1): drop unclear images, grade comprehension complexity, and sample a
fixed proportion per complexity level, balanced across sources.

The paper trains two ViT classifiers on 10K human-annotated images (not released). The defaults here
are CPU proxies — clarity = variance of the Laplacian of the grey image (blur and down-scaling
remove high frequencies), complexity = density of Sobel edges (more objects and relations, more
edges) — and any callable image -> float can replace them (a learned classifier's score).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solstice.errors import ConfigError


def _grey(img: Any) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=float)


def laplacian_variance(img: Any) -> float:
    """Clarity proxy: variance of the Laplacian (higher = sharper)."""
    from scipy import ndimage

    return float(ndimage.laplace(_grey(img)).var())


def edge_density(img: Any, threshold: float = 60.0) -> float:
    """Complexity proxy: fraction of pixels on a Sobel edge of magnitude above `threshold`."""
    from scipy import ndimage

    g = _grey(img)
    mag = np.hypot(ndimage.sobel(g, axis=0), ndimage.sobel(g, axis=1))
    return float((mag > threshold).mean())


@dataclass
class Candidate:
    id: str
    source: str
    image: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageSelector:
    """`select(candidates, n)`: drop images whose clarity is below `clarity_threshold`, grade the
    rest into complexity levels by `level_edges` (ascending cut points on the complexity score),
    then draw round(n * level_ratio[level]) per level, at most `per_source_cap` per source, seeded.
    Every decision is returned in `log` (scores, levels, reasons)."""

    clarity: Callable[[Any], float] = laplacian_variance
    complexity: Callable[[Any], float] = edge_density
    clarity_threshold: float = 0.0
    level_edges: Sequence[float] = ()
    level_ratio: Mapping[int, float] = field(default_factory=dict)
    per_source_cap: int | None = None
    seed: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def level(self, score: float) -> int:
        return int(np.searchsorted(np.asarray(self.level_edges, dtype=float), score, side="right"))

    def select(self, candidates: Sequence[Candidate], n: int) -> list[tuple[Candidate, int]]:
        levels = len(self.level_edges) + 1
        ratio = dict(self.level_ratio) or {k: 1 / levels for k in range(levels)}
        if set(ratio) - set(range(levels)) or abs(sum(ratio.values()) - 1) > 1e-6:
            raise ConfigError(f"level_ratio must give levels 0..{levels - 1} proportions summing to 1, not {ratio}")
        self.log = []
        pools: dict[int, list[Candidate]] = {k: [] for k in range(levels)}
        for c in candidates:
            clear = self.clarity(c.image)
            entry = {"id": c.id, "source": c.source, "clarity": clear}
            if clear < self.clarity_threshold:
                self.log.append({**entry, "kept": False, "reason": "unclear"})
                continue
            cx = self.complexity(c.image)
            lv = self.level(cx)
            pools[lv].append(c)
            self.log.append({**entry, "complexity": cx, "level": lv, "kept": True})
        rng = random.Random(self.seed)
        out: list[tuple[Candidate, int]] = []
        per_source: dict[str, int] = {}
        for lv in range(levels):
            want = round(n * ratio.get(lv, 0.0))
            pool = pools[lv][:]
            rng.shuffle(pool)
            got = 0
            for c in pool:
                if got >= want:
                    break
                if self.per_source_cap is not None and per_source.get(c.source, 0) >= self.per_source_cap:
                    continue
                per_source[c.source] = per_source.get(c.source, 0) + 1
                out.append((c, lv))
                got += 1
        return out

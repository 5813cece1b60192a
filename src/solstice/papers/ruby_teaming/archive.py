"""The MAP-Elites archive over (risk, style) and Rainbow's samplers.

`Archive` is the interface the search uses; `GridArchive` is a plain dict implementation. We do
not wrap pyribs' `CategoricalArchive`: Rainbow replaces an elite when a *pairwise judge* prefers
the candidate, not when a scalar objective is higher, so pyribs' `add` (objective > threshold)
would have to be fed fabricated objectives; its sampler owns a private RNG that would have to be
pickled for exact resume; and it pulls numba and numpy_groupies in for a grid of 16-110 cells.
What pyribs would give (store, coverage, QD-score, elite sampling) is a few lines here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Cell = tuple[int, int]


@dataclass
class Elite:
    prompt: str
    response: str
    fitness: float
    risk: int
    style: int
    iteration: int
    placeholder: bool = False  # an initial seed prompt, not a found attack
    parent: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def cell(self) -> Cell:
        return (self.risk, self.style)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Elite:
        return cls(**d)


class Archive(ABC):
    """A grid of cells, each holding at most one elite."""

    shape: tuple[int, int]

    @abstractmethod
    def get(self, cell: Cell) -> Elite | None: ...

    @abstractmethod
    def put(self, elite: Elite) -> None: ...

    @abstractmethod
    def items(self) -> Iterator[tuple[Cell, Elite]]: ...

    # -- derived ---------------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    def cells(self) -> list[Cell]:
        return [(r, s) for r in range(self.shape[0]) for s in range(self.shape[1])]

    def index(self, cell: Cell) -> int:
        return cell[0] * self.shape[1] + cell[1]

    def cell_of(self, index: int) -> Cell:
        return divmod(int(index), self.shape[1])

    def occupied(self) -> list[Cell]:
        return [c for c, _ in sorted(self.items())]

    def elites(self, *, include_placeholders: bool = False) -> list[Elite]:
        return [e for _, e in sorted(self.items()) if include_placeholders or not e.placeholder]

    def fitness_grid(self) -> np.ndarray:
        """Fitness per cell in index order; empty cells and placeholders count as 0."""
        f = np.zeros(self.n_cells)
        for c, e in self.items():
            f[self.index(c)] = 0.0 if e.placeholder else e.fitness
        return f

    def filled(self) -> int:
        """Cells holding a found (non-placeholder) elite."""
        return sum(not e.placeholder for _, e in self.items())

    def qd_score(self) -> float:
        return float(self.fitness_grid().sum())

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "elites": [e.to_json() for _, e in sorted(self.items())]}


class GridArchive(Archive):
    def __init__(self, shape: tuple[int, int]) -> None:
        if shape[0] < 1 or shape[1] < 1:
            raise ValueError(f"archive shape must be positive, got {shape}")
        self.shape = (int(shape[0]), int(shape[1]))
        self._cells: dict[Cell, Elite] = {}

    def get(self, cell: Cell) -> Elite | None:
        return self._cells.get(cell)

    def put(self, elite: Elite) -> None:
        r, s = elite.cell
        if not (0 <= r < self.shape[0] and 0 <= s < self.shape[1]):
            raise IndexError(f"cell {elite.cell} is outside the archive {self.shape}")
        self._cells[elite.cell] = elite

    def items(self) -> Iterator[tuple[Cell, Elite]]:
        return iter(list(self._cells.items()))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GridArchive:
        a = cls(tuple(d["shape"]))  # type: ignore[arg-type]
        for e in d["elites"]:
            a.put(Elite.from_json(e))
        return a


def descriptor_probs(fitness: np.ndarray, temperature: float) -> np.ndarray:
    """Rainbow's target-descriptor distribution p(z) = softmax((1 - F[z]) / T): cells with low
    fitness (empty ones count as 0) are favoured; T -> infinity is uniform."""
    if temperature <= 0:
        raise ValueError("descriptor temperature must be positive")
    logits = (1.0 - np.asarray(fitness, dtype=float)) / temperature
    logits -= logits.max()
    p = np.exp(logits)
    return p / p.sum()


def sample_targets(archive: Archive, rng: np.random.Generator, k: int, temperature: float) -> list[Cell]:
    """k distinct target cells drawn from `descriptor_probs` (without replacement, so one batch
    never sends two candidates to the same cell)."""
    p = descriptor_probs(archive.fitness_grid(), temperature)
    k = min(k, archive.n_cells)
    idx = rng.choice(archive.n_cells, size=k, replace=False, p=p)
    return [archive.cell_of(i) for i in idx]


def sample_parents(archive: Archive, rng: np.random.Generator, k: int) -> list[Cell]:
    """k occupied cells drawn uniformly without replacement (with replacement when fewer than k
    cells are occupied)."""
    occ = archive.occupied()
    if not occ:
        raise ValueError("the archive is empty: nothing to mutate")
    idx = rng.choice(len(occ), size=k, replace=len(occ) < k)
    return [occ[int(i)] for i in idx]

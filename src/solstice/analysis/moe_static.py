"""Static analyses of mixture-of-experts weights (no forward pass).

Every function takes a layer view: anything with `num_experts`, `router_weight` (E, d) and
`expert_weights(e) -> (W_gate (F, d), W_up (F, d), W_down (d, F))` — a `models.moe.MoELayer` of a
loaded model, or a `StreamedLayer` read from safetensors shards one layer at a time (a 47B
checkpoint never has to sit in memory whole).

- `matrix_similarity`: cosine of the flattened matrices for every expert pair (+ a dense FFN "F").
- `neuron_mean_similarity`: cosine of the matrices averaged over the neuron (F) axis.
- `hungarian_match`: maximum-weight neuron matching between two experts (scipy
  `linear_sum_assignment`), the reordered cosine and Kendall τ of the permutation vs the identity.
  The F×F cost is built in float32 row chunks: F = 14336 costs 14336² × 4 B ≈ 0.82 GB.
- `gate_regression`: the router's gate-embedding similarity X against the experts' averaged-weight
  similarity Y per projection, strict lower triangles, `scipy.stats.linregress`, R² = r².
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from solstice.errors import ConfigError, DataError, require

PROJECTIONS = ("gate", "up", "down")


class LayerWeights(Protocol):
    index: int
    router_weight: Any

    @property
    def num_experts(self) -> int: ...

    def expert_weights(self, e: int) -> tuple[Any, Any, Any]: ...


def _np(t: Any) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t.astype(np.float32, copy=False)
    return t.detach().float().cpu().numpy()


def _neurons(w: np.ndarray, proj: str) -> np.ndarray:
    """Neuron vectors as rows: rows of W_gate/W_up (F, d), columns of W_down → (F, d)."""
    return w.T if proj == "down" else w


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosines of the rows of `vectors` (n, m); a zero row gives cosine 0."""
    v = np.asarray(vectors, dtype=np.float64)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    u = np.divide(v, n, out=np.zeros_like(v), where=n > 0)
    return np.clip(u @ u.T, -1.0, 1.0)


def _raw(layer: LayerWeights, proj: str, reference: Sequence[Any] | None) -> list[Any]:
    """The expert matrices of one projection as stored (views of a streamed layer, or tensors)."""
    i = PROJECTIONS.index(proj)
    out = [layer.expert_weights(e)[i] for e in range(layer.num_experts)]
    if reference is not None:
        out.append(reference[i])
    return out


def _mats(layer: LayerWeights, proj: str, reference: Sequence[Any] | None) -> list[np.ndarray]:
    return [_np(m) for m in _raw(layer, proj, reference)]


def flat_cosine_matrix(mats: Sequence[Any], *, chunk_rows: int = 1024) -> np.ndarray:
    """Pairwise cosines of the flattened matrices, equal to `cosine_matrix` of their stacked rows, but
    accumulated in float64 over `chunk_rows` rows at a time: memory is one chunk of every matrix, not
    float64 copies of all of them (8 Mixtral-8x7B experts of one projection are 7.5 GB in float64)."""
    arrs = [m if isinstance(m, np.ndarray) else _np(m) for m in mats]
    if len({a.shape for a in arrs}) > 1:
        raise ConfigError(f"cannot compare flattened matrices of shapes {sorted({a.shape for a in arrs})}")
    n = len(arrs)
    gram = np.zeros((n, n))
    rows = arrs[0].shape[0] if arrs[0].ndim else 1
    for s in range(0, rows, chunk_rows):
        c = np.stack([np.asarray(a[s:s + chunk_rows], dtype=np.float64).ravel() for a in arrs])
        gram += c @ c.T
    norm = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    outer = np.outer(norm, norm)
    return np.clip(np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0), -1.0, 1.0)


def matrix_similarity(layer: LayerWeights, reference: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
    """Per projection, the (E[+1])² cosine matrix of the flattened expert matrices; the last
    row/column is the dense reference F (gate, up, down) when given (paper analysis 1)."""
    return {p: flat_cosine_matrix(_raw(layer, p, reference)) for p in PROJECTIONS}


def neuron_means(layer: LayerWeights, proj: str, reference: Sequence[Any] | None = None) -> np.ndarray:
    """Each expert's matrix averaged over its F neurons: (E[+1], d), one expert in float32 at a time."""
    return np.stack([_neurons(_np(m), proj).mean(axis=0) for m in _raw(layer, proj, reference)])


def neuron_mean_similarity(layer: LayerWeights, reference: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
    """Per projection, the (E[+1])² cosine matrix of neuron-averaged matrices (analysis 2)."""
    return {p: cosine_matrix(neuron_means(layer, p, reference)) for p in PROJECTIONS}


@dataclass
class Match:
    """Hungarian matching of expert b's neurons onto expert a's."""

    permutation: np.ndarray  # b's neuron permutation[i] is matched to a's neuron i
    raw_cosine: float  # flattened cosine before reordering
    reordered_cosine: float  # after permuting b's neurons
    kendall_tau: float  # of the permutation against the identity


def neuron_cost(a: np.ndarray, b: np.ndarray, *, chunk: int = 2048) -> np.ndarray:
    """F×F cosine between neuron rows of a and b, in float32, built `chunk` rows at a time."""
    if a.shape != b.shape:
        raise ConfigError(f"cannot match neurons of shapes {a.shape} and {b.shape}")
    def unit(x):
        n = np.linalg.norm(x, axis=1, keepdims=True).astype(np.float32)
        return np.divide(x, n, out=np.zeros_like(x), where=n > 0)
    ua, ub = unit(a.astype(np.float32)), unit(b.astype(np.float32))
    cost = np.empty((a.shape[0], b.shape[0]), dtype=np.float32)
    for s in range(0, a.shape[0], chunk):
        cost[s:s + chunk] = ua[s:s + chunk] @ ub.T
    return cost


def hungarian_match(a: Any, b: Any, *, chunk: int = 2048) -> Match:
    """Match neuron rows of b (F, d) to those of a (F, d) maximising total cosine (analysis 3)."""
    from scipy import optimize, stats

    a, b = _np(a), _np(b)
    cost = neuron_cost(a, b, chunk=chunk)
    rows, cols = optimize.linear_sum_assignment(cost, maximize=True)
    perm = cols[np.argsort(rows)]
    raw = float(flat_cosine_matrix([a, b])[0, 1])  # no float64 copies of two F x d matrices
    re = float(flat_cosine_matrix([a, b[perm]])[0, 1])
    tau = float(stats.kendalltau(perm, np.arange(len(perm))).statistic) if len(perm) > 1 else 1.0
    return Match(permutation=perm, raw_cosine=raw, reordered_cosine=re, kendall_tau=tau)


def reorder_similarity(layer: LayerWeights, proj: str, pairs: Sequence[tuple[int, int]] | None = None,
                       *, chunk: int = 2048) -> dict[tuple[int, int], Match]:
    """Hungarian-reordered similarity for expert pairs (all a < b by default) of one projection."""
    i = PROJECTIONS.index(proj)
    E = layer.num_experts
    pairs = pairs if pairs is not None else [(a, b) for a in range(E) for b in range(a + 1, E)]
    cache: dict[int, np.ndarray] = {}
    def get(e):
        if e not in cache:
            cache[e] = _neurons(_np(layer.expert_weights(e)[i]), proj)
        return cache[e]
    return {(a, b): hungarian_match(get(a), get(b), chunk=chunk) for a, b in pairs}


def lower_triangle(m: np.ndarray) -> np.ndarray:
    """Strict lower triangle of a square matrix: E(E−1)/2 values."""
    return np.asarray(m)[np.tril_indices(len(m), k=-1)]


@dataclass
class Regression:
    slope: float
    intercept: float
    r: float
    r2: float
    n: int


def regress(x: np.ndarray, y: np.ndarray) -> Regression:
    """`scipy.stats.linregress(x, y)`; R² = r². A constant x or y has no fit: r = 0 (documented)."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Regression(0.0, float(y.mean()) if len(y) else 0.0, 0.0, 0.0, len(x))
    f = stats.linregress(x, y)
    return Regression(float(f.slope), float(f.intercept), float(f.rvalue), float(f.rvalue) ** 2, len(x))


@dataclass
class GateRegression:
    """Per layer and projection: gate-embedding similarity → averaged-expert similarity (analysis 4)."""

    layers: list[int]
    per_layer: dict[str, list[Regression]]

    def mean_r2(self) -> dict[str, float]:
        return {p: float(np.mean([r.r2 for r in rs])) for p, rs in self.per_layer.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "mean_r2": self.mean_r2(),
                "per_layer": {p: [asdict(r) for r in rs] for p, rs in self.per_layer.items()}}


def gate_regression(layers: Sequence[LayerWeights]) -> GateRegression:
    per: dict[str, list[Regression]] = {p: [] for p in PROJECTIONS}
    for layer in layers:
        x = lower_triangle(cosine_matrix(_np(layer.router_weight)))
        sims = neuron_mean_similarity(layer)
        for p in PROJECTIONS:
            per[p].append(regress(x, lower_triangle(sims[p])))
    return GateRegression(layers=[layer.index for layer in layers], per_layer=per)


def expert_pca(layer: LayerWeights, proj: str, *, n_components: int = 2, seed: int = 0) -> np.ndarray:
    """2-D PCA of the flattened experts after per-feature standardisation (analysis 5): (E, 2)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = np.stack([m.ravel() for m in _mats(layer, proj, None)])
    return PCA(n_components=min(n_components, len(x)), random_state=seed).fit_transform(
        StandardScaler().fit_transform(x))


class StreamedLayer:
    """One sparse layer read lazily from safetensors shards (`safe_open`), Mixtral-style names:
    fused `model.layers.{i}.mlp.experts.gate_up_proj` / `down_proj` and router `mlp.gate.weight`,
    or per-expert `block_sparse_moe.experts.{e}.w1/w3/w2.weight`. Only this layer is read."""

    def __init__(self, files: Sequence[str | Path], index: int):
        safetensors = require("safetensors", "hf")
        self.index = index
        self._handles = [safetensors.safe_open(str(f), framework="np") for f in files]
        self._where = {k: h for h in self._handles for k in h.keys()}
        p = f"model.layers.{index}."
        self._prefix = next((p + m for m in ("mlp.", "block_sparse_moe.") if p + m + "gate.weight" in self._where),
                            None)
        if self._prefix is None:
            raise DataError(f"layer {index}: no router weight (…mlp.gate.weight) in the shards")
        self.router_weight = self._get("gate.weight")
        self.fused = self._prefix + "experts.gate_up_proj" in self._where
        self._gu = self._get("experts.gate_up_proj") if self.fused else None
        self._down = self._get("experts.down_proj") if self.fused else None

    def _get(self, name: str) -> np.ndarray:
        key = self._prefix + name
        if key not in self._where:
            raise DataError(f"tensor {key} not found in the shards")
        return self._where[key].get_tensor(key)

    @property
    def num_experts(self) -> int:
        return int(self.router_weight.shape[0])

    def expert_weights(self, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.fused:
            gu = self._gu[e]
            f = gu.shape[0] // 2
            return gu[:f], gu[f:], self._down[e]
        return tuple(self._get(f"experts.{e}.{w}.weight") for w in ("w1", "w3", "w2"))  # type: ignore[return-value]


def plot_heatmaps(maps: dict[str, np.ndarray], path: str | Path, *, title: str, labels: Sequence[str] | None = None
                  ) -> Path:
    """One heat map per projection, side by side."""
    from solstice.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3))
    for ax, (name, m) in zip(np.atleast_1d(axes), maps.items()):
        im = ax.imshow(m, vmin=-1 if m.min() < 0 else 0, vmax=1, cmap="viridis")
        ax.set_title(name)
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, fontsize=6)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    return save_figure(fig, path)

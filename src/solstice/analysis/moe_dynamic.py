"""Dynamic analyses of a mixture-of-experts model on real text ("all-experts mode").

`all_experts` runs the normal top-k forward once with recording hooks (removed on exit): each
sparse block's recorded input is the true top-k trajectory (the output of layer i−1), and every
expert's output on it is computed by hand (k = E). The recorded block output is kept, and
`AllExperts.recombination_error` checks that the k chosen experts weighted by the router
reproduce it.

- `output_similarity`: per layer, the E×E angular similarity 1 − arccos(cos)/π of expert outputs
  averaged over tokens, and its mean off-diagonal value per layer (the depth curve).
- `rank_counts`: E×E counts of (gate-score rank, output-norm rank) over tokens × layers; every row
  and column sums to tokens × layers. P(top score = max norm) against chance 1/E.
- `routing_stats`: per layer, the share of top-k choices each expert gets, and the chosen weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solstice.errors import require
from solstice.models.moe import MoELayer, recording


@dataclass
class LayerRecord:
    index: int
    scores: np.ndarray  # (T, E) softmax gate scores
    topk_ids: np.ndarray  # (T, k)
    topk_weights: np.ndarray  # (T, k)
    outputs: np.ndarray  # (E, T, d) every expert's output
    block_output: np.ndarray  # (T, d) recorded top-k output
    rebuilt: np.ndarray  # (T, d) Σ_topk w_e · expert_e + shared


@dataclass
class AllExperts:
    layers: list[LayerRecord]
    tokens: int

    def recombination_error(self, *, relative: bool = False) -> float:
        """Max |rebuilt − recorded| over layers (÷ max |recorded| per layer when `relative`): 0 up
        to float error when the view is right. Relative suits models with massive activations."""
        errs = []
        for r in self.layers:
            e = float(np.abs(r.rebuilt - r.block_output).max())
            errs.append(e / max(float(np.abs(r.block_output).max()), 1e-30) if relative else e)
        return max(errs)


def all_experts(model: Any, layers: Sequence[MoELayer], input_ids: Any) -> AllExperts:
    """One top-k forward on `input_ids` (1, T) + every expert's output at every sparse layer."""
    torch = require("torch", "hf")
    with recording(list(layers)) as rec, torch.no_grad():
        model(input_ids=input_ids)
    out = []
    with torch.no_grad():
        for layer in layers:
            x = rec.inputs[layer.index]
            s, w, idx = layer.route(x)
            outs = layer.expert_outputs(x)
            t = torch.arange(outs.shape[1])
            rebuilt = sum(w[:, j, None] * outs[idx[:, j], t] for j in range(layer.top_k)) + layer.shared_output(x)
            out.append(LayerRecord(layer.index, s.numpy(), idx.numpy(), w.float().numpy(), outs.numpy(),
                                   rec.outputs[layer.index].float().numpy(), rebuilt.float().numpy()))
    return AllExperts(out, int(input_ids.shape[-1]))


def angular_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 − arccos(cos(a, b))/π along the last axis: in [0, 1], 1 for identical directions."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    cos = np.sum(a * b, axis=-1) / np.maximum(na * nb, 1e-30)
    return 1.0 - np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi


@dataclass
class OutputSimilarity:
    layers: list[int]
    maps: list[np.ndarray]  # per layer (E, E), mean over tokens

    def depth_curve(self) -> list[float]:
        """Mean off-diagonal similarity per layer."""
        return [float(m[~np.eye(len(m), dtype=bool)].mean()) for m in self.maps]


def output_similarity(rec: AllExperts, *, angular: bool = True) -> OutputSimilarity:
    maps = []
    for r in rec.layers:
        o = r.outputs.astype(np.float64)  # (E, T, d)
        if angular:
            m = angular_similarity(o[:, None], o[None, :]).mean(-1)
        else:
            u = o / np.maximum(np.linalg.norm(o, axis=-1, keepdims=True), 1e-30)
            m = np.einsum("atd,btd->abt", u, u).mean(-1)
        maps.append(m)
    return OutputSimilarity([r.index for r in rec.layers], maps)


@dataclass
class RankCounts:
    counts: np.ndarray  # (E, E): [score rank, norm rank], rank 0 = largest
    cases: int  # tokens × layers

    def p_top_is_max_norm(self) -> float:
        return float(self.counts[0, 0] / self.cases)


def rank_counts(rec: AllExperts) -> RankCounts:
    """Count (gate-score rank, output-norm rank) pairs over tokens × layers (analysis 7)."""
    E = rec.layers[0].scores.shape[1]
    counts = np.zeros((E, E), dtype=np.int64)
    cases = 0
    for r in rec.layers:
        norms = np.linalg.norm(r.outputs, axis=-1).T  # (T, E)
        s_rank = np.argsort(np.argsort(-r.scores, axis=1, kind="stable"), axis=1, kind="stable")
        n_rank = np.argsort(np.argsort(-norms, axis=1, kind="stable"), axis=1, kind="stable")
        np.add.at(counts, (s_rank.ravel(), n_rank.ravel()), 1)
        cases += r.scores.shape[0]
    return RankCounts(counts, cases)


@dataclass
class RoutingStats:
    layers: list[int]
    load: list[np.ndarray]  # per layer (E,): share of the T·k choices given to each expert
    max_load: list[float]


def routing_stats(rec: AllExperts) -> RoutingStats:
    loads = []
    for r in rec.layers:
        E = r.scores.shape[1]
        loads.append(np.bincount(r.topk_ids.ravel(), minlength=E) / r.topk_ids.size)
    return RoutingStats([r.index for r in rec.layers], loads, [float(x.max()) for x in loads])


def chosen_weights(r: LayerRecord) -> np.ndarray:
    """Token × expert matrix of routing weights, zero for unchosen experts (analysis 9)."""
    T, E = r.scores.shape
    m = np.zeros((T, E))
    np.put_along_axis(m, r.topk_ids, r.topk_weights, axis=1)
    return m


def plot_depth(curve: Sequence[float], layers: Sequence[int], path: str | Path, *, title: str) -> Path:
    from solstice.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(list(layers), list(curve), marker="o")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean off-diagonal similarity")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_rank_counts(rc: RankCounts, path: str | Path, *, title: str) -> Path:
    from solstice.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 3.5))
    im = ax.imshow(rc.counts, cmap="viridis")
    ax.set_xlabel("output-norm rank")
    ax.set_ylabel("gate-score rank")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)

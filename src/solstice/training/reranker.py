"""A preference reranker: a sentence-transformers `CrossEncoder` trained with DPA-RAG's multi-task
objective, and a `rerank` stage usable in front of any reader.

Tasks (plain torch functions, each tested against a brute-force reference):

- point-wise: binary cross-entropy on the score (logit) of one labelled (query, document) pair;
- pair-wise: RankNet over a list ordered best → worst, mean over the C(n, 2) ordered pairs of
  −log σ(s_i − s_j);
- contrastive: supervised contrastive loss (SupCon, τ = 0.07) on the L2-normalised first-token
  ([CLS]) embeddings of a question's positives and negatives.

Task weights: `"sum"` (all 1), `"fixed"` (given), or `"mgda"` — the min-norm point of the task
gradients w.r.t. the shared encoder (the transformers `base_model`, heads excluded), recomputed
every step: closed form for two tasks, Frank–Wolfe with exact line search for more. MGDA costs one
extra backward per task; `"sum"` is the default. Observed on the tiny random cross-encoder of the
tests (lr 3e-3): the equal-weight sum of all three tasks collapses the [CLS] embeddings (SupCon
stuck at ln 3, scores constant), while MGDA or a contrastive weight of 0.1 separates the set.
On the real all-MiniLM-L6-v2 init the sum does not collapse (both weightings separate it).

Records use the released DPA-RAG reranker schema: `query`, `classification{text, label}` with label
1 (aligned → target 1) or 2 (unaligned → target 0), optional `rank_list` (best → worst),
`positive`, `negative` (see `solstice.retrieval.preferences.preference_records`). Tasks whose
fields a batch lacks are skipped for that step.

    from solstice.training.reranker import RerankerConfig, train_reranker, rerank, load_reranker
    result = train_reranker(records, "path/to/cross-encoder", RerankerConfig(weighting="mgda"))
    order = rerank(question, docs, result.model, top_k=3)

Under torchrun / accelerate launch (see solstice.core.distributed) `train_reranker` runs the
encoder in DistributedDataParallel and gives each rank its share of every batch (`batch_size`
stays the global batch, a multiple of the world size); MGDA's task gradients are averaged over
the ranks before the min-norm weights are solved, so every rank uses the same weights; the
logged losses are the ranks' mean; `save_reranker` writes on rank 0 only.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, DataError, require

log = logging.getLogger(__name__)

TASKS = ("point", "pair", "contrast")
WEIGHTINGS = ("sum", "fixed", "mgda")
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


# ----------------------------------------------------------------------------------------- losses
def pointwise_loss(scores, targets):
    """Mean binary cross-entropy of logits `scores` (B,) against 0/1 `targets` (B,)."""
    torch = require("torch", "hf")
    return torch.nn.functional.binary_cross_entropy_with_logits(scores, targets.to(scores.dtype))


def ranknet_loss(scores):
    """RankNet over lists ordered best → worst: `scores` (B, n), mean over lists of
    (1 / C(n, 2)) Σ_{i<j} −log σ(s_i − s_j)."""
    torch = require("torch", "hf")
    if scores.dim() == 1:
        scores = scores.unsqueeze(0)
    n = scores.shape[1]
    if n < 2:
        raise ConfigError("RankNet needs lists of at least 2 documents")
    i, j = torch.triu_indices(n, n, offset=1)
    diff = scores[:, i] - scores[:, j]
    return torch.nn.functional.softplus(-diff).mean()


def supcon_loss(embeddings, labels, tau: float = 0.07):
    """Supervised contrastive loss (Khosla et al. 2020, L_out) on `embeddings` (B, n, d) or (n, d)
    with integer `labels` (B, n) or (n,). Embeddings are L2-normalised; for anchor i the denominator
    runs over all a ≠ i and the positives are the other members with i's label. Anchors without a
    positive are left out; the result is the mean over the remaining anchors of all lists."""
    torch = require("torch", "hf")
    if embeddings.dim() == 2:
        embeddings, labels = embeddings.unsqueeze(0), labels.unsqueeze(0)
    z = torch.nn.functional.normalize(embeddings, dim=-1)
    sim = z @ z.transpose(1, 2) / tau  # (B, n, n)
    n = sim.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(eye, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=-1, keepdim=True)
    pos = (labels.unsqueeze(1) == labels.unsqueeze(2)) & ~eye
    n_pos = pos.sum(-1)
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(-1)) / n_pos.clamp(min=1)
    keep = n_pos > 0
    if not bool(keep.any()):
        raise ConfigError("contrastive loss needs at least two documents with the same label")
    return per_anchor[keep].mean()


# ------------------------------------------------------------------------------------------- MGDA
def min_norm_two(g11: float, g12: float, g22: float) -> tuple[float, float]:
    """Closed-form min-norm weights (α, 1 − α) of two gradients from their Gram entries:
    α = clip(((g₂ − g₁)·g₂) / ‖g₁ − g₂‖², 0, 1); identical gradients give (0.5, 0.5)."""
    denom = g11 - 2 * g12 + g22
    if denom <= 1e-20:
        return 0.5, 0.5
    a = min(max((g22 - g12) / denom, 0.0), 1.0)
    return a, 1.0 - a


def min_norm_weights(gram, *, max_iter: int = 100, tol: float = 1e-3) -> list[float]:
    """Frank–Wolfe for min_α αᵀMα on the simplex (MGDA-UB), M = task-gradient Gram matrix (T, T).
    Starts uniform; each step moves toward e_t, t = argmin (Mα)_t, by the exact line minimiser γ;
    stops when γ < tol or after `max_iter` steps. Unlike the reference code it does not stop on
    reaching a vertex (max α ≈ 1): the optimum may lie just inside the simplex (tested)."""
    import numpy as np

    m = np.asarray(gram, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ConfigError(f"Gram matrix must be square and non-empty, got shape {m.shape}")
    t_n = m.shape[0]
    if t_n == 1:
        return [1.0]
    alpha = np.full(t_n, 1.0 / t_n)
    for _ in range(max_iter):
        ma = m @ alpha
        t = int(np.argmin(ma))
        uu, ut, tt = float(alpha @ ma), float(ma[t]), float(m[t, t])
        if tt - 2 * ut + uu <= 1e-20:  # already at g_t: no move improves along this segment
            break
        gamma, _ = min_norm_two(tt, ut, uu)  # weight on e_t between g_t and the current point
        alpha = (1 - gamma) * alpha
        alpha[t] += gamma
        if gamma < tol:
            break
    return [float(a) for a in alpha]


def task_weights(
    losses: Sequence[Any],
    params: Sequence[Any],
    weighting: str,
    fixed: Sequence[float] | None = None,
) -> list[float]:
    """Weights for the task losses: all 1 (`sum`), `fixed`, or MGDA from their gradients w.r.t.
    `params` (the shared encoder)."""
    if weighting == "sum":
        return [1.0] * len(losses)
    if weighting == "fixed":
        if fixed is None or len(fixed) != len(losses):
            raise ConfigError(f"weighting=fixed needs {len(losses)} weights, got {fixed}")
        return [float(w) for w in fixed]
    if weighting != "mgda":
        raise ConfigError(f"unknown weighting '{weighting}'; use one of {', '.join(WEIGHTINGS)}")
    torch = require("torch", "hf")
    flat = []
    for loss in losses:
        grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
        flat.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for g, p in zip(grads, params)
                ]
            )
        )
    g = torch.stack(flat).double()
    from solstice.core import distributed

    if distributed.active():  # the gradients of the global batch: the ranks' mean
        torch.distributed.all_reduce(g)
        g /= distributed.world_size()
    return min_norm_weights((g @ g.T).cpu().numpy())


# --------------------------------------------------------------------------------------- training
@dataclass
class RerankerConfig:
    tasks: tuple[str, ...] = TASKS
    weighting: str = "sum"
    fixed_weights: tuple[float, ...] | None = None
    epochs: int = 1
    lr: float = 1e-5
    batch_size: int = 4
    max_length: int = 256  # used when `train_reranker` loads the model from a path
    tau: float = 0.07
    seed: int = 42
    grad_clip: float | None = 1.0

    def validate(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ConfigError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(
                f"unknown weighting '{self.weighting}'; use one of {', '.join(WEIGHTINGS)}"
            )
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.tau <= 0:
            raise ConfigError("epochs, batch_size, lr and tau must be positive")


@dataclass
class RerankerResult:
    model: Any
    history: list[dict[str, Any]] = field(default_factory=list)  # per step: losses and weights


def point_target(record: dict[str, Any]) -> int:
    """1 for an aligned (label 1) document, 0 for an unaligned (label 2) one."""
    try:
        label = int(record["classification"]["label"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"reranker record lacks classification.label: {str(record)[:120]}") from e
    if label not in (1, 2):
        raise DataError(f"classification.label must be 1 (aligned) or 2 (unaligned), got {label}")
    return 1 if label == 1 else 0


def load_reranker(
    path_or_name: str | Path, *, max_length: int | None = None, device: str | None = None
):
    """A `sentence_transformers.CrossEncoder` with one output logit."""
    st = require("sentence_transformers", "rag", "the reranker", package="sentence-transformers")
    return st.CrossEncoder(str(path_or_name), num_labels=1, max_length=max_length, device=device)


def save_reranker(model, path: str | Path) -> Path:
    """Write the cross-encoder so that `load_reranker(path)` (or `CrossEncoder(path)`) reloads it."""
    from solstice.core import distributed

    out = Path(path)

    def write() -> None:
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out))

    distributed.main_writes(write)  # rank 0 alone under torchrun; every rank waits for the files
    return out


def _batch_losses(model, batch: list[dict[str, Any]], cfg: RerankerConfig, net: Any = None) -> dict[str, Any]:
    """The task losses of `batch`; `net` (a DDP wrapper of `model.model`) runs the forward when given."""
    torch = require("torch", "hf")
    queries: list[str] = []
    docs: list[str] = []
    spans: dict[str, list[tuple[int, int]]] = {t: [] for t in cfg.tasks}
    con_labels: list[list[int]] = []

    def add(task: str, q: str, ds: Sequence[str]) -> None:
        spans[task].append((len(docs), len(docs) + len(ds)))
        queries.extend([q] * len(ds))
        docs.extend(ds)

    targets = []
    for r in batch:
        q = r["query"]
        if "point" in cfg.tasks:
            add("point", q, [r["classification"]["text"]])
            targets.append(point_target(r))
        if "pair" in cfg.tasks and len(r.get("rank_list") or []) >= 2:
            add("pair", q, r["rank_list"])
        if "contrast" in cfg.tasks and r.get("positive") and r.get("negative"):
            add("contrast", q, list(r["positive"]) + list(r["negative"]))
            con_labels.append([1] * len(r["positive"]) + [0] * len(r["negative"]))
    # the CrossEncoder's own preprocessing (truncation, any prompt template) so that training sees
    # exactly what `predict` sees
    # each distinct (query, document) pair of the batch is encoded once (a record's labelled document,
    # ranked list and positives/negatives overlap), then gathered back into task order
    pairs = list(zip(queries, docs))
    uniq = list(dict.fromkeys(pairs))
    where = {p: i for i, p in enumerate(uniq)}
    feats = model.preprocess(uniq)
    enc = {k: v.to(model.model.device) for k, v in feats.items() if k in _MODEL_INPUTS}
    need_hidden = bool(spans.get("contrast"))
    out = (net if net is not None else model.model)(**enc, output_hidden_states=need_hidden)
    gather = torch.tensor([where[p] for p in pairs], device=out.logits.device)
    scores = out.logits[:, 0][gather]
    losses: dict[str, Any] = {}
    if spans.get("point"):
        idx = torch.tensor([a for a, _ in spans["point"]], device=scores.device)
        losses["point"] = pointwise_loss(scores[idx], torch.tensor(targets, device=scores.device))
    if spans.get("pair"):
        lists = {}
        for a, b in spans["pair"]:
            lists.setdefault(b - a, []).append(scores[a:b])
        parts = [ranknet_loss(torch.stack(v)) * len(v) for v in lists.values()]
        losses["pair"] = sum(parts) / len(spans["pair"])
    if spans.get("contrast"):
        cls = out.hidden_states[-1][:, 0][gather]
        parts = [
            supcon_loss(cls[a:b], torch.tensor(lab, device=cls.device), cfg.tau)
            for (a, b), lab in zip(spans["contrast"], con_labels)
        ]
        losses["contrast"] = sum(parts) / len(parts)
    return losses


def train_reranker(
    records: Sequence[dict[str, Any]],
    model: Any,
    config: RerankerConfig | None = None,
    *,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_dir: str | Path | None = None,
) -> RerankerResult:
    """Fit a CrossEncoder (an instance, or a path/name for `load_reranker`) on preference records
    with the multi-task objective; returns the model (in eval mode) and per-step losses/weights.

    With `checkpoint_dir`, the state after every epoch (weights, optimizer, both RNG states,
    history) is written there, and a call that finds one continues after its epoch: an interrupted
    training resumed this way ends with the same weights as an uninterrupted one (tested). A
    checkpoint written for other records or another config is refused. It is deleted on success."""
    torch = require("torch", "hf")
    cfg = config or RerankerConfig()
    cfg.validate()
    if not records:
        raise DataError("no reranker training records")
    for r in records:
        point_target(r)
    if isinstance(model, (str, Path)):
        model = load_reranker(model, max_length=cfg.max_length)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    net = model.model
    shared = [p for p in net.base_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    history: list[dict[str, Any]] = []
    step = start = 0
    ckpt = Path(checkpoint_dir) / "state.pt" if checkpoint_dir is not None else None
    ident = _fingerprint(records, cfg)
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        if state["ident"] != ident:
            raise ConfigError(f"checkpoint {ckpt} was written for other records or settings; delete it")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        history, step, start = state["history"], state["step"], state["epoch"] + 1
        log.info("reranker: resuming after epoch %d from %s", state["epoch"], ckpt)
    net.train()
    from solstice.training import ddp

    multi = ddp.active()
    if multi:
        ddp.check_split(len(records), cfg.batch_size, "reranker training")
    wrapped = ddp.wrap(net) if multi else None
    for epoch in range(start, cfg.epochs):
        order = list(range(len(records)))
        rng.shuffle(order)
        for s in range(0, len(order), cfg.batch_size):
            batch = [records[i] for i in order[s : s + cfg.batch_size]]
            if multi:
                batch = ddp.share(batch, f"reranker step {step + 1}")
            losses = _batch_losses(model, batch, cfg, net=wrapped)
            names = list(losses)
            if multi:
                _same_tasks(names, step)
            fixed = None
            if cfg.weighting == "fixed":
                fixed = (
                    [cfg.fixed_weights[cfg.tasks.index(n)] for n in names]
                    if cfg.fixed_weights
                    else None
                )
            weights = task_weights([losses[n] for n in names], shared, cfg.weighting, fixed)
            total = sum(w * losses[n] for w, n in zip(weights, names))
            opt.zero_grad()
            total.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            vals = [float(total.detach())] + [float(losses[n].detach()) for n in names]
            if multi:  # the ranks' mean (equal shares: the global batch's loss)
                vals = [v / ddp.distributed.world_size() for v in ddp.distributed.all_sum(vals)]
            rec = {"step": step, "epoch": epoch, "loss": vals[0]}
            rec.update({f"loss_{n}": v for n, v in zip(names, vals[1:])})
            rec.update({f"weight_{n}": w for n, w in zip(names, weights)})
            history.append(rec)
            if not math.isfinite(rec["loss"]):
                raise ConfigError(f"reranker loss became {rec['loss']} at step {step}; lower lr")
            if on_step is not None:
                on_step(rec)
            step += 1
        if ckpt is not None and epoch < cfg.epochs - 1:
            state = {"ident": ident, "model": net.state_dict(), "optim": opt.state_dict(), "rng": rng.getstate(),
                     "torch_rng": torch.get_rng_state(), "history": history, "step": step, "epoch": epoch}
            ddp.distributed.main_writes(_save_state, ckpt, state)  # rank 0 writes, every rank waits
    if ckpt is not None:
        ddp.distributed.main_writes(ckpt.unlink, missing_ok=True)
    net.eval()
    del wrapped
    log.info("reranker trained: %d steps, last loss %.4f", step, history[-1]["loss"])
    return RerankerResult(model=model, history=history)


def _same_tasks(names: list[str], step: int) -> None:
    """Every rank must weigh the same tasks in a step (DDP and MGDA reduce over them together)."""
    torch = require("torch", "hf")
    seen: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(seen, names)
    if any(s != seen[0] for s in seen):
        raise ConfigError(f"reranker step {step + 1}: the ranks' shares have different tasks {seen} (records with "
                          "and without rank_list / positive+negative in one batch); give every record the same "
                          "fields or train in one process")


def _save_state(ckpt: Path, state: dict[str, Any]) -> None:
    """Write a training checkpoint atomically (a killed write leaves the previous one intact)."""
    torch = require("torch", "hf")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(ckpt)


def _fingerprint(records: Sequence[dict[str, Any]], cfg: RerankerConfig) -> str:
    import hashlib
    import json

    blob = json.dumps([list(records), repr(cfg)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# -------------------------------------------------------------------------------------- inference
def rerank(
    query: str,
    documents: Sequence[str],
    model: Any,
    *,
    top_k: int | None = None,
    batch_size: int = 32,
) -> list[tuple[int, float]]:
    """(index, score) of `documents` by descending reranker score, ties in input order; the first
    `top_k` when given. Works with any CrossEncoder."""
    if not documents:
        return []
    scores = model.predict(
        [(query, d) for d in documents], batch_size=batch_size, show_progress_bar=False
    )
    ranked = sorted(range(len(documents)), key=lambda i: (-float(scores[i]), i))
    if top_k is not None:
        ranked = ranked[:top_k]
    return [(i, float(scores[i])) for i in ranked]


def classification_report(
    model: Any, records: Sequence[dict[str, Any]], *, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy and precision/recall/F1 of the aligned class on labelled records (sigmoid score ≥
    threshold → aligned). Undefined precision/recall/F1 (no predicted or true positives) are NaN,
    never a silent 0."""
    import numpy as np
    from sklearn.metrics import precision_recall_fscore_support

    if not records:
        raise DataError("no records to evaluate")
    y = np.array([point_target(r) for r in records])
    s = model.predict(
        [(r["query"], r["classification"]["text"]) for r in records], show_progress_bar=False
    )
    pred = (np.asarray(s) >= threshold).astype(int)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=np.nan)
    return {
        "accuracy": float((pred == y).mean()),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
    }

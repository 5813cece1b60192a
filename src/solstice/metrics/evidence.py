"""Attribution metrics: predicted evidence ids (paragraphs, passages) against gold ones.

Per question with predicted set E and gold set G: P = |E∩G|/|E| (0 when E is empty), R = |E∩G|/|G|
(NaN when G is empty: nothing to find), F1 = 2PR/(P+R) (0 when both are 0), exact = 1[E = G].
Macro-average over questions with the usual metric constructors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def evidence_prf(predicted: Iterable, gold: Iterable) -> dict[str, float]:
    e, g = set(predicted), set(gold)
    hit = len(e & g)
    p = hit / len(e) if e else 0.0
    r = hit / len(g) if g else math.nan
    if math.isnan(r):
        f1 = math.nan
    else:
        f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return {"precision": p, "recall": r, "f1": f1, "exact": float(e == g)}

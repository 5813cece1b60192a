"""Model-independent checks on the released DPA-RAG rows: our scorer against the 80 released
`before/after` em and f1 values, our label rule against the 40 released categories, and the
released training records against the reranker schema."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from solstice.retrieval.preferences import answer_preference, answer_scores


def scorer_parity(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Row-for-row: em and f1 of each released answer recomputed; category from the answers."""
    em_ok = f1_ok = cat_ok = n_ans = 0
    mismatches: list[str] = []
    for r in rows:
        refs = list(r["reference"])
        for side in ("before", "after"):
            em, f1 = answer_scores(r[side]["answer"], refs)
            n_ans += 1
            em_ok += int(em == int(r[side]["em"]))
            good_f1 = math.isclose(f1, float(r[side]["f1"]), abs_tol=1e-6)
            f1_ok += int(good_f1)
            if em != int(r[side]["em"]) or not good_f1:
                mismatches.append(f"{r['question']} [{side}]")
        cat = int(answer_preference(r["before"]["answer"], r["after"]["answer"], refs))
        cat_ok += int(cat == int(r["category"]))
        if cat != int(r["category"]):
            mismatches.append(f"{r['question']} [category]")
    return {"answers": n_ans, "em_match": em_ok, "f1_match": f1_ok, "rows": len(rows), "category_match": cat_ok,
            "mismatches": mismatches[:10]}

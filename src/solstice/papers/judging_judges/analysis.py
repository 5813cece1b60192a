"""Judge-human agreement and exam-taker rankings from the released verdicts (paper §4).

For every judge column: PA, Cohen's kappa, Scott's pi and Krippendorff's alpha against the human
labels on the rows where the judge gave a verdict (and on the subset every judge labelled), the
confusion table with leniency (FPR) and strictness (FNR) and the leniency model's P_c / P_+,
per-exam-taker scores and their deviations from the human scores, and Spearman / Kendall
agreement of the exam-taker rankings, all with item-bootstrap CIs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.metrics.agreement import agreement, ranking_agreement, score_matrix
from solstice.papers.judging_judges.data import JUDGES, LEXICAL, Release, scorable
from solstice.report.plots import pyplot, save_figure


def analyze_release(rel: Release, *, n_resamples: int = 1000, seed: int = 12345) -> dict[str, Any]:
    """Everything the released verdicts support, as JSON-ready dicts (see module docstring)."""
    rows = scorable(rel)
    human = [r[rel.human] for r in rows]
    items = [r["question"] for r in rows]
    takers = [r["model"] for r in rows]
    hm, item_ids, sys_ids = score_matrix(human, items, takers)
    common = [all(r[j] is not None for j in rel.judges) for r in rows]
    out: dict[str, Any] = {"version": rel.version, "n_rows": len(rel.rows), "n_scorable": len(rows),
                           "n_common": int(sum(common)), "takers": sys_ids, "judges": {}}
    out["human_scores"] = {s: float(v) for s, v in zip(sys_ids, 100 * np.nanmean(hm, axis=0))}
    for j in rel.judges:
        labels = [r[j] for r in rows]
        rep = agreement(labels, human, n_resamples=n_resamples, seed=seed)
        com = agreement([v if c else None for v, c in zip(labels, common)], human, n_resamples=0)
        jm, _, _ = score_matrix(labels, items, takers)
        rank = ranking_agreement(jm, hm, sys_ids, n_resamples=n_resamples, seed=seed)
        out["judges"][j] = {
            "name": JUDGES.get(j, j),
            "lexical": j in LEXICAL,
            "agreement": rep.to_json(),
            "common": {k: com.values[k] for k in ("pa", "kappa", "pi", "alpha")},
            "ranking": rank.to_json(),
            "disagreements": [rows[i]["row"] for i in rep.disagreements],
        }
    return out


def _mv(v: float | None, n: int, ci, hib: bool | None = True, note: str = "") -> MetricValue:
    val = math.nan if v is None else float(v)
    return MetricValue(val, n, None if ci is None or None in ci else (float(ci[0]), float(ci[1])), hib, note)


def release_metrics(res: dict[str, Any]) -> dict[str, MetricValue]:
    """Flat metrics of `analyze_release` plus the aggregates the paper's claims are checked on."""
    m: dict[str, MetricValue] = {}
    for j, d in res["judges"].items():
        a, r = d["agreement"], d["ranking"]
        for k in ("pa", "kappa", "pi", "alpha", "fpr", "fnr", "p_correct", "p_plus"):
            if k in a["values"]:
                m[f"{k}_{j}"] = _mv(a["values"][k], a["n"], a["ci95"].get(k), False if k in ("fpr", "fnr", "p_plus") else True)
        m[f"rank_rho_{j}"] = _mv(r["values"]["spearman"], len(r["systems"]), r["ci95"]["spearman"])
        m[f"rank_tau_{j}"] = _mv(r["values"]["kendall"], len(r["systems"]), r["ci95"]["kendall"])
        m[f"max_abs_dev_{j}"] = _mv(r["values"]["max_abs_dev"], len(r["systems"]), r["ci95"]["max_abs_dev"], False)
    judges = res["judges"]
    if {"GPT-4", "Llama3-70B", "JudgeLM", "Contains"} <= set(judges):
        kap = {j: m[f"kappa_{j}"] for j in judges}
        top = ("GPT-4", "Llama3-70B")
        worst_top = min(top, key=lambda j: kap[j].value)
        m["kappa_top2_min"] = kap[worst_top]
        rest = [j for j in judges if j not in top]
        m["kappa_rest_max"] = kap[max(rest, key=lambda j: kap[j].value)]
        best_top = max(top, key=lambda j: kap[j].value)
        worst_rank = min(("JudgeLM", "Contains"), key=lambda j: kap[j].value)
        m["kappa_gap_best_vs_rankers"] = MetricValue(
            kap[best_top].value - kap[worst_rank].value, kap[best_top].n, None, None,
            f"kappa({best_top}) - kappa({worst_rank})")
        rho = {j: m[f"rank_rho_{j}"] for j in judges}
        m["rank_rho_rankers_min"] = rho[min(("JudgeLM", "Contains"), key=lambda j: rho[j].value)]
        m["rank_rho_top_max"] = rho[max(top, key=lambda j: rho[j].value)]
    high = [j for j, d in judges.items() if d["agreement"]["values"]["pa"] >= 0.85]
    if high:
        worst = max(high, key=lambda j: m[f"max_abs_dev_{j}"].value)
        mv = m[f"max_abs_dev_{worst}"]
        m["pa_hides_gap"] = MetricValue(mv.value, mv.n, mv.ci95, None, f"{worst}: PA >= 0.85 yet off by this many points on one exam-taker")
    llm = [j for j, d in judges.items() if not d["lexical"] and f"p_plus_{j}" in m and not math.isnan(m[f"p_plus_{j}"].value)]
    if llm:
        vals = sorted(m[f"p_plus_{j}"].value for j in llm)
        m["p_plus_median_llm"] = MetricValue(float(np.median(vals)), len(vals), None, None, "median P_+ over the LLM judges")
    m["n_common"] = MetricValue(float(res["n_common"]), res["n_scorable"], None, None)
    return m


def judges_table(res: dict[str, Any]) -> str:
    """Markdown table: one row per judge, sorted by Cohen's kappa."""
    def f(x, d=3):
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"

    def ci(c):
        return "" if not c or None in c else f" [{c[0]:.2f}, {c[1]:.2f}]"

    head = ("| Judge | n | PA | Cohen's κ (95% CI) | Scott's π | Kripp. α | κ on common subset | FPR (lenient) | FNR (strict) "
            "| P_c | P_+ | Spearman ρ (95% CI) | Kendall τ | max abs dev (pts) |")
    rows = [head, "|" + "---|" * 14]
    order = sorted(res["judges"].items(), key=lambda kv: -(kv[1]["agreement"]["values"]["kappa"] or -9))
    for j, d in order:
        a, r = d["agreement"], d["ranking"]
        v = a["values"]
        rows.append(
            f"| {j} ({d['name']}) | {a['n']} | {f(v['pa'])} | {f(v['kappa'])}{ci(a['ci95']['kappa'])} | {f(v['pi'])} | "
            f"{f(v['alpha'])} | {f(d['common']['kappa'])} | {f(v.get('fpr'))} | {f(v.get('fnr'))} | {f(v.get('p_correct'))} | "
            f"{f(v.get('p_plus'))} | {f(r['values']['spearman'])}{ci(r['ci95']['spearman'])} | {f(r['values']['kendall'])} | "
            f"{f(r['values']['max_abs_dev'], 1)} |")
    return "\n".join(rows)


def scores_table(res: dict[str, Any]) -> str:
    """Markdown table of exam-taker scores: humans and every judge's signed deviation (points)."""
    takers = res["takers"]
    rows = ["| Exam-taker | Human | " + " | ".join(res["judges"]) + " |", "|" + "---|" * (len(res["judges"]) + 2)]
    for t in takers:
        devs = [res["judges"][j]["ranking"]["deviations"][t] for j in res["judges"]]
        rows.append(f"| {t} | {res['human_scores'][t]:.2f} | " + " | ".join(f"{d:+.1f}" for d in devs) + " |")
    return "\n".join(rows)


def plot_kappa_vs_pa(res: dict[str, Any], path) -> None:
    """Scatter of Cohen's kappa against percent agreement, one labelled point per judge, with
    bootstrap CIs; annotated with each judge's largest exam-taker score deviation."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    placed: list[tuple[float, float]] = []
    for j, d in sorted(res["judges"].items(), key=lambda kv: -kv[1]["agreement"]["values"]["kappa"]):
        a = d["agreement"]
        pa, k = a["values"]["pa"], a["values"]["kappa"]
        (plo, phi), (klo, khi) = a["ci95"]["pa"] or (pa, pa), a["ci95"]["kappa"] or (k, k)
        color = "tab:orange" if d["lexical"] else "tab:blue"
        ax.errorbar(100 * pa, k, xerr=[[100 * (pa - plo)], [100 * (phi - pa)]], yerr=[[k - klo], [khi - k]],
                    fmt="o", color=color, ms=5, capsize=2)
        crowded = any(abs(100 * pa - x) < 2.5 and abs(k - y) < 0.03 for x, y in placed)
        placed.append((100 * pa, k))
        ax.annotate(f"{j} ({d['ranking']['values']['max_abs_dev']:.0f})", (100 * pa, k), textcoords="offset points",
                    xytext=(4, -11) if crowded else (4, 4), fontsize=7)
    ax.set_xlabel("percent agreement with humans (%)")
    ax.set_ylabel("Cohen's κ with humans")
    ax.set_title(f"Released verdicts ({res['version']}): κ vs percent agreement\n(in brackets: max |score deviation| over exam-takers, points)", fontsize=9)
    ax.grid(alpha=0.3)
    save_figure(fig, path)

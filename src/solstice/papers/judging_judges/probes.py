"""Live judging of exam items and the paper's vulnerability probes (§5), for any judge model.

A probe is a variant of the judging set-up run on the same items: another prompt template
(guideline length, no references), the references in reverse order, or verbose answers. Each is
summarised by agreement with the known labels and by acceptance rates per answer kind (what share
of dummy, under-specified, incorrect, ... answers a judge calls correct). Every verdict that could
not be parsed is counted (`unparsed`) and left out of kappa, never mapped to a label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.judge.base import Verdict
from solstice.metrics import proportion_metric
from solstice.metrics.agreement import agreement
from solstice.metrics.classification import auroc_metric
from solstice.report.plots import pyplot, save_figure


def record(v: Verdict) -> dict[str, Any]:
    """What samples.jsonl keeps of one verdict."""
    p = v.probs.get("correct") if v.probs else None
    return {"value": v.value if v.parsed else None, "parsed": bool(v.parsed), "confident": bool(v.confident),
            "raw": (v.raw or "")[:200], "p_correct": p}


def verdict_metrics(records: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]], prefix: str, *,
                    n_resamples: int, full: bool = True) -> dict[str, MetricValue]:
    """Agreement of verdict records with the items' known labels, plus acceptance per answer kind."""
    labels = [bool(it["label"]) for it in items]
    values = [r["value"] if r["parsed"] else None for r in records]
    rep = agreement(values, labels, n_resamples=n_resamples)
    keys = ("kappa", "pa", "pi", "alpha", "fpr", "fnr", "p_correct", "p_plus") if full else ("kappa", "pa")
    both = len(set(labels)) == 2  # agreement with a one-class label set says nothing: report acceptance only
    m = {f"{prefix}{k}": rep.metric(k) for k in keys if k in rep.values and both}
    m[f"{prefix}unparsed"] = proportion_metric([not r["parsed"] for r in records], higher_is_better=False)
    m[f"{prefix}says_correct"] = proportion_metric([v is True for v in values], higher_is_better=None)
    kinds = sorted({it["kind"] for it in items})
    for k in kinds:
        flags = [v is True for v, it in zip(values, items) if it["kind"] == k]
        m[f"{prefix}accept_{k}"] = proportion_metric(flags, higher_is_better=None,
                                                     note="share of these answers judged correct (unparsed count as not)")
    if full:
        probs = [(r.get("p_correct"), lab) for r, lab in zip(records, labels) if r.get("p_correct") is not None]
        if len(probs) >= 2:
            s, y = zip(*probs)
            m[f"{prefix}auroc"] = auroc_metric([float(b) for b in y], [float(x) for x in s], n_resamples=n_resamples,
                                               note="AUROC of P(correct) against the true label (threshold-free)")
    return m


def flip_metrics(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], prefix: str) -> dict[str, MetricValue]:
    """How often two set-ups on the same items disagree (e.g. references given vs reversed)."""
    pairs = [(x["value"], y["value"]) for x, y in zip(a, b) if x["parsed"] and y["parsed"]]
    out = {f"{prefix}flip_rate": proportion_metric([x != y for x, y in pairs], higher_is_better=False,
                                                  note="share of items whose verdict changes")}
    pa = [(x.get("p_correct"), y.get("p_correct")) for x, y in zip(a, b)]
    pa = [(x, y) for x, y in pa if x is not None and y is not None]
    if pa:
        d = [y - x for x, y in pa]
        from solstice.metrics import mean_metric

        out[f"{prefix}mean_dp_correct"] = mean_metric(d, higher_is_better=None, note="mean change of P(correct)")
    return out


def probe_items(exam: Sequence[Mapping[str, Any]], n_questions: int) -> list[dict[str, Any]]:
    """The exam items of the first `n_questions` questions."""
    return [dict(it) for it in exam if it["qid"] < n_questions]


def template_length_plot(rows: Sequence[Mapping[str, Any]], path) -> None:
    """Live judge's kappa per template against the template's length in tokens."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    rows = sorted(rows, key=lambda r: r["tokens"])
    xs = [r["tokens"] for r in rows]
    ys = [r["kappa"] for r in rows]
    for i, r in enumerate(rows):
        lo, hi = r.get("ci") or (r["kappa"], r["kappa"])
        ax.errorbar(r["tokens"], r["kappa"], yerr=[[r["kappa"] - lo], [hi - r["kappa"]]], fmt="o", capsize=2, color="tab:blue")
        ax.annotate(r["template"].replace("HUMAN_GUIDELINES_", "HG_"), (r["tokens"], r["kappa"]),
                    textcoords="offset points", xytext=(4, 4 if i % 2 == 0 else -11), fontsize=7)
    ax.plot(xs, ys, color="tab:blue", alpha=0.3)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("template length (tokens, without the item)")
    ax.set_ylabel("Cohen's κ with the true labels")
    ax.set_title("Live judge: guideline length vs alignment", fontsize=9)
    save_figure(fig, path)


def acceptance_plot(metrics: Mapping[str, MetricValue], judges: Sequence[tuple[str, str]], kinds: Sequence[str], path) -> None:
    """Grouped bars: share of answers of each kind judged correct, per judge."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    w = 0.8 / max(1, len(judges))
    for i, (label, prefix) in enumerate(judges):
        vals = [metrics.get(f"{prefix}accept_{k}", MetricValue(math.nan, 0)).value for k in kinds]
        ax.bar(np.arange(len(kinds)) + i * w, vals, w, label=label)
    ax.set_xticks(np.arange(len(kinds)) + w * (len(judges) - 1) / 2, kinds, fontsize=8)
    ax.set_ylabel("judged correct")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("Synthetic exam: acceptance per answer kind (correct kinds should be 1, others 0)", fontsize=9)
    save_figure(fig, path)


def live_tables(metrics: Mapping[str, MetricValue], kinds: Sequence[str], templates: Sequence[Mapping[str, Any]] = ()) -> str:
    """Markdown tables of a run's live-judge metrics: agreement per judge, acceptance per answer
    kind, and the probes."""
    def g(key: str, digits: int = 3, ci: bool = False) -> str:
        mv = metrics.get(key)
        if mv is None or mv.value is None or math.isnan(mv.value):
            return "—"
        return mv.fmt(digits) if ci else f"{mv.value:.{digits}f}"

    judges = [("live judge (log-prob verdicts)", "live_"), ("live judge (generated text)", "gen_"), ("EM", "em_"),
              ("Contains", "contains_"), ("ContainsWords", "contains_words_")]
    judges = [(n, p) for n, p in judges if f"{p}pa" in metrics or f"{p}unparsed" in metrics]
    out = ["| Judge | items | parsed n (κ, π, PA) | Cohen's κ (95% CI) | Scott's π | PA | FPR (lenient) | FNR (strict) | P_+ | unparsed | AUROC of P(correct) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in judges:
        n = metrics[f"{p}unparsed"].n
        k = metrics.get(f"{p}kappa")
        parsed = k.n if k is not None else round(n * (1 - metrics[f"{p}unparsed"].value))
        out.append(f"| {name} | {n} | {parsed} | {g(p + 'kappa', ci=True)} | {g(p + 'pi')} | {g(p + 'pa')} | {g(p + 'fpr')} | "
                   f"{g(p + 'fnr')} | {g(p + 'p_plus')} | {g(p + 'unparsed')} | {g(p + 'auroc', ci=True)} |")
    out += ["", "| Answer kind (true label) | " + " | ".join(n for n, _ in judges) + " |", "|---" * (len(judges) + 1) + "|"]
    for k in kinds:
        lab = "correct" if k.startswith("correct") else "incorrect"
        out.append(f"| {k} ({lab}) | " + " | ".join(g(f"{p}accept_{k}", 2) for _, p in judges) + " |")
    if templates:
        out += ["", "| Probe | template tokens | Cohen's κ (95% CI) | PA | says correct | accepts dummy | accepts partial |",
                "|---|---|---|---|---|---|---|"]
        for t in templates:
            p = f"tpl_{t['template']}_"
            out.append(f"| template {t['template']} | {t['tokens']} | {g(p + 'kappa', ci=True)} | {g(p + 'pa')} | "
                       f"{g(p + 'says_correct')} | {g(p + 'accept_dummy', 2)} | {g(p + 'accept_partial', 2)} |")
        for name, p in (("no references (NO_REFERENCE)", "noref_"), ("references reversed", "reversed_")):
            out.append(f"| {name} | | {g(p + 'kappa', ci=True)} | {g(p + 'pa')} | {g(p + 'says_correct')} | "
                       f"{g(p + 'accept_dummy', 2)} | {g(p + 'accept_partial', 2)} |")
        out += ["", f"Reference order: verdict flips when the references are reversed: {g('reforder_flip_rate', ci=True)}; "
                f"mean change of P(correct): {g('reforder_mean_dp_correct', 4, ci=True)}.",
                f"Answer length: a wrong answer is accepted {g('length_accept_incorrect', 2, ci=True)} of the time plain and "
                f"{g('length_accept_incorrect_verbose', 2, ci=True)} inside the verbose sentence (Contains: "
                f"{g('length_contains_accept_incorrect', 2)} / {g('length_contains_accept_incorrect_verbose', 2)})."]
    return "\n".join(out)

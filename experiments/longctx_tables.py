"""Markdown tables for the LongIns and Loong READMEs from finished run directories.

    python experiments/longctx_tables.py longins runs/longins/<dir>
    python experiments/longctx_tables.py loong runs/loong/<dir>
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def _m(metrics: dict, key: str, scale: float = 1.0, digits: int = 1) -> str:
    v = metrics.get(key)
    if not v or v.get("value") is None:
        return "n/a"
    s = f"{v['value'] * scale:.{digits}f}"
    if v.get("ci95") and None not in v["ci95"]:
        lo, hi = (x * scale for x in v["ci95"])
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def longins(run: Path) -> str:
    m = json.loads((run / "metrics.json").read_text())
    buckets = sorted({k.split("/", 1)[1] for k in m if k.startswith("f1/")}, key=lambda b: (b.split("-")[0], int(b.split("-")[1])))
    rows = [("model, reference rule (`f1`)", "f1"), ("model, fixed rule (`f1_fixed`)", "f1_fixed"),
            ("oracle, reference rule", "oracle"), ("oracle, fixed rule", "oracle_fixed"),
            ("all indices, reference rule", "all_indices"), ("all indices, fixed rule", "all_indices_fixed"),
            ("first item only `[0]`, fixed rule", "first_only_fixed"), ("random (q = 0.5), fixed rule", "random_fixed"),
            ("random, analytic expectation", "random_expected_fixed")]
    out = ["| F1 ×100 (95% CI) | " + " | ".join(buckets) + " |", "|---|" + "---|" * len(buckets)]
    for name, key in rows:
        out.append(f"| {name} | " + " | ".join(_m(m, f"{key}/{b}") for b in buckets) + " |")
    out.append("| strict-parser failures (share of model answers) | "
               + " | ".join(_m(m, f"parse_fail/{b}", 100, 0) + " %" for b in buckets) + " |")
    out.append("| n (fits / truncated / skipped / no items) | " + " | ".join(
        "/".join(str(int(m[f"n_{k}/{b}"]["value"])) for k in ("fits", "truncated", "skipped", "empty")) for b in buckets) + " |")
    cats = list(csv.DictReader(open(run / "artifacts" / "categories.csv")))
    out += ["", "| bucket | category | n | f1 | f1_fixed | all indices (fixed) | random (fixed) |", "|---|---|---|---|---|---|---|"]
    for r in cats:
        if int(r["n"]) >= 10:
            out.append(f"| {r['bucket']} | {r['category']} | {r['n']} | {r['f1']} | {r['f1_fixed']} | "
                       f"{r.get('all_indices_fixed', '')} | {r.get('random_fixed', '')} |")
    return "\n".join(out)


def loong(run: Path) -> str:
    m = json.loads((run / "metrics.json").read_text())
    cells = ["", "/spotlight", "/comparison", "/clustering", "/chain", "/financial", "/legal", "/paper"]
    names = ["overall", "spotlight", "comparison", "clustering", "chain", "financial", "legal", "paper"]
    out = ["| answers judged | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    out.append("| candidate: Avg Score | " + " | ".join(_m(m, f"avg_score{c}") for c in cells) + " |")
    out.append("| candidate: Perfect Rate | " + " | ".join(_m(m, f"perfect_rate{c}", 1, 2) for c in cells) + " |")
    out.append("| candidate: scoring success | " + " | ".join(_m(m, f"scoring_success{c}", 1, 2) for c in cells) + " |")
    for probe in ("oracle", "empty"):
        if f"{probe}/avg_score" in m:
            out.append(f"| {probe}: Avg Score | " + " | ".join(_m(m, f"{probe}/avg_score{c}") for c in cells) + " |")
            out.append(f"| {probe}: scoring success | {_m(m, f'{probe}/scoring_success', 1, 2)} |" + " |" * (len(cells) - 1))
    out.append("")
    for k in ("exact_match", "oracle/exact_match", "judge_out_of_range", "gen_failed", "docs_kept", "prompt_tokens"):
        if k in m:
            out.append(f"- `{k}`: {_m(m, k, 1, 2)} (n = {m[k]['n']})")
    return "\n".join(out)


if __name__ == "__main__":
    paper, run = sys.argv[1], Path(sys.argv[2])
    sys.stdout.write({"longins": longins, "loong": loong}[paper](run) + "\n")

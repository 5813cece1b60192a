"""Build reports from run directories: Markdown (report.md), self-contained HTML (index.html, built
from the same data, see report/html.py), and the results block inside a paper README (between
`<!-- results:start -->` and `<!-- results:end -->`).

Every claim is assessed by `core.paper.evaluate_run`. Paper claims, harness checks and not-run
claims are shown apart; a not-run claim shows no number of ours, only what would run it. The tally
counts paper claims only, and nothing from smoke runs (a plumbing check). Each run carries its
provenance: run id, code revision(s) (flagged when a run spans several), config hash, data sha256.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solstice.core.paper import (
    FAIL,
    FAILED,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_RUN,
    PASS,
    POINT_HOLDS,
    REPRODUCED,
    Assessment,
    Claim,
    PaperSpec,
    evaluate_run,
    tally,
)
from solstice.core.records import RunRecord, provenance
from solstice.core.types import MetricValue

START, END = "<!-- results:start -->", "<!-- results:end -->"
ORDER = (REPRODUCED, POINT_HOLDS, INCONCLUSIVE, NOT_REPRODUCED, FAILED)
ICON = {REPRODUCED: "✅", POINT_HOLDS: "≈", INCONCLUSIVE: "?", NOT_REPRODUCED: "❌", FAILED: "⚠", NOT_RUN: "⏳",
        PASS: "✅", FAIL: "❌"}  # beside the words, never instead of them
PLUMBING = "smoke scale: a plumbing check (does it run end to end?), not a test of the paper"


@dataclass
class RunSummary:
    path: Path
    run: dict[str, Any]
    metrics: dict[str, MetricValue]
    paper: PaperSpec | None = None
    claims: list[dict[str, Any]] = field(default_factory=list)

    @property
    def paper_id(self) -> str:
        return self.run.get("paper", {}).get("id", "?")

    @property
    def scale(self) -> str:
        return str(self.run.get("scale", ""))

    @property
    def smoke(self) -> bool:
        return self.scale == "smoke"

    @property
    def wall(self) -> str:
        s = float(self.run.get("timings", {}).get("wall_s", 0.0))
        return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"

    @property
    def models(self) -> str:
        specs = {r: s for r, s in self.run.get("model_specs", {}).items() if s}  # unset optional roles: none
        uniq = dict.fromkeys(specs.values())
        if len(uniq) == 1:
            return next(iter(uniq))
        return ", ".join(f"{r}={s}" for r, s in specs.items())

    @property
    def command(self) -> str:
        argv = self.run.get("argv") or []
        if argv and Path(argv[0]).name in ("solstice", "__main__.py"):
            return "solstice " + " ".join(argv[1:])
        return " ".join(argv)

    @property
    def provenance(self) -> dict[str, Any]:
        return provenance(self.run)

    @property
    def seal(self) -> str:
        """Whether the run's records are as the run left them ("intact", "unsealed", "edited ...")."""
        if not (self.path / "run.json").is_file():
            return ""
        return RunRecord(self.path).verify_seal()

    def rows(self, kind: str) -> list[dict[str, Any]]:
        """Claim rows: kind "claim" (tested paper claims), "harness", or "not run"."""
        if kind == "not run":
            return [c for c in self.claims if c["status"] == NOT_RUN]
        return [c for c in self.claims if c["kind"] == kind and c["status"] != NOT_RUN]

    @property
    def tally(self) -> dict[str, int]:
        return tally([c["assessment"] for c in self.claims], self.scale)

    def verdict(self) -> str:
        """The paper's line in words: what the run shows."""
        status = self.run.get("status")
        if status != "completed":
            return f"run {status}" + (f": {self.run.get('error')}" if self.run.get("error") else "")
        claims, harness = self.rows("claim"), self.rows("harness")
        h_pass = sum(c["status"] == PASS for c in harness)
        parts = []
        if self.smoke:
            failed = sum(c["status"] == FAILED for c in claims + harness)
            parts.append("plumbing check: ran end to end" + (f", {failed} claim(s) failed to produce a value" if failed else ""))
        else:
            t = self.tally
            parts.append(", ".join(f"{t[k]} {k}" for k in ORDER if t.get(k)) or "no paper claim tested")
        if harness:
            parts.append(f"harness {h_pass}/{len(harness)} pass")
        n_not = len(self.rows("not run"))
        if n_not:
            parts.append(f"{n_not} not run here")
        return "; ".join(parts)


def load_run(path: str | Path) -> RunSummary:
    from solstice.core.registry import get_paper, is_implemented

    rec = RunRecord(Path(path))
    run = rec.read()
    metrics = rec.read_metrics()
    pid = run.get("paper", {}).get("id", "")
    paper = get_paper(pid) if pid and is_implemented(pid) else None
    return summarize(rec.path, run, metrics, paper)


def summarize(path: Path, run: dict[str, Any], metrics: dict[str, MetricValue], paper: PaperSpec | None) -> RunSummary:
    """A run's record with every claim of its paper assessed."""
    s = RunSummary(Path(path), run, metrics, paper)
    if paper is not None:
        for c, a in zip(paper.claims, evaluate_run(paper.claims, metrics, run.get("status", ""), run.get("error") or "")):
            s.claims.append(_claim_row(c, a, metrics))
    return s


def fmt_num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


_fmt_num = fmt_num  # the name before this module was split


def _ours(a: Assessment, metrics: dict[str, MetricValue] | None = None) -> str:
    if a.ours is None or a.status in (NOT_RUN, FAILED):
        return "—"  # a claim that was not run (or gave no value) shows no number of ours
    m = a.ours
    s = m.fmt()
    if a.rule == "marginal":
        s = f"{a.ours_name} = {s} vs {fmt_num(a.reference)}"
    elif a.ours_name and a.ours_name not in ("",):
        s = f"{a.ours_name} = {s}"
    if m.ci95 is not None and m.unit:
        s += f" (CI over {m.n} {m.unit})"
    elif m.n:
        s += f" (n = {m.n})"
    seeds = {k[len(a.ours_name) + 5:]: v for k, v in (metrics or {}).items() if k.startswith(a.ours_name + "_seed")}
    if seeds:  # fewer than 5 seeds: each seed is shown, not an interval over seeds
        s += "; per seed: " + ", ".join(f"{k}: {fmt_num(v.value)}" for k, v in seeds.items())
    return s


def _claim_row(c: Claim, a: Assessment, metrics: dict[str, MetricValue] | None = None) -> dict[str, Any]:
    if c.check:
        paper = c.check if c.paper_value is None else f"{fmt_num(c.paper_value)} ({c.check})"
    else:
        paper = fmt_num(c.paper_value) + (f" ± {c.tolerance:g}" if c.tolerance else "")
    return {
        "key": c.key, "claim": c.description, "source": c.source, "setting": c.setting, "kind": c.kind,
        "paper": paper, "ours": _ours(a, metrics), "status": a.status, "label": a.label, "detail": a.detail,
        "assessment": a,
    }


def cell(text: Any) -> str:
    """Text made safe for one Markdown table cell: a '|' or a line break cannot split the row."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def verdict_text(c: dict[str, Any]) -> str:
    return f"{ICON.get(c['status'], '')} {c['label']}: {c['detail']}".strip() if c["status"] != FAILED else \
        f"{ICON[FAILED]} {c['label']}"


def claims_table(s: RunSummary, link: str | None = None) -> str:
    """The paper-claims table (tested claims only; harness checks and not-run claims are apart)."""
    rows = [[f"{c['claim']} ({c['source']})", c["setting"] or "—", c["paper"], c["ours"], verdict_text(c)]
            for c in s.rows("claim")]
    return md_table(["Claim (source)", "Setting", "Paper", "Ours (95% CI)", "Verdict"], rows) if rows else \
        "No paper claim was tested by this run."


def harness_table(s: RunSummary) -> str:
    rows = [[f"{c['claim']} ({c['source']})", c["paper"], c["ours"], f"{c['status']}: {c['detail']}"]
            for c in s.rows("harness")]
    return md_table(["Harness check (source)", "Expected", "Ours", "Result"], rows)


def not_run_table(s: RunSummary) -> str:
    rows = [[f"{c['claim']} ({c['source']})", c["setting"] or "—", c["paper"], "—", c["detail"]]
            for c in s.rows("not run")]
    return md_table(["Claim (source)", "Setting", "Paper", "Ours", "Not run here: why, and what would run it"], rows)


def metrics_table(s: RunSummary) -> str:
    return md_table(["Metric", "Value (95% CI)", "CI over", "n"],
                    [[k, v.fmt(), v.unit or "—", v.n] for k, v in s.metrics.items()])


def provenance_line(s: RunSummary) -> str:
    p = s.provenance
    revs = ", ".join(f"`{r}`" for r in p["revisions"]) or "unrecorded"
    flag = ""
    if p["spans_revisions"]:
        flag = f" — **spans {len(p['revisions'])} code revisions** ({' → '.join(p['segments'])})"
    elif p["unpinned"]:
        flag = " — code not pinned (uncommitted changes or no git)"
    data = ", ".join(f"{d['name']}@{(d['sha256'] or 'no sha')[:12]}" for d in p["data"]) or "no dataset files"
    seal = s.seal
    seal_txt = "" if seal in ("intact", "") else f" · **records {seal}**" if seal.startswith("edited") else f" · {seal}"
    return f"run id `{p['run_id']}` · code {revs}{flag} · config `{p['config_hash']}` · data {data}{seal_txt}"


def run_header(s: RunSummary) -> str:
    env = s.run.get("env", {})
    head = (f"Scale `{s.scale}` · model `{s.models}` · wall time {s.wall} · {env.get('cpu_count', '?')} CPU cores · "
            f"solstice {s.run.get('solstice_version')} · status **{s.run.get('status')}**")
    lineage = s.run.get("lineage", {}).get("rescored_from")
    if lineage:
        head += (f" · rescored from run `{lineage.get('run_id')}` (changed: {', '.join(lineage.get('changed_roles', []))}; "
                 f"{lineage.get('records_kept')} records reused)")
    return head


def _section(s: RunSummary, plots_base: Path | None) -> str:
    title = s.run.get("paper", {}).get("title", s.paper_id)
    arxiv = s.run.get("paper", {}).get("arxiv", "")
    lines = [f"## {s.paper_id}: {title} (arXiv {arxiv})", "", f"**{s.verdict()}**", "", run_header(s), "",
             f"Provenance: {provenance_line(s)}", "", f"Command: `{s.command}` · run directory `{s.path}`", ""]
    if s.smoke:
        lines += [f"> {PLUMBING}.", ""]
    if s.run.get("error"):
        lines += [f"> error: {cell(s.run['error'])}", ""]
    if s.rows("claim"):
        lines += ["### Paper claims", "", claims_table(s), ""]
    if s.rows("harness"):
        lines += ["### Harness checks", "", harness_table(s), ""]
    if s.rows("not run"):
        lines += [f"<details><summary>Not run here ({len(s.rows('not run'))})</summary>", "", not_run_table(s), "",
                  "</details>", ""]
    if s.metrics:
        lines += ["<details><summary>All metrics</summary>", "", metrics_table(s), "", "</details>", ""]
    for w in s.run.get("warnings", []):
        lines.append(f"> warning: {cell(w)}")
    for p in s.run.get("plots", []):
        src = s.path / p["path"]
        rel = src if plots_base is None else Path(p["path"]).name
        lines += ["", f"![{p['caption']}]({rel})", f"*{p['caption']}*"]
    return "\n".join(lines) + "\n"


def headline(runs: Sequence[RunSummary]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in runs:
        for k, v in s.tally.items():
            counts[k] = counts.get(k, 0) + v
    return counts


def summary_rows(runs: Sequence[RunSummary], not_run: dict[str, str] | None = None) -> list[list[str]]:
    rows = [[s.paper_id, s.scale, s.models, s.verdict(), s.wall] for s in runs]
    rows += [[pid, "—", "—", f"not run: {why}", "—"] for pid, why in (not_run or {}).items()]
    return rows


def markdown_report(runs: Sequence[RunSummary], not_run: dict[str, str] | None = None, title: str = "Solstice report",
                    forest: str | None = None) -> str:
    counts = headline(runs)
    out = [f"# {title}", "",
           "Paper claims (harness checks, not-run claims and smoke runs left out): "
           + (", ".join(f"{counts[k]} {k}" for k in ORDER if counts.get(k)) or "none tested"), ""]
    if any(s.smoke for s in runs):
        out += [f"Smoke-scale runs are {PLUMBING.split(': ', 1)[1]}.", ""]
    out += [md_table(["Paper", "Scale", "Model", "Verdict", "Wall time"], summary_rows(runs, not_run)), ""]
    if forest:
        out += [f"![Forest plot: ours (95% CI) beside the paper's value, per tested claim]({forest})", ""]
    for s in runs:
        out.append(_section(s, None))
    return "\n".join(out)


def forest_rows(runs: Sequence[RunSummary]):
    from solstice.report.forest import ForestRow

    rows = []
    for s in runs:
        for c in s.rows("claim"):
            a: Assessment = c["assessment"]
            if a.ours is None or a.status in (NOT_RUN, FAILED):
                continue
            ci = a.ours.ci95 if a.rule not in ("point",) else None
            rows.append(ForestRow(f"{s.paper_id}: {c['key']}" + (" (smoke)" if s.smoke else ""), a.ours.value,
                                  ci, a.status, a.paper_value, a.reference if a.rule != "band" else None))
    return rows


def write_report(runs: Sequence[RunSummary], out_dir: str | Path, not_run: dict[str, str] | None = None) -> tuple[Path, Path]:
    from solstice.report.forest import forest_plot
    from solstice.report.html import html_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = forest_plot(forest_rows(runs), out / "forest.png")
    if png is None and (out / "forest.png").exists():
        (out / "forest.png").unlink()
    md = markdown_report(runs, not_run, forest="forest.png" if png else None)
    md_path = out / "report.md"
    html_path = out / "index.html"
    md_path.write_text(md)
    html_path.write_text(html_report(runs, not_run, forest=png))
    return md_path, html_path


def readme_block(runs: Sequence[RunSummary]) -> str:
    parts = [START, ""]
    for s in runs:
        parts += [run_header(s), "", f"Provenance: {provenance_line(s)}", "", f"Command: `{s.command}`", ""]
        if s.smoke:
            parts += [f"> {PLUMBING}.", ""]
        parts += ["**Paper claims**" + ("" if s.smoke else f" — {s.verdict()}"), "", claims_table(s), ""]
        if s.rows("harness"):
            parts += ["**Harness checks** (golden values, parity, data facts; not counted as claims)", "",
                      harness_table(s), ""]
        if s.rows("not run"):
            parts += ["**Not run here** (no number of ours; what would run it)", "", not_run_table(s), ""]
        if s.metrics:  # every number of the run, so prose can cite the record instead of copying it
            parts += ["<details><summary>All metrics</summary>", "", metrics_table(s), "", "</details>", ""]
    parts.append(END)
    return "\n".join(parts)


def update_readme(readme: str | Path, runs: Sequence[RunSummary]) -> None:
    p = Path(readme)
    text = p.read_text()
    if START not in text or END not in text:
        text = text.rstrip() + "\n\n## Results\n\n" + START + "\n" + END + "\n"
    pre, _, rest = text.partition(START)
    _, _, post = rest.partition(END)
    p.write_text(pre + readme_block(runs) + post)

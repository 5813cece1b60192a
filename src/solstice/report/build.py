"""Build reports from run directories: Markdown (report.md), self-contained HTML (index.html), and
the results table inside a paper README (between `<!-- results:start -->` and `<!-- results:end -->`)."""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Sequence
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
from solstice.core.records import RunRecord
from solstice.core.types import MetricValue

ICON = {REPRODUCED: "✅", POINT_HOLDS: "≈", INCONCLUSIVE: "?", NOT_REPRODUCED: "❌", FAILED: "⚠", NOT_RUN: "⏳",
        PASS: "✅", FAIL: "❌"}
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass
class RunSummary:
    path: Path
    run: dict[str, Any]
    metrics: dict[str, MetricValue]
    paper: PaperSpec | None = None
    claims: list[dict[str, str]] = field(default_factory=list)

    @property
    def paper_id(self) -> str:
        return self.run.get("paper", {}).get("id", "?")

    @property
    def wall(self) -> str:
        s = float(self.run.get("timings", {}).get("wall_s", 0.0))
        return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"

    @property
    def models(self) -> str:
        specs = self.run.get("model_specs", {})
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
            s.claims.append(_claim_row(c, a))
    return s


def _fmt_num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _claim_row(c: Claim, a: Assessment) -> dict[str, Any]:
    # a claim that was not run (or produced no value) shows no number of ours
    ours = "—" if a.ours is None or a.status in (NOT_RUN, FAILED) else a.ours.fmt()
    if c.check:
        paper = c.check if c.paper_value is None else f"{_fmt_num(c.paper_value)} ({c.check})"
    else:
        paper = _fmt_num(c.paper_value) + (f" ± {c.tolerance:g}" if c.tolerance else "")
    return {
        "key": c.key, "claim": c.description, "source": c.source, "setting": c.setting, "kind": c.kind,
        "paper": paper, "ours": ours, "status": a.status, "label": a.label, "detail": a.detail,
        "assessment": a,
    }


def claims_table(s: RunSummary, link: str | None = None) -> str:
    rows = ["| Claim (source) | Paper's setting | Paper | Ours (95% CI) | Status |", "|---|---|---|---|---|"]
    for c in s.claims:
        rows.append(
            f"| {c['claim']} ({c['source']}) | {c['setting'] or '—'} | {c['paper']} | {c['ours']} | "
            f"{ICON.get(c['status'], '')} {c['status']}: {c['detail']} |"
        )
    return "\n".join(rows)


def metrics_table(s: RunSummary) -> str:
    rows = ["| Metric | Value (95% CI) | n |", "|---|---|---|"]
    for k, v in s.metrics.items():
        rows.append(f"| {k} | {v.fmt()} | {v.n} |")
    return "\n".join(rows)


def _section(s: RunSummary, plots_base: Path | None) -> str:
    title = s.run.get("paper", {}).get("title", s.paper_id)
    arxiv = s.run.get("paper", {}).get("arxiv", "")
    lines = [
        f"## {s.paper_id}: {title} (arXiv {arxiv})", "",
        f"- run: `{s.path}` · status **{s.run.get('status')}** · scale `{s.run.get('scale')}` · "
        f"model `{s.models}` · wall time {s.wall} · seed {s.run.get('seed')}"
        + (f" · limit {s.run.get('limit')}" if s.run.get("limit") else ""),
        f"- command: `{s.command}`",
    ]
    if s.run.get("error"):
        lines.append(f"- error: {s.run['error']}")
    lines.append("")
    if s.claims:
        lines += [claims_table(s), ""]
    if s.metrics:
        lines += ["<details><summary>All metrics</summary>", "", metrics_table(s), "", "</details>", ""]
    for w in s.run.get("warnings", []):
        lines.append(f"> warning: {w}")
    for p in s.run.get("plots", []):
        src = s.path / p["path"]
        rel = src if plots_base is None else Path(p["path"]).name
        lines += ["", f"![{p['caption']}]({rel})", f"*{p['caption']}*"]
    return "\n".join(lines) + "\n"


def markdown_report(runs: Sequence[RunSummary], not_run: dict[str, str] | None = None, title: str = "Solstice report") -> str:
    out = [f"# {title}", ""]
    counts: dict[str, int] = {}
    for s in runs:
        for k, v in tally([c["assessment"] for c in s.claims], s.run.get("scale", "")).items():
            counts[k] = counts.get(k, 0) + v
    out.append("Paper claims (harness checks, not-run claims and smoke runs left out): "
               + (", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none tested"))
    if any(s.run.get("scale") == "smoke" for s in runs):
        out.append("")
        out.append("Smoke-scale runs are a plumbing check (does it run end to end?), not a test of the paper.")
    out.append("")
    out.append("| Paper | Status | Scale | Model | Wall time | Claims |")
    out.append("|---|---|---|---|---|---|")
    for s in runs:
        cs = " ".join(ICON.get(c["status"], "") for c in s.claims)
        out.append(f"| {s.paper_id} | {s.run.get('status')} | {s.run.get('scale')} | `{s.models}` | {s.wall} | {cs} |")
    for pid, why in (not_run or {}).items():
        out.append(f"| {pid} | not run | — | — | — | ⏳ {why} |")
    out.append("")
    for s in runs:
        out.append(_section(s, None))
    return "\n".join(out)


def _md_to_html(md: str, runs: Iterable[RunSummary]) -> str:
    """A small Markdown-to-HTML for our own report shapes (tables, headings, lists, images)."""
    body: list[str] = []
    lines = md.splitlines()
    i = 0
    in_list = False

    def inline(t: str) -> str:
        t = html.escape(t)
        t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
        t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
        t = re.sub(r"(?<!\*)\*(?!\*)(.+?)\*", r"<i>\1</i>", t)
        return t

    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            head, rest = rows[0], [r for r in rows[2:]]
            body.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>")
            for r in rest:
                body.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>")
            body.append("</table>")
            continue
        if in_list and not line.startswith("- "):
            body.append("</ul>")
            in_list = False
        m = re.match(r"!\[(.*?)\]\((.*?)\)", line)
        if m:
            p = Path(m.group(2))
            if p.is_file():
                data = base64.b64encode(p.read_bytes()).decode()
                body.append(f'<img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}" style="max-width:720px">')
        elif line.startswith("# "):
            body.append(f"<h1>{inline(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{inline(line[3:])}</h2>")
        elif line.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{inline(line[2:])}</li>")
        elif line.startswith("> "):
            body.append(f"<blockquote>{inline(line[2:])}</blockquote>")
        elif line.startswith("<"):
            body.append(line)
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
        i += 1
    if in_list:
        body.append("</ul>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "font-size:14px;vertical-align:top}th{background:#f3f3f3}code{background:#f6f6f6}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Solstice report</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"


def write_report(runs: Sequence[RunSummary], out_dir: str | Path, not_run: dict[str, str] | None = None) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown_report(runs, not_run)
    md_path = out / "report.md"
    html_path = out / "index.html"
    md_path.write_text(md)
    html_path.write_text(_md_to_html(md, runs))
    return md_path, html_path


def readme_block(runs: Sequence[RunSummary]) -> str:
    parts = [START, ""]
    for s in runs:
        parts += [
            f"Scale `{s.run.get('scale')}` · model `{s.models}` · wall time {s.wall} · "
            f"{s.run.get('env', {}).get('cpu_count', '?')} CPU cores · solstice {s.run.get('solstice_version')}",
            "",
            f"Command: `{s.command}`",
            "",
            claims_table(s),
            "",
        ]
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

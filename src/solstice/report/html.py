"""The self-contained HTML report (index.html), built from the report's data (never by converting
Markdown): every cell is escaped text, so no value can break a table; verdicts are words on a
coloured background (emoji need fonts many machines lack); images are embedded."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solstice.report.build import ORDER, PLUMBING, RunSummary, fmt_num, headline, summary_rows

STATUS_CLASS = {"reproduced": "ok", "point estimate holds": "weak", "inconclusive": "grey", "not reproduced": "bad",
                "failed": "warn", "not run": "grey", "pass": "ok", "fail": "bad"}
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #d0d7de;padding:4px 8px;font-size:13px;vertical-align:top;text-align:left}
th{background:#f6f8fa}code{background:#f6f8fa;padding:0 3px;font-size:12px}
.v{padding:1px 6px;border-radius:4px;font-weight:600;white-space:nowrap}
.ok{background:#dafbe1;color:#116329}.weak{background:#eef6d5;color:#4d6a00}.grey{background:#eaeef2;color:#424a53}
.bad{background:#ffebe9;color:#a40e26}.warn{background:#fff1e5;color:#953800}
.note{color:#57606a;font-size:13px}.flag{color:#a40e26;font-weight:600}details{margin:.4em 0 1em}
img{max-width:900px}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def badge(status: str, text: str | None = None) -> str:
    return f'<span class="v {STATUS_CLASS.get(status, "grey")}">{esc(text or status)}</span>'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], raw: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    """A table of escaped text; columns in `raw` hold HTML made here (badges)."""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw else esc(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table>{head}{body}</table>"


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _verdict_cell(c: dict[str, Any]) -> str:
    return badge(c["status"], c["label"]) + ("" if c["status"] == "failed" else f" {esc(c['detail'])}")


def _provenance(s: RunSummary) -> str:
    p = s.provenance
    revs = ", ".join(f"<code>{esc(r)}</code>" for r in p["revisions"]) or "unrecorded"
    flag = ""
    if p["spans_revisions"]:
        flag = f' <span class="flag">spans {len(p["revisions"])} code revisions ({esc(" → ".join(p["segments"]))})</span>'
    elif p["unpinned"]:
        flag = ' <span class="flag">code not pinned (uncommitted changes or no git)</span>'
    data = ", ".join(f"{esc(d['name'])}@<code>{esc((d['sha256'] or 'no sha')[:12])}</code>" for d in p["data"])
    seal = s.seal
    seal_txt = "" if seal in ("intact", "") else (f' · <span class="flag">records {esc(seal)}</span>'
                                                  if seal.startswith("edited") else f" · {esc(seal)}")
    return (f"run id <code>{esc(p['run_id'])}</code> · code {revs}{flag} · config <code>{esc(p['config_hash'])}</code>"
            f" · data {data or 'no dataset files'}{seal_txt}")


def _section(s: RunSummary) -> str:
    title = s.run.get("paper", {}).get("title", s.paper_id)
    arxiv = s.run.get("paper", {}).get("arxiv", "")
    env = s.run.get("env", {})
    out = [f'<h2 id="{esc(s.paper_id)}">{esc(s.paper_id)}: {esc(title)} <span class="note">arXiv {esc(arxiv)}</span></h2>',
           f"<p><b>{esc(s.verdict())}</b></p>",
           f'<p class="note">scale <code>{esc(s.scale)}</code> · model <code>{esc(s.models)}</code> · wall time '
           f"{esc(s.wall)} · {esc(env.get('cpu_count', '?'))} CPU cores · status {esc(s.run.get('status'))}</p>",
           f'<p class="note">{_provenance(s)}</p>',
           f'<p class="note">command <code>{esc(s.command)}</code> · run directory <code>{esc(s.path)}</code></p>']
    lineage = s.run.get("lineage", {}).get("rescored_from")
    if lineage:
        out.append(f'<p class="note">rescored from run <code>{esc(lineage.get("run_id"))}</code> (changed: '
                   f'{esc(", ".join(lineage.get("changed_roles", [])))}; {esc(lineage.get("records_kept"))} records reused)</p>')
    if s.smoke:
        out.append(f"<p>{badge('inconclusive', 'plumbing check')} {esc(PLUMBING)}.</p>")
    if s.run.get("error"):
        out.append(f"<p>{badge('failed', 'error')} {esc(s.run['error'])}</p>")
    claims = s.rows("claim")
    if claims:
        out += ["<h3>Paper claims</h3>", table(
            ["Claim (source)", "Setting", "Paper", "Ours (95% CI)", "Verdict"],
            [[f"{c['claim']} ({c['source']})", c["setting"] or "—", c["paper"], c["ours"], _verdict_cell(c)] for c in claims],
            raw={4})]
    harness = s.rows("harness")
    if harness:
        out += ["<h3>Harness checks</h3>", table(
            ["Harness check (source)", "Expected", "Ours", "Result"],
            [[f"{c['claim']} ({c['source']})", c["paper"], c["ours"], badge(c["status"]) + " " + esc(c["detail"])]
             for c in harness], raw={3})]
    not_run = s.rows("not run")
    if not_run:
        out += [f"<details><summary>Not run here ({len(not_run)})</summary>", table(
            ["Claim (source)", "Paper", "Ours", "Why, and what would run it"],
            [[f"{c['claim']} ({c['source']})", c["paper"], "—", c["detail"]] for c in not_run]), "</details>"]
    if s.metrics:
        out += ["<details><summary>All metrics</summary>", table(
            ["Metric", "Value (95% CI)", "CI over", "n"],
            [[k, v.fmt(), v.unit or "—", str(v.n)] for k, v in s.metrics.items()]), "</details>"]
    out += [f'<p class="note">warning: {esc(w)}</p>' for w in s.run.get("warnings", [])]
    for p in s.run.get("plots", []):
        img = _image(s.path / p["path"], p["caption"])
        if img:
            out += [img, f'<p class="note">{esc(p["caption"])}</p>']
    return "\n".join(out)


def html_report(runs: Sequence[RunSummary], not_run: dict[str, str] | None = None, title: str = "Solstice report",
                forest: Path | None = None) -> str:
    counts = headline(runs)
    tally = ", ".join(f"{badge(k, f'{counts[k]} {k}')}" for k in ORDER if counts.get(k)) or "none tested"
    body = [f"<h1>{esc(title)}</h1>",
            f"<p>Paper claims (harness checks, not-run claims and smoke runs left out): {tally}</p>"]
    if any(s.smoke for s in runs):
        body.append(f'<p class="note">Smoke-scale runs are {esc(PLUMBING.split(": ", 1)[1])}.</p>')
    rows = summary_rows(runs, not_run)
    body.append(table(["Paper", "Scale", "Model", "Verdict", "Wall time"],
                      [[f'<a href="#{esc(r[0])}">{esc(r[0])}</a>', esc(r[1]), esc(r[2]), esc(r[3]), esc(r[4])] for r in rows],
                      raw={0, 1, 2, 3, 4}))
    if forest is not None:
        body += ["<h2>Ours beside the paper, per tested claim</h2>",
                 _image(Path(forest), "forest plot: ours (95% CI) beside the paper's value, per tested claim"),
                 '<p class="note">dot and bar: our value and 95% CI · open diamond: the paper\'s value · dotted line: '
                 "the bound the claim tests · colour: the verdict</p>"]
    body += [_section(s) for s in runs]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{STYLE}</style>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


__all__ = ["html_report", "table", "badge", "fmt_num"]

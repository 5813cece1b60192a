"""`solstice reproduce`: every implemented paper at one scale, then one report.

Runs are reused when possible: a completed run of the same paper, scale and config hash is kept,
an unfinished one is resumed, so a killed `reproduce` loses no finished work.
A paper whose dataset is neither under SOLSTICE_DATA nor downloadable is skipped with a warning (listed in
the report), not counted as a failure: a fresh machine without the data still gets a report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from solstice.core.config import config_hash
from solstice.core.records import RunRecord
from solstice.core.registry import get_paper, implemented, table
from solstice.core.runner import prepare, run_paper
from solstice.errors import ConfigError, DataUnavailable, SolsticeError

log = logging.getLogger("solstice")


def _previous(out: Path, paper_id: str, scale: str, h: str, model_specs: dict[str, str]) -> Path | None:
    d = out / paper_id
    if not d.is_dir():
        return None
    for run in sorted(d.glob(f"*_{scale}_{h}*"), reverse=True):
        try:
            meta = RunRecord(run).read()
        except SolsticeError:
            continue
        if meta.get("model_specs") == model_specs and meta.get("config_hash") == h:
            return run
    return None


def reproduce(*, scale: str, only: Sequence[str], out: Path, report_dir: Path, fresh: bool = False,
              models: Sequence[str] = (), argv: Sequence[str] | None = None,
              cache: str | Path | None = None, on_paper: Callable[[str, str], None] | None = None,
              ) -> tuple[int, Path, Path]:
    """Run (or reuse) every paper, then write the report. `on_paper(paper_id, line)` receives one
    verdict line per paper as it finishes, and ("", summary) at the end."""
    from solstice.report.build import load_run, write_report

    ids = list(only) or implemented()
    unknown = [i for i in ids if i not in table()]
    if unknown:
        raise ConfigError(f"unknown paper '{unknown[0]}'; `solstice list` shows the papers")
    lacking = [pid for pid in ids if scale not in get_paper(pid).scales]
    if lacking:  # refuse before running anything, so no partial report is written
        raise ConfigError(f"scale '{scale}' is not defined for {', '.join(lacking)}; "
                          f"scales: {', '.join(get_paper(lacking[0]).scales)}")
    not_run = {pid: "not implemented yet" for pid in table() if pid not in implemented() and not only}
    summaries = []
    code = 0

    def skip_for_data(pid: str, why: str) -> None:
        log.warning("%s: skipped, its data is not available here: %s", pid, why)
        not_run[pid] = f"needs data: {why}"
        tell(pid, f"skipped (needs data: {why})")

    def tell(pid: str, line: str) -> None:
        if on_paper is not None:
            on_paper(pid, line)

    def finished(summary) -> None:
        summaries.append(summary)
        tell(summary.paper_id, f"{summary.scale} · {summary.verdict()} · {summary.wall}")

    t0 = time.perf_counter()
    for pid in ids:
        try:
            paper, cfg, specs, _, _, _ = prepare(pid, scale=scale, models=models)
            prev = None if fresh else _previous(out, pid, scale, config_hash(cfg), specs)
            status = RunRecord(prev).read().get("status") if prev else None
            if prev is not None and status == "completed":
                log.info("%s: reusing completed run %s", pid, prev)
                finished(load_run(prev))
                continue
            log.info("%s: %s", pid, "resuming " + str(prev) if prev else f"running at scale {scale}")
            res = run_paper(pid, scale=scale, models=models, out=out, resume=prev, argv=argv,
                            allow_code_exec=True, cache=cache)
            if res.needs_data:  # a dataset the paper opens while running
                skip_for_data(pid, res.error)
                continue
            finished(load_run(res.path))
            if res.status != "completed":
                log.error("%s: %s (%s)", pid, res.status, res.error)
                code = max(code, 1)
                if res.status == "interrupted":
                    break
        except DataUnavailable as exc:  # a dataset checked before the run starts
            skip_for_data(pid, str(exc))
        except SolsticeError as exc:
            log.error("%s: not run: %s", pid, exc)
            not_run[pid] = str(exc)
            tell(pid, f"not run: {exc}")
            code = max(code, 1)
    md, html = write_report(summaries, report_dir, not_run)
    from solstice.report.build import ORDER, headline

    counts = headline(summaries)
    done = sum(s.run.get("status") == "completed" for s in summaries)
    tell("", f"{done} of {len(ids)} papers completed at scale {scale} in {time.perf_counter() - t0:.0f} s; "
         + ("paper claims: " + (", ".join(f"{counts[k]} {k}" for k in ORDER if counts.get(k)) or "none tested")
            if scale != "smoke" else "smoke scale: a plumbing check, no claim counted"))
    return code, md, html

"""Progress of long loops on stderr: a rich bar on a terminal, and without one (a log file, CI, a
batch job) a log line every `SOLSTICE_PROGRESS_EVERY` seconds (default 30) with done/total,
elapsed and estimated time left. `SOLSTICE_PROGRESS=0` turns both off."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("solstice.progress")


def enabled() -> bool:
    return os.environ.get("SOLSTICE_PROGRESS", "1") != "0" and sys.stderr.isatty()


def _every() -> float:
    try:
        return float(os.environ.get("SOLSTICE_PROGRESS_EVERY", "30"))
    except ValueError:
        return 30.0


def _fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def log_lines(items: Iterable[T], description: str = "", total: int | None = None, every: float | None = None) -> Iterator[T]:
    """Yield `items`, logging progress at most once per `every` seconds (and at the end)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    every = _every() if every is None else every
    t0 = last = time.monotonic()
    done = 0
    for x in items:
        yield x
        done += 1
        now = time.monotonic()
        if now - last >= every or (total is not None and done == total and now - t0 >= every):
            last = now
            el = now - t0
            if total:
                left = el / done * (total - done)
                log.info("%s: %d/%d (%.0f%%), %s elapsed, ~%s left", description or "progress", done, total,
                         100 * done / total, _fmt_s(el), _fmt_s(left))
            else:
                log.info("%s: %d done, %s elapsed", description or "progress", done, _fmt_s(el))


def track(items: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
    if os.environ.get("SOLSTICE_PROGRESS", "1") == "0":
        yield from items
        return
    if not sys.stderr.isatty():
        yield from log_lines(items, description, total)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    ) as prog:
        task = prog.add_task(description, total=total)
        for x in items:
            yield x
            prog.advance(task)

"""Run records: one directory per run.

    run.json        paper id and version, resolved config and its hash, model specs, datasets,
                    seed, limit, library versions, git revision, timings, status, warnings
    samples.jsonl   one line per sample, flushed and fsynced as it is produced
    metrics.json    each metric: value, n, ci95, higher_is_better (written only at completion)
    artifacts/      plots, arrays, stage results
    stages/         finished stages of multi-stage runs (JSON), for resume

A run is complete only when run.json says status "completed" and metrics.json exists.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from solstice.core.types import MetricValue
from solstice.errors import ResumeError

SCHEMA_VERSION = 1


def atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False, default=str, allow_nan=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def new_run_dir(out_root: Path, paper_id: str, scale: str, cfg_hash: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out_root / paper_id / f"{stamp}_{scale}_{cfg_hash}"
    d, k = base, 1
    while d.exists():
        k += 1
        d = base.with_name(f"{base.name}-{k}")
    (d / "artifacts").mkdir(parents=True)
    return d


class RunRecord:
    """Reads and writes one run directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.run_json = self.path / "run.json"
        self.samples_path = self.path / "samples.jsonl"
        self.metrics_path = self.path / "metrics.json"
        self.artifacts = self.path / "artifacts"
        self.stages = self.path / "stages"
        self._fh = None

    # -- run.json ----------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise ResumeError(f"'{self.path}' is not a run directory (no run.json)")
        try:
            return json.loads(self.run_json.read_text())
        except json.JSONDecodeError as exc:
            raise ResumeError(f"'{self.run_json}' is damaged ({exc.msg})") from None

    def write(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.run_json, {"schema_version": SCHEMA_VERSION, **data})

    def update(self, **fields: Any) -> dict[str, Any]:
        data = self.read()
        data.update(fields)
        self.write(data)
        return data

    # -- samples -----------------------------------------------------------------------------
    def load_samples(self, repair: bool = False) -> list[dict[str, Any]]:
        """Samples recorded so far. A partial last line (a run killed mid-write) is dropped, and
        with `repair` truncated from the file."""
        if not self.samples_path.is_file():
            return []
        rows, good_bytes = [], 0
        with open(self.samples_path, "rb") as f:
            for raw in f:
                try:
                    rows.append(json.loads(raw))
                except json.JSONDecodeError:
                    break
                if not raw.endswith(b"\n"):
                    rows.pop()
                    break
                good_bytes += len(raw)
        if repair and good_bytes != self.samples_path.stat().st_size:
            with open(self.samples_path, "rb+") as f:
                f.truncate(good_bytes)
        return rows

    def append_sample(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            self._fh = open(self.samples_path, "a", encoding="utf-8")
        self._fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append_samples(self, rows: list[dict[str, Any]]) -> None:
        """Several rows, flushed and fsynced once (a batch)."""
        if not rows:
            return
        if self._fh is None:
            self._fh = open(self.samples_path, "a", encoding="utf-8")
        self._fh.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def iter_samples(self) -> Iterator[dict[str, Any]]:
        yield from self.load_samples()

    # -- metrics -----------------------------------------------------------------------------
    def write_metrics(self, metrics: dict[str, MetricValue]) -> None:
        atomic_write_json(self.metrics_path, {k: v.to_json() for k, v in metrics.items()})

    def read_metrics(self) -> dict[str, MetricValue]:
        if not self.metrics_path.is_file():
            return {}
        return {k: MetricValue.from_json(v) for k, v in json.loads(self.metrics_path.read_text()).items()}

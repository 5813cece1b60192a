"""Run records: one directory per run.

    run.json        run id, paper id and version, resolved config and its hash, model specs,
                    datasets (with sha256), seed, limit, timings, status, warnings, and
                    `environments`: one segment per process that wrote the run (start, resume,
                    shard, merge ...) with its code revision, argv and library versions
    samples.jsonl   one line per sample, flushed and fsynced as it is produced
    metrics.json    each metric: value, n, ci95, higher_is_better (written only at completion)
    artifacts/      plots, arrays, stage results
    stages/         finished stages of multi-stage runs (JSON), for resume

A run is complete only when run.json says status "completed" and metrics.json exists.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from solstice.core.types import MetricValue
from solstice.errors import ResumeError

SCHEMA_VERSION = 2


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


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def environment_segment(kind: str, argv: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """One process's contribution to a run: what ran (code revision, versions, machine) and when.

    `kind` says why the process wrote to the run: "start", "resume", or another verb (a shard,
    a merge, a rescore). Extra fields (e.g. `shard="1/4"`, `samples_before=120`) are kept as given.
    """
    from solstice import __version__
    from solstice.core.env import environment

    env = environment()
    return {
        "kind": kind,
        "started_at": time.time(),
        "solstice_version": __version__,
        "git": env.pop("git", {}),
        "host": socket.gethostname(),
        "argv": list(argv) if argv is not None else None,
        **env,
        **extra,
    }


def revision_of(segment: dict[str, Any]) -> str:
    """A segment's code revision as one string: the sha, '+dirty' when the tree had changes,
    'unknown' outside git."""
    git = segment.get("git") or {}
    sha = git.get("sha")
    if not sha:
        return "unknown"
    return sha[:12] + ("+dirty" if git.get("dirty") else "")


def environments_of(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The environment segments of a run.json; a record from before segments existed gives its one
    `env` as a single "start" segment."""
    segs = run.get("environments")
    if segs:
        return list(segs)
    env = run.get("env")
    if not env:
        return []
    return [{"kind": "start", "started_at": run.get("started_at"), "solstice_version": run.get("solstice_version"),
             "argv": run.get("argv"), **env}]


def provenance(run: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to trace a run's numbers: run id, code revision(s), config hash, data
    sha256s, model specs, and whether the run spans several code revisions."""
    segs = environments_of(run)
    revisions = list(dict.fromkeys(revision_of(s) for s in segs))
    return {
        "run_id": run.get("run_id") or "unrecorded",
        "revisions": revisions,
        "spans_revisions": len(revisions) > 1,
        # a dirty or unknown tree cannot be pinned to a revision: the code may differ from the sha
        "unpinned": any(r.endswith("+dirty") or r == "unknown" for r in revisions),
        "segments": [s.get("kind", "?") for s in segs],
        "config_hash": run.get("config_hash"),
        "data": [{"name": d.get("name"), "sha256": d.get("sha256")} for d in run.get("datasets", [])],
        "models": dict(run.get("model_specs", {})),
    }


class RunRecord:
    """Reads and writes one run directory. A `readonly` record (the ranks other than 0 of a
    distributed run, see solstice.core.distributed) reads it and writes nothing."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
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
        if self.readonly:
            return
        atomic_write_json(self.run_json, {"schema_version": SCHEMA_VERSION, **data})

    def update(self, **fields: Any) -> dict[str, Any]:
        if self.readonly:
            return {}
        data = self.read()
        data.update(fields)
        self.write(data)
        return data

    # -- provenance --------------------------------------------------------------------------
    @property
    def environments(self) -> list[dict[str, Any]]:
        """One segment per process that wrote this run, oldest first (see `environment_segment`)."""
        return environments_of(self.read())

    def add_environment(self, segment: dict[str, Any]) -> list[dict[str, Any]]:
        """Append a process's segment; earlier segments are never rewritten."""
        if self.readonly:
            return []
        data = self.read()
        segs = environments_of(data) + [segment]
        data["environments"] = segs
        self.write(data)
        return segs

    def provenance(self) -> dict[str, Any]:
        return {**provenance(self.read()), "seal": self.verify_seal()}

    # -- seal --------------------------------------------------------------------------------
    def _digests(self, data: dict[str, Any]) -> dict[str, str | None]:
        import hashlib

        def file_sha(p: Path) -> str | None:
            return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None

        body = json.dumps({k: v for k, v in data.items() if k != "seal"}, sort_keys=True, default=str)
        return {"run_json": hashlib.sha256(body.encode()).hexdigest(), "metrics": file_sha(self.metrics_path),
                "samples": file_sha(self.samples_path)}

    def seal(self) -> None:
        """Record the digests of run.json, metrics.json and samples.jsonl as the run finishes, so a
        later edit by hand shows (`verify_seal`). Every process that writes the run seals it again."""
        if self.readonly:
            return
        data = self.read()
        data["seal"] = self._digests(data)
        self.write(data)

    def verify_seal(self) -> str:
        """"intact", "unsealed" (unfinished, or a record from before seals), or what was changed
        after the run finished ("edited: metrics.json, run.json")."""
        data = self.read()
        seal = data.get("seal")
        if not seal:
            return "unsealed"
        now = self._digests(data)
        names = {"run_json": "run.json", "metrics": "metrics.json", "samples": "samples.jsonl"}
        changed = [names[k] for k in names if seal.get(k) != now[k]]
        return "edited after the run: " + ", ".join(changed) if changed else "intact"

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
        if repair and not self.readonly and good_bytes != self.samples_path.stat().st_size:
            with open(self.samples_path, "rb+") as f:
                f.truncate(good_bytes)
        return rows

    def append_sample(self, row: dict[str, Any]) -> None:
        if self.readonly:
            return
        if self._fh is None:
            self._fh = open(self.samples_path, "a", encoding="utf-8")
        self._fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append_samples(self, rows: list[dict[str, Any]]) -> None:
        """Several rows, flushed and fsynced once (a batch)."""
        if not rows or self.readonly:
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
        if self.readonly:
            return
        atomic_write_json(self.metrics_path, {k: v.to_json() for k, v in metrics.items()})

    def read_metrics(self) -> dict[str, MetricValue]:
        if not self.metrics_path.is_file():
            return {}
        return {k: MetricValue.from_json(v) for k, v in json.loads(self.metrics_path.read_text()).items()}

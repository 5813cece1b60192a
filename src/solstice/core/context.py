"""RunContext: what a paper's runner receives besides its config.

    ctx.model(role)          the model for a role (loaded once, capabilities already checked)
    ctx.dataset(source)      the local path of a DataSource, recorded in run.json
    ctx.map(samples, fn)     run `fn` over batches of samples not yet recorded, record each result
                             (flushed, in sample order), and return every record in sample order
                             (resume-safe). Batches are fed continuously: with endpoint models
                             several batches are in flight at once (see `map`); with `--executor
                             ray` they run as Ray tasks; with `--shard i/n` only slice i is computed
    ctx.stage(name, fn)      run a whole stage once; a resumed run reads its saved JSON result
    roles=(...)              on map/stage: the model roles its records depend on (directly or through
                             their inputs). `solstice rescore` keeps the records that depend on none
                             of the changed roles; undeclared records depend on every role.
    ctx.track(items, desc)   a progress bar
    ctx.warn(msg)            a warning that is logged and kept in run.json
    ctx.add_plot(path, caption) / ctx.artifact(name)
    ctx.is_main              False on the ranks other than 0 of a torchrun launch: they write
                             nothing (guard a paper's own file writes with it); `stage` and `map`
                             run on every rank and hand every rank rank 0's result
                             (see solstice.core.distributed)
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from solstice.core import distributed
from solstice.core.progress import track
from solstice.core.records import RunRecord, atomic_write_json
from solstice.core.types import Sample
from solstice.data.sources import DataSource, dataset_info, resolve
from solstice.errors import ConfigError
from solstice.models.base import Model

log = logging.getLogger("solstice")
T = TypeVar("T")


@dataclass
class RunContext:
    record: RunRecord
    paper_id: str
    scale: str
    seed: int
    limit: int | None
    model_specs: dict[str, str]
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    plots: list[dict[str, str]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    # which model roles each map key / stage depends on (run.json "depends"; used by rescore)
    depends: dict[str, dict[str, list[str]]] = field(default_factory=lambda: {"map": {}, "stage": {}})
    # opt-in call cache (`--cache DIR` / `--cache run`): every role's model answers through it,
    # keyed on the model's fingerprint (see solstice.models.cache)
    cache: Path | None = None
    uncached_roles: frozenset[str] = frozenset()  # roles read white-box (hidden states): never wrapped
    _models: dict[str, Model] = field(default_factory=dict)
    _model_loader: Callable[[str], Model] | None = None
    # scale-out: records from shards being merged (done key -> row), this run's shard (i, n), an
    # executor that runs batches elsewhere (Ray), and what each map did (kept in run.json "maps")
    prior: dict[str, dict[str, Any]] = field(default_factory=dict)
    shard: tuple[int, int] | None = None
    executor: Any = None
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.record.path

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run (rank 0, or the only process)."""
        return not self.record.readonly

    @property
    def artifacts(self) -> Path:
        if self.is_main:
            self.record.artifacts.mkdir(exist_ok=True)
        return self.record.artifacts

    def artifact(self, name: str) -> Path:
        p = self.artifacts / name
        if self.is_main:
            p.parent.mkdir(parents=True, exist_ok=True)
        return p

    # -- models ------------------------------------------------------------------------------
    def has_model(self, role: str) -> bool:
        """Whether `role` has a model (false for an optional role left unset)."""
        return bool(self.model_specs.get(role))

    def model(self, role: str = "target") -> Model:
        if role not in self.model_specs:
            raise KeyError(f"no model role '{role}' (roles: {', '.join(self.model_specs)})")
        if not self.model_specs[role]:
            raise ConfigError(f"the optional model role '{role}' is not set; pass --model {role}=SPEC")
        if role not in self._models:
            from solstice.models.loader import load_model

            loader = self._model_loader or load_model
            t0 = time.perf_counter()
            model = loader(self.model_specs[role])
            if self.cache is not None and role not in self.uncached_roles:
                from solstice.models.cache import CachedModel

                model = CachedModel(model, self.cache)
            self._models[role] = model
            log.info("model %s=%s ready in %.1fs", role, self.model_specs[role], time.perf_counter() - t0)
            self._save_meta()
        return self._models[role]

    # -- data --------------------------------------------------------------------------------
    def dataset(self, src: DataSource) -> Path:
        path = resolve(src)
        if not any(d["name"] == src.name for d in self.datasets):
            self.datasets.append(dataset_info(src, path))
            self._save_meta()
        return path

    def limited(self, samples: Sequence[T]) -> list[T]:
        return list(samples[: self.limit]) if self.limit is not None else list(samples)

    # -- samples -----------------------------------------------------------------------------
    def map(
        self,
        samples: Sequence[Sample],
        fn: Callable[[list[Sample]], list[dict[str, Any]]],
        *,
        batch_size: int = 8,
        description: str = "",
        key: str = "",
        roles: Sequence[str] | None = None,
        workers: int | None = None,
    ) -> list[dict[str, Any]]:
        """Records for every sample, computing only those not yet recorded under `key`.

        `fn(batch)` returns one dict per sample (JSON-serialisable). Each is written to
        samples.jsonl with `sample_id` and `key`, in sample order, as soon as it and every sample
        before it are done, so a killed run loses at most the batches in flight.

        Batches are fed continuously: up to `workers` calls of `fn` run at once (threads), a new
        one starting whenever one finishes, so a run is not paced by its slowest request. By
        default `workers` is 1 while any of the run's models is local, and enough batches to fill
        the endpoints' connection pool (`max_in_flight`, e.g. `?concurrency=64`) when every model
        is an endpoint, so `fn` must then be safe to call from several threads (pass `workers=1`
        when it is not). The number used is recorded in run.json "maps".
        """
        def did(s: Sample) -> str:
            return f"{key}/{s.id}" if key else s.id

        self._declare("map", key, roles)
        if self.executor is not None:
            self.executor.prepare()  # the run's models, loaded once in every worker
        t0 = time.perf_counter()
        merged = 0
        if self.prior:  # a merge: rows the shards recorded are appended here, in sample order
            taken = []
            for s in samples:
                d = did(s)
                if d not in self.done and d in self.prior:
                    self.done[d] = self.prior.pop(d)
                    taken.append(self.done[d])
            self.record.append_samples(taken)
            merged = len(taken)
        todo = [s for s in samples if did(s) not in self.done]
        if self.shard is not None:
            from solstice.core.shard import shard_of

            todo = [s for s in todo if shard_of(did(s), self.shard[1]) == self.shard[0]]
        multi = distributed.active()
        if multi:  # every rank computes what rank 0 has not recorded, one batch at a time
            wanted = set(distributed.broadcast([did(s) for s in todo]))
            todo = [s for s in samples if did(s) in wanted]
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        width = 1 if multi else max(1, workers if workers is not None else self._feed_width(batch_size))
        if batches:
            name = self.executor.name if self.executor is not None else "in-process"
            log.info("map %s: %d samples to compute in %d batches (%s, %d in flight)", key or "-", len(todo),
                     len(batches), name, width if self.executor is None else self.executor.width)
            bar = iter(self.track(range(len(batches)), description or f"{self.paper_id} {key}".strip(), total=len(batches)))
            next(bar, None)  # the bar's first item: batch 0 under way
            for batch, results in self._feed(fn, batches, width):
                if multi:  # rank 0's results are the record, on every rank
                    results = distributed.broadcast(results)
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} samples")
                rows = [{"sample_id": s.id, **({"key": key} if key else {}), **r} for s, r in zip(batch, results)]
                self.record.append_samples(rows)  # one fsync per batch
                for s, row in zip(batch, rows):
                    self.done[did(s)] = row
                next(bar, None)
            for _ in bar:  # let the progress bar see its end (final line / log)
                pass
            wall = time.perf_counter() - t0
            self.maps[key or "-"] = {
                "samples": len(samples), "computed": len(todo), "batch_size": batch_size,
                "executor": self.executor.name if self.executor is not None else "in-process",
                "in_flight_batches": width if self.executor is None else self.executor.width,
                "wall_s": round(wall, 3), "samples_per_s": round(len(todo) / wall, 2) if wall > 0 else None,
                **({"workers_replaced": self.executor.replaced, "worker_model_load_s": round(self.executor.warm_s, 2)}
                   if self.executor is not None else {}),
            }
            self._save_meta()
        elif merged:
            self.maps[key or "-"] = {"samples": len(samples), "computed": 0, "merged": merged}
        missing = sum(1 for s in samples if did(s) not in self.done)
        if missing:
            from solstice.core.shard import ShardDone

            raise ShardDone(key or "-", missing)
        return [self.done[did(s)] for s in samples]

    def _feed_width(self, batch_size: int) -> int:
        """Batches in flight: 1 while any of the run's models is local (called from one thread at a
        time); when all are endpoints, enough to fill the largest connection pool."""
        pools = [int(getattr(m, "max_in_flight", 1) or 1) for m in self._models.values()]
        if not pools or min(pools) <= 1:
            return 1
        return math.ceil(max(pools) / max(1, batch_size)) + 1

    def _feed(self, fn, batches: list[list[Sample]], width: int):
        """(batch, results) in batch order, computing up to `width` batches at once."""
        if self.executor is not None:
            yield from self.executor.map_batches(fn, batches)
            return
        if width <= 1 or len(batches) <= 1:
            for b in batches:
                yield b, fn(b)
            return
        ready: dict[int, list[dict[str, Any]]] = {}
        running: dict[Future, int] = {}
        nxt = head = 0
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="ctx-map") as pool:
            try:
                while head < len(batches):
                    # keep `width` batches running, and at most 2*width finished ones waiting for the head
                    while nxt < len(batches) and len(running) < width and nxt - head < 2 * width:
                        running[pool.submit(fn, batches[nxt])] = nxt
                        nxt += 1
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for f in done:
                        ready[running.pop(f)] = f.result()
                    while head in ready:
                        yield batches[head], ready.pop(head)
                        head += 1
            finally:
                for f in running:
                    f.cancel()

    def stage(self, name: str, fn: Callable[[], T], *, roles: Sequence[str] | None = None) -> T:
        """Run `fn` once; its JSON-serialisable result is saved so a resumed run skips it."""
        self._declare("stage", name, roles)
        path = self.record.stages / f"{name}.json"
        if distributed.active():  # rank 0 decides and records; every rank runs `fn` (it may train)
            found, saved = distributed.broadcast(
                (True, json.loads(path.read_text())) if self.is_main and path.is_file() else (False, None))
            if found:
                return saved
        elif path.is_file():
            return json.loads(path.read_text())
        t0 = time.perf_counter()
        result = fn()
        if self.is_main:
            self.record.stages.mkdir(exist_ok=True)
            atomic_write_json(path, result)
        log.info("stage %s done in %.1fs", name, time.perf_counter() - t0)
        return distributed.broadcast(result) if distributed.active() else result

    def _declare(self, what: str, name: str, roles: Sequence[str] | None) -> None:
        deps = sorted(self.model_specs) if roles is None else sorted(set(roles))
        unknown = [r for r in deps if r not in self.model_specs]
        if unknown:
            raise KeyError(f"{what} '{name}' depends on unknown model role(s) {', '.join(unknown)}")
        if self.depends.setdefault(what, {}).get(name) != deps:
            self.depends[what][name] = deps
            self._save_meta()

    def track(self, items: Iterable[T], description: str = "", total: int | None = None):
        if not self.is_main:  # one progress bar per run, not per rank
            return items
        return track(items, description, total)

    # -- notes -------------------------------------------------------------------------------
    def warn(self, message: str) -> None:
        log.warning(message)
        if message not in self.warnings:
            self.warnings.append(message)
            self._save_meta()

    def add_plot(self, path: Path, caption: str) -> None:
        rel = Path(path).resolve().relative_to(self.out_dir.resolve()).as_posix()
        self.plots = [p for p in self.plots if p["path"] != rel]  # a resumed run redraws its plots
        self.plots.append({"path": rel, "caption": caption})
        self._save_meta()

    def _save_meta(self) -> None:
        if not self.record.run_json.is_file():
            return
        self.record.update(
            warnings=self.warnings,
            plots=self.plots,
            datasets=self.datasets,
            depends=self.depends,
            models={r: m.info() for r, m in self._models.items()}
            | {r: {"spec": s} for r, s in self.model_specs.items() if r not in self._models},
            **({"maps": self.maps} if self.maps else {}),
        )

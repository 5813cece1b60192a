"""RunContext: what a paper's runner receives besides its config.

    ctx.model(role)          the model for a role (loaded once, capabilities already checked)
    ctx.dataset(source)      the local path of a DataSource, recorded in run.json
    ctx.map(samples, fn)     run `fn` over batches of samples not yet recorded, record each result
                             (flushed), and return every record in sample order (resume-safe)
    ctx.stage(name, fn)      run a whole stage once; a resumed run reads its saved JSON result
    roles=(...)              on map/stage: the model roles its records depend on (directly or through
                             their inputs). `solstice rescore` keeps the records that depend on none
                             of the changed roles; undeclared records depend on every role.
    ctx.track(items, desc)   a progress bar
    ctx.warn(msg)            a warning that is logged and kept in run.json
    ctx.add_plot(path, caption) / ctx.artifact(name)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from solstice.core.progress import track
from solstice.core.records import RunRecord, atomic_write_json
from solstice.core.types import Sample
from solstice.data.sources import DataSource, dataset_info, resolve
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

    @property
    def out_dir(self) -> Path:
        return self.record.path

    @property
    def artifacts(self) -> Path:
        self.record.artifacts.mkdir(exist_ok=True)
        return self.record.artifacts

    def artifact(self, name: str) -> Path:
        p = self.artifacts / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    # -- models ------------------------------------------------------------------------------
    def model(self, role: str = "target") -> Model:
        if role not in self.model_specs:
            raise KeyError(f"no model role '{role}' (roles: {', '.join(self.model_specs)})")
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
    ) -> list[dict[str, Any]]:
        """Records for every sample, computing only those not yet recorded under `key`.

        `fn(batch)` returns one dict per sample (JSON-serialisable). Each is written to
        samples.jsonl with `sample_id` and `key` before the next batch starts, so a killed run
        loses at most one batch.
        """
        def did(s: Sample) -> str:
            return f"{key}/{s.id}" if key else s.id

        self._declare("map", key, roles)
        todo = [s for s in samples if did(s) not in self.done]
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        for batch in self.track(batches, description or f"{self.paper_id} {key}".strip(), total=len(batches)):
            results = fn(batch)
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} samples")
            for s, r in zip(batch, results):
                row = {"sample_id": s.id, **({"key": key} if key else {}), **r}
                self.record.append_sample(row)
                self.done[did(s)] = row
        return [self.done[did(s)] for s in samples]

    def stage(self, name: str, fn: Callable[[], T], *, roles: Sequence[str] | None = None) -> T:
        """Run `fn` once; its JSON-serialisable result is saved so a resumed run skips it."""
        self._declare("stage", name, roles)
        self.record.stages.mkdir(exist_ok=True)
        path = self.record.stages / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
        t0 = time.perf_counter()
        result = fn()
        atomic_write_json(path, result)
        log.info("stage %s done in %.1fs", name, time.perf_counter() - t0)
        return result

    def _declare(self, what: str, name: str, roles: Sequence[str] | None) -> None:
        deps = sorted(self.model_specs) if roles is None else sorted(set(roles))
        unknown = [r for r in deps if r not in self.model_specs]
        if unknown:
            raise KeyError(f"{what} '{name}' depends on unknown model role(s) {', '.join(unknown)}")
        if self.depends.setdefault(what, {}).get(name) != deps:
            self.depends[what][name] = deps
            self._save_meta()

    def track(self, items: Iterable[T], description: str = "", total: int | None = None):
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
        )

"""`solstice rescore RUN --model judge=...`: re-score a run's recorded outputs with other models.

A new run directory is made with the same paper, config, seed and limit, and the new model specs.
It receives the records of the old run that depend on none of the changed roles (ctx.map keys and
ctx.stage names declare their roles with `roles=`; an undeclared one depends on every role, so it
is recomputed), then the paper runs as a resume of that directory: only the records that depend on
a changed role are computed again, and metrics and claims are recomputed from all of them.

The old run is never touched. The new run.json says where its reused records came from
(`lineage.rescored_from`: run id, path, changed roles, counts) and keeps the old run's environment
segments before its own "rescore" segment, so the report shows every code revision involved.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solstice.core.records import RunRecord, atomic_write_json, new_run_dir
from solstice.core.registry import get_paper
from solstice.errors import ConfigError, ResumeError

log = logging.getLogger("solstice")


def reusable(depends: dict[str, dict[str, list[str]]], what: str, name: str, all_roles: Sequence[str],
             changed: set[str]) -> bool:
    """Whether a map key's records (what="map") or a stage (what="stage") can be kept: it depends
    on none of the changed roles. Undeclared dependencies count as every role."""
    roles = depends.get(what, {}).get(name)
    deps = set(all_roles) if roles is None else set(roles)
    return not (deps & changed)


def prepare_rescore(run_dir: str | Path, models: Sequence[str], out: str | Path | None = None) -> tuple[Path, set[str]]:
    """Make the new run directory with the reusable records of `run_dir`; returns it and the
    changed roles."""
    from solstice.core.runner import resolve_models

    src = RunRecord(Path(run_dir))
    old = src.read()
    if old.get("status") != "completed":
        raise ResumeError(f"'{run_dir}' is not a completed run (status {old.get('status')}); finish it with --resume first")
    pid = old.get("paper", {}).get("id", "")
    paper = get_paper(pid)
    if not models:
        raise ConfigError("rescore needs at least one --model role=spec (the role to re-score with)")
    for m in models:
        role, sep, _ = m.partition("=")
        if not sep or role not in paper.roles:
            raise ConfigError(f"rescore takes --model role=spec with a role of {pid}: {', '.join(paper.roles)}")
    old_specs = dict(old["model_specs"])
    new_specs = resolve_models(paper, old_specs, models)
    changed = {r for r in new_specs if new_specs[r] != old_specs.get(r)}
    depends = old.get("depends") or {}
    roles = sorted(new_specs)

    root = Path(out) if out is not None else src.path.parent.parent
    dest = RunRecord(new_run_dir(root, pid, old.get("scale", "rescore"), old["config_hash"]))
    kept = dropped = 0
    for row in src.load_samples():
        if reusable(depends, "map", row.get("key", ""), roles, changed):
            dest.append_sample(row)
            kept += 1
        else:
            dropped += 1
    dest.close()
    stages_kept = []
    if src.stages.is_dir():
        for f in sorted(src.stages.glob("*.json")):
            if reusable(depends, "stage", f.stem, roles, changed):
                dest.stages.mkdir(exist_ok=True)
                shutil.copy2(f, dest.stages / f.name)
                stages_kept.append(f.stem)
    if src.artifacts.is_dir():  # files written by kept stages; plots are redrawn by the run
        shutil.copytree(src.artifacts, dest.artifacts, dirs_exist_ok=True)
    meta: dict[str, Any] = {
        k: old[k] for k in ("paper", "solstice_version", "scale", "config", "config_hash", "datasets", "seed",
                            "limit", "argv", "env", "environments", "warnings", "plots") if k in old
    }
    meta.update(
        run_id=None,  # a new run gets its own id
        model_specs=new_specs,
        models={r: {"spec": s} for r, s in new_specs.items()},
        depends=depends,
        status="running",
        timings={},
        lineage={"rescored_from": {
            "run_id": old.get("run_id"), "path": str(src.path), "changed_roles": sorted(changed),
            "old_models": {r: old_specs.get(r, "") for r in sorted(changed)},  # "": a role the run predates
            "records_kept": kept, "records_recomputed": dropped, "stages_kept": stages_kept,
        }},
    )
    atomic_write_json(dest.run_json, {"schema_version": old.get("schema_version", 1), **meta})
    log.info("rescore: %d records kept, %d to recompute (changed: %s) in %s", kept, dropped,
             ", ".join(sorted(changed)) or "none", dest.path)
    return dest.path, changed


def rescore(run_dir: str | Path, models: Sequence[str], out: str | Path | None = None,
            argv: Sequence[str] | None = None, allow_code_exec: bool = False, cache: str | Path | None = None):
    """Re-score `run_dir` with `models` into a new run directory; returns the RunResult."""
    from solstice.core.runner import run_paper

    path, _ = prepare_rescore(run_dir, models, out)
    pid = json.loads((path / "run.json").read_text())["paper"]["id"]
    return run_paper(pid, resume=path, argv=argv, allow_code_exec=allow_code_exec, segment="rescore", cache=cache)

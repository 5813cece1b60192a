"""Running a paper: resolve config and models, check everything cheap first, then execute the
paper's runner inside a run directory, and finish with metrics and claim assessments."""

from __future__ import annotations

import logging
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solstice import __version__
from solstice.core import distributed
from solstice.core.config import build_config, config_hash
from solstice.core.context import RunContext
from solstice.core.paper import PaperSpec, evaluate_run
from solstice.core.records import (
    RunRecord,
    environment_segment,
    environments_of,
    new_run_dir,
    new_run_id,
)
from solstice.core.registry import get_paper
from solstice.core.types import MetricValue
from solstice.data.sources import resolve
from solstice.errors import (
    CapabilityError,
    ConfigError,
    DataUnavailable,
    ResumeError,
    SolsticeError,
)
from solstice.models.loader import parse_spec, preflight, static_capabilities

log = logging.getLogger("solstice")


@dataclass
class RunResult:
    path: Path
    status: str
    metrics: dict[str, MetricValue]
    error: str = ""
    exit_code: int = 0
    needs_data: bool = False  # failed only because a dataset is not available here


def resolve_models(paper: PaperSpec, scale_models: dict[str, str], given: Sequence[str], cfg: Any = None) -> dict[str, str]:
    """Role -> spec: paper defaults < scale preset < `--model role=spec` (a bare spec sets every role)."""
    models = {r: role.default for r, role in paper.roles.items()}
    models.update({r: s for r, s in scale_models.items() if r in models})
    for item in given:
        role, sep, spec = item.partition("=")
        if sep and role in models:
            models[role] = spec
        elif sep and ":" not in role and role != "default":
            raise ConfigError(f"paper '{paper.id}' has no model role '{role}'; roles: {', '.join(models)}")
        else:
            for r in models:
                if paper.roles[r].default:  # an optional role is set by name only
                    models[r] = item
    for role, spec in models.items():
        if not spec:  # an optional role left unset
            continue
        caps = static_capabilities(parse_spec(spec))
        r = paper.roles[role]
        needs = r.requires | (r.requires_for(cfg) if r.requires_for is not None and cfg is not None else frozenset())
        missing = needs - caps
        if missing:
            raise CapabilityError(
                f"model '{spec}' for role '{role}' cannot do {', '.join(sorted(missing))}, which "
                f"{paper.id} needs" + ("; use an hf: model" if "whitebox" in missing else "")
                + ("; use a vision-language model (or the paper's text-only ablation, where it offers one)"
                   if "vision" in missing else "")
            )
    return models


def prepare(
    paper_id: str, *, scale: str = "smoke", config_files: Sequence[str] = (), sets: Sequence[str] = (),
    models: Sequence[str] = (), limit: int | None = None, seed: int | None = None,
    resume: str | Path | None = None,
) -> tuple[PaperSpec, Any, dict[str, str], int | None, int, dict[str, Any] | None]:
    paper = get_paper(paper_id)
    if scale not in paper.scales:
        raise ConfigError(f"paper '{paper_id}' has no scale '{scale}'; scales: {', '.join(paper.scales)}")
    repro = paper.scales[scale]
    old = None
    if resume is not None:
        old = RunRecord(Path(resume)).read()
        if old.get("paper", {}).get("id") != paper_id:
            raise ResumeError(f"run '{resume}' is a run of '{old.get('paper', {}).get('id')}', not '{paper_id}'")
        cfg = build_config(paper.config_cls, base=old["config"], files=config_files, sets=sets, where=paper_id)
        if config_hash(cfg) != old["config_hash"]:
            raise ResumeError(f"refusing to resume '{resume}': the config changed (hash {config_hash(cfg)} != {old['config_hash']})")
        model_specs = dict(old["model_specs"])
        if models and resolve_models(paper, model_specs, models, cfg) != model_specs:
            raise ResumeError(f"refusing to resume '{resume}': the models changed")
        return paper, cfg, model_specs, old.get("limit"), int(old.get("seed", 0)), old
    cfg = build_config(paper.config_cls, layers=[dict(repro.overrides)], files=config_files, sets=sets, where=paper_id)
    model_specs = resolve_models(paper, dict(repro.models), models, cfg)
    eff_limit = limit if limit is not None else repro.limit
    if eff_limit is not None and eff_limit < 1:
        raise ConfigError("--limit must be a positive number")
    return paper, cfg, model_specs, eff_limit, 0 if seed is None else seed, None


def run_paper(
    paper_id: str, *, scale: str = "smoke", config_files: Sequence[str] = (), sets: Sequence[str] = (),
    models: Sequence[str] = (), limit: int | None = None, seed: int | None = None,
    out: str | Path = "runs", resume: str | Path | None = None, argv: Sequence[str] | None = None,
    allow_code_exec: bool = False, segment: str = "", cache: str | Path | None = None,
    shard: str | None = None, executor: str = "local",
    prior: dict[str, dict[str, Any]] | None = None, extra_meta: dict[str, Any] | None = None,
    dist_backend: str = "auto",
) -> RunResult:
    """Run a paper (or continue the run in `resume`). `segment` names the kind of process in the
    record's environment segments (default: "start", or "resume" with `resume`; "shard" and
    "merge" for `--shard` and `solstice merge`). Under torchrun / accelerate (WORLD_SIZE > 1) every
    rank calls this; torch.distributed is started with `dist_backend` (auto: nccl on GPUs, gloo on
    CPUs) and rank 0 alone writes the run directory (see solstice.core.distributed)."""
    started = distributed.init(dist_backend)
    if not distributed.is_main():  # one log per run: the other ranks report warnings and errors only
        logging.getLogger("solstice").setLevel(logging.WARNING)
    try:
        return _run_paper(
            paper_id, scale=scale, config_files=config_files, sets=sets, models=models, limit=limit, seed=seed,
            out=out, resume=resume, argv=argv, allow_code_exec=allow_code_exec, segment=segment, cache=cache,
            shard=shard, executor=executor, prior=prior, extra_meta=extra_meta,
        )
    finally:
        if started:
            distributed.shutdown()


def _run_paper(
    paper_id: str, *, scale: str, config_files: Sequence[str], sets: Sequence[str], models: Sequence[str],
    limit: int | None, seed: int | None, out: str | Path, resume: str | Path | None, argv: Sequence[str] | None,
    allow_code_exec: bool, segment: str, cache: str | Path | None, shard: str | None, executor: str,
    prior: dict[str, dict[str, Any]] | None, extra_meta: dict[str, Any] | None,
) -> RunResult:
    from solstice.core.shard import SHARD_DONE, ShardDone, parse_shard

    paper, cfg, model_specs, eff_limit, eff_seed, old = prepare(
        paper_id, scale=scale, config_files=config_files, sets=sets, models=models, limit=limit,
        seed=seed, resume=resume,
    )
    shard_ix = parse_shard(shard) if shard else None
    if old is not None and old.get("shard"):  # a resumed shard stays that shard
        shard_ix = (int(old["shard"]["index"]), int(old["shard"]["count"]))
        if shard and parse_shard(shard) != shard_ix:
            raise ResumeError(f"refusing to resume '{resume}': it is shard {shard_ix[0]}/{shard_ix[1]}, not {shard}")
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor must be local or ray, not '{executor}'")
    if executor == "ray" and cache:
        raise ConfigError("--cache cannot be combined with --executor ray (the workers would not share the cache)")
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            from solstice.errors import MissingDependencyError

            raise MissingDependencyError("ray", "ray", "--executor ray")
    world = distributed.world_size()
    if world > 1 and (executor == "ray" or cache or prior is not None):
        what = "--executor ray" if executor == "ray" else "--cache" if cache else "merge"
        raise ConfigError(f"{what} cannot be combined with a {world}-process torchrun / accelerate launch; "
                          "launch one process, or drop that option")
    if paper.code_exec and not allow_code_exec:
        raise ConfigError(f"{paper_id} runs model-written code; pass --allow-code-exec to allow it (it runs sandboxed)")
    # cheap checks before any directory is created
    for spec in dict.fromkeys(model_specs.values()):
        if spec:  # an unset optional role has no model
            preflight(spec)
    for src in paper.datasets(cfg) if paper.datasets else []:
        resolve(src)

    h = config_hash(cfg)
    main = distributed.is_main()
    if old is not None:  # a resumed run keeps its scale and the command that started it
        scale = old.get("scale", scale)
        record = RunRecord(Path(resume), readonly=not main)  # type: ignore[arg-type]
        done_rows = record.load_samples(repair=True)
        meta = old
    else:
        # rank 0 creates the directory; the other ranks open it read-only once run.json is there
        path = distributed.broadcast(new_run_dir(Path(out), paper_id, scale, h) if main else None)
        record = RunRecord(path, readonly=not main)
        done_rows = []
        meta = {}
    ctx = RunContext(
        record=record, paper_id=paper_id, scale=scale, seed=eff_seed, limit=eff_limit,
        model_specs=model_specs,
        done={(f"{r['key']}/{r['sample_id']}" if r.get("key") else r["sample_id"]): r for r in done_rows},
        warnings=list(meta.get("warnings", [])), plots=list(meta.get("plots", [])),
        datasets=list(meta.get("datasets", [])),
        depends={"map": {}, "stage": {}, **meta.get("depends", {})},
        uncached_roles=frozenset(r for r, role in paper.roles.items() if "whitebox" in role.requires),
        cache=None if not cache else (record.path / "cache" if str(cache) == "run" else Path(cache).expanduser().resolve()),
        prior=dict(prior or {}), shard=shard_ix,
    )
    started = time.time()
    this_argv = list(argv) if argv is not None else list(sys.argv)
    kind = segment or ("merge" if prior is not None else "shard" if shard_ix else "resume" if old is not None else "start")
    seg = environment_segment(kind, this_argv, config_hash=h, samples_before=len(done_rows),
                              **({"shard": f"{shard_ix[0]}/{shard_ix[1]}"} if shard_ix else {}))
    environments = environments_of(meta) + [seg]
    record.write({
        "run_id": meta.get("run_id") or new_run_id(),
        "paper": {"id": paper.id, "version": paper.version, "title": paper.title, "arxiv": paper.arxiv},
        "solstice_version": __version__,
        "scale": scale,
        "config": cfg.model_dump(mode="json"),
        "config_hash": h,
        "model_specs": model_specs,
        "models": meta.get("models", {r: {"spec": s} for r, s in model_specs.items()}),
        "datasets": ctx.datasets,
        "depends": ctx.depends,
        "cache": None if ctx.cache is None else str(ctx.cache),
        "seed": eff_seed,
        "limit": eff_limit,
        "status": "running",
        "error": None,
        "started_at": meta.get("started_at", started),
        "resumed": old is not None,
        "resumed_from_samples": len(done_rows),
        "timings": meta.get("timings", {}),
        "warnings": ctx.warnings,
        "plots": ctx.plots,
        # the first process's environment (kept for readers of schema 1); every process is in
        # `environments`, appended to on resume, never overwritten
        "env": meta.get("env") or {k: v for k, v in seg.items() if k not in ("kind", "started_at", "argv")},
        "environments": environments,
        "argv": (old or {}).get("argv") or this_argv,
        **({"resume_argv": this_argv} if old is not None and prior is None else {}),
        # where the run's reused records come from (rescore, merge): kept across resumes
        **({"lineage": meta["lineage"]} if meta.get("lineage") else {}),
        **({"shard": {"index": shard_ix[0], "count": shard_ix[1]}} if shard_ix else {}),
        **({"distributed": _dist_info()} if world > 1 else {}),
        **(extra_meta or {}),
    })
    if world > 1:
        distributed.barrier()
        if not record.run_json.is_file():
            raise ConfigError(f"rank {distributed.rank()} cannot see the run directory '{record.path}' that rank 0 "
                              "created; put --out on a filesystem every node shares")
    log.info("run directory: %s", record.path)
    status, error, code = "completed", "", 0
    needs_data = False
    metrics: dict[str, MetricValue] = {}
    t0 = time.perf_counter()
    prev_term = signal.getsignal(signal.SIGTERM)

    def _term(signum, frame):  # a polite kill becomes an interrupt, so the record says so
        raise KeyboardInterrupt

    try:
        if prev_term in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _term)
    except ValueError:  # not the main thread
        prev_term = None
    try:
        if executor == "ray":
            from solstice.core.ray_executor import RayExecutor

            ctx.executor = RayExecutor.start(ctx)
        metrics = paper.runner()(cfg, ctx)
        if not isinstance(metrics, dict) or not all(isinstance(v, MetricValue) for v in metrics.values()):
            raise TypeError(f"{paper.run} must return dict[str, MetricValue]")
    except ShardDone as done:
        status = SHARD_DONE
        log.info("shard %d/%d done (%s); join the shards with: solstice merge DIR...", shard_ix[0], shard_ix[1], done)
    except KeyboardInterrupt:
        status, error, code = "interrupted", "interrupted; continue with --resume " + str(record.path), 130
    except SolsticeError as exc:
        status, error, code = "failed", str(exc), exc.exit_code
        needs_data = isinstance(exc, DataUnavailable)
    except Exception as exc:  # noqa: BLE001 - recorded, reported in one line, traceback kept on disk
        if main:
            (record.path / "error.log").write_text(traceback.format_exc())
        status, error, code = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0], 1
    finally:
        if ctx.executor is not None:
            ctx.executor.close()
        record.close()
        if prev_term in (signal.SIG_DFL, None):
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            except ValueError:
                pass
    elapsed = time.perf_counter() - t0
    timings = dict(meta.get("timings", {}))
    timings["wall_s"] = round(float(timings.get("wall_s", 0.0)) + elapsed, 2)
    timings.setdefault("attempts", [])
    timings["attempts"] = list(timings["attempts"]) + [{"started": started, "wall_s": round(elapsed, 2), "status": status}]
    if ctx.prior:
        ctx.warn(f"{len(ctx.prior)} recorded shard samples were not asked for by the paper (not merged)")
    if prior is not None:
        fields_merge = dict((extra_meta or {}).get("merge", {}))
        fields_merge["computed_here"] = sum(m.get("computed", 0) for m in ctx.maps.values())
        extra_meta = dict(extra_meta or {}, merge=fields_merge)
    ctx._save_meta()  # the models' final throughput counters
    fields: dict[str, Any] = {"status": status, "error": error or None, "timings": timings, "finished_at": time.time()}
    if status == "completed":
        record.write_metrics(metrics)
        fields["claims"] = [a.to_json() for a in evaluate_run(paper.claims, metrics)]
    if prior is not None:
        fields["merge"] = extra_meta["merge"]  # type: ignore[index]
    record.update(**fields)
    if status == "completed":
        record.seal()
    return RunResult(record.path, status, metrics, error, code, needs_data)


def _dist_info() -> dict[str, Any]:
    """How a multi-process run was launched (recorded in run.json "distributed")."""
    import os

    import torch.distributed as dist

    def num(name: str) -> int | None:
        v = os.environ.get(name)
        return int(v) if v and v.isdigit() else None

    # LOCAL_WORLD_SIZE and GROUP_WORLD_SIZE (nodes) are set by torchrun; None where a launcher does not
    return {"world_size": dist.get_world_size(), "backend": dist.get_backend(),
            "local_world_size": num("LOCAL_WORLD_SIZE"), "nodes": num("GROUP_WORLD_SIZE")}

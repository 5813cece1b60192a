"""Runner: every method (Rainbow = memory 0, Ruby = memory k) on every seed, each search resumable
from its own checkpoint, then seed-level aggregates (an interval over seeds only from 5 seeds on) and curves."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.errors import ConfigError
from solstice.metrics import mean_metric
from solstice.report.plots import pyplot, save_figure

from .config import Config
from .descriptors import BUILTIN_SEEDS, load_descriptors, read_seed_file, seed_source
from .search import RedTeamSearch, SearchModels, run_lockstep

log = logging.getLogger("solstice.ruby_teaming")

# Per-seed final metrics reported per method: (key in the search's metrics, reported name).
REPORTED = [
    ("asr_{ev}", "asr"), ("asr_matched_{ev}", "asr_matched"), ("coverage_{ev}", "coverage"),
    ("sei_risk_{ev}", "sei_risk"), ("sdi_risk_{ev}", "sdi_risk"),
    ("sei_style_{ev}", "sei_style"), ("sdi_style_{ev}", "sdi_style"),
    ("sei_joint_{ev}", "sei_joint"), ("sdi_joint_{ev}", "sdi_joint"),
    ("sdi_plugin_risk_{ev}", "sdi_plugin_risk"),
    ("qd_score", "qd_score"), ("filled_frac", "filled"), ("self_bleu", "self_bleu"),
]
LOWER_IS_BETTER = {"self_bleu", "embedding_similarity"}


def seed_prompts(cfg: Config, ctx) -> list[str]:
    if cfg.seed_prompts == "builtin":
        return list(BUILTIN_SEEDS)
    src = seed_source(cfg.seed_prompts)
    if src is not None:
        return read_seed_file(ctx.dataset(src))
    p = Path(cfg.seed_prompts).expanduser()
    if not p.is_file():
        raise ConfigError(f"seed_prompts '{cfg.seed_prompts}' is neither builtin, a known set nor an existing file")
    return read_seed_file(p)


def build_models(cfg: Config, ctx) -> SearchModels:
    needs_critic = cfg.critic == "llm" and any(cfg.memory_of(m) > 0 for m in cfg.methods)
    needs_eval = "llm" in cfg.evaluators or cfg.objective == "harmful"
    return SearchModels(
        mutator=ctx.model("mutator"), target=ctx.model("target"),
        judge=ctx.model("judge") if cfg.judge == "llm" or cfg.category_filter else None,
        critic=ctx.model("critic") if needs_critic else None,
        evaluator=ctx.model("evaluator") if needs_eval else None,
    )


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    desc = load_descriptors(cfg.descriptors, cfg.n_risks, cfg.n_styles)
    seeds = seed_prompts(cfg, ctx)
    primary = "rule" if "rule" in cfg.evaluators else cfg.evaluators[0]
    jobs = [(method, s + 1009 * ctx.seed) for method in cfg.methods for s in cfg.seeds]
    todo = [j for j in jobs if not (ctx.record.stages / f"search-{j[0]}-seed{j[1]}.json").is_file()]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    models: SearchModels | None = None
    if cfg.workers > 1 and len(todo) > 1:
        done = _parallel(cfg, ctx, todo, seeds)
    else:
        models = build_models(cfg, ctx)
        if cfg.lockstep and len(todo) > 1:
            done = _lockstep(cfg, ctx, desc, seeds, models, todo)
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for method, seed in jobs:
        def go(method=method, seed=seed) -> dict[str, Any]:
            if (method, seed) in done:
                return done[(method, seed)]
            return search_job(cfg, desc, seeds, models or build_models(cfg, ctx), method, seed,
                              _workdir(ctx, method, seed))

        results.setdefault(method, {})[seed] = ctx.stage(f"search-{method}-seed{seed}", go)
    _write_curves(ctx, results, primary)
    return _aggregate(cfg, results, primary)


def _lockstep(cfg: Config, ctx, desc, seeds: list[str], models: SearchModels,
              todo: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Every pending search side by side, their same-step generations batched together."""
    searches = [RedTeamSearch(cfg, desc, seeds, models, memory_k=cfg.memory_of(m), seed=s, workdir=_workdir(ctx, m, s))
                for m, s in todo]

    def progress(i: int, total: int) -> None:
        if i % max(1, total // 10) == 0 or i == total:
            log.info("lockstep: iteration %d/%d of %d searches", i, total, len(searches))

    key = "-".join(f"{m}.{s}" for m, s in todo)
    ckpt = ctx.artifact(f"lockstep/{__import__('hashlib').sha256(key.encode()).hexdigest()[:10]}.json")
    finals = run_lockstep(searches, cfg.iterations, checkpoint=ckpt, progress=progress)
    out = {}
    for (m, s), search, final in zip(todo, searches, finals):
        if cfg.embedding_diversity:
            from solstice.metrics.diversity import embedding_similarity

            final["embedding_similarity"] = embedding_similarity([e.prompt for e in search.archive.elites()])
        out[(m, s)] = {"final": final, "curve": search.curve, "stats": search.stats, "canary": search.canary,
                       "memory_entries": search.memory.n_added}
    return out


def _workdir(ctx, method: str, seed: int) -> Path:
    return ctx.artifact(f"{method}/seed{seed}/x").parent


def search_job(cfg: Config, desc, seeds: list[str], models: SearchModels, method: str, seed: int,
               work: Path) -> dict[str, Any]:
    """One search (resumed from its checkpoint in `work`), returning its final metrics and curve."""
    search = RedTeamSearch(cfg, desc, seeds, models, memory_k=cfg.memory_of(method), seed=seed, workdir=work)

    def progress(i: int, total: int) -> None:
        if i % max(1, total // 10) == 0 or i == total:
            log.info("%s seed %d: iteration %d/%d, filled %d/%d", method, seed, i, total,
                     search.archive.filled(), search.archive.n_cells)

    final = search.run(cfg.iterations, progress=progress)
    if cfg.embedding_diversity:
        from solstice.metrics.diversity import embedding_similarity

        final["embedding_similarity"] = embedding_similarity([e.prompt for e in search.archive.elites()])
    return {"final": final, "curve": search.curve, "stats": search.stats, "canary": search.canary,
            "memory_entries": search.memory.n_added}


def _worker(cfg_json: dict[str, Any], specs: dict[str, str], method: str, seed: int, work: str,
            seeds: list[str]) -> dict[str, Any]:
    """A search in a child process: it loads its own models from the run's model specs."""
    from solstice.models.loader import load_model

    cfg = Config.model_validate(cfg_json)
    desc = load_descriptors(cfg.descriptors, cfg.n_risks, cfg.n_styles)

    class _Ctx:
        def model(self, role: str):
            return load_model(specs[role])

    return search_job(cfg, desc, seeds, build_models(cfg, _Ctx()), method, seed, Path(work))


def _parallel(cfg: Config, ctx, todo: list[tuple[str, int]], seeds: list[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """Run searches in `cfg.workers` spawned processes; each finished one is recorded as its stage
    at once, and an interrupt stops the children (their checkpoints let a resumed run continue)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out: dict[tuple[str, int], dict[str, Any]] = {}
    pool = ProcessPoolExecutor(max_workers=min(cfg.workers, len(todo)), mp_context=mp.get_context("spawn"))
    try:
        futs = {pool.submit(_worker, cfg.model_dump(mode="json"), dict(ctx.model_specs), m, s,
                            str(_workdir(ctx, m, s)), seeds): (m, s) for m, s in todo}
        for fut in as_completed(futs):
            job = futs[fut]
            out[job] = ctx.stage(f"search-{job[0]}-seed{job[1]}", fut.result)
            log.info("search %s seed %d done", *job)
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):  # no public API stops running workers
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return out


def _over_seeds(values: dict[int, float], hib: bool | None, note: str) -> dict[str, MetricValue]:
    """The mean over seeds; a bootstrap CI over seeds only from 5 seeds on. With fewer, no interval:
    each seed is reported on its own ("" -> the mean, "_seed<s>" -> one seed)."""
    from dataclasses import replace

    v = [x for x in values.values() if not math.isnan(x)]
    if len(v) >= 5:
        return {"": replace(mean_metric(v, higher_is_better=hib, note=note + "; bootstrap CI over seeds"), unit="seeds")}
    out = {"": MetricValue(float(np.mean(v)) if v else math.nan, len(v), None, hib,
                           note + f"; {len(v)} seed(s): no interval over seeds, each seed shown")}
    for s, x in sorted(values.items()):
        out[f"_seed{s}"] = MetricValue(x, 1, None, hib, f"seed {s}")
    return out


def _aggregate(cfg: Config, results: dict[str, dict[int, dict[str, Any]]], primary: str) -> dict[str, MetricValue]:
    out: dict[str, MetricValue] = {}
    names = list(REPORTED)
    if cfg.embedding_diversity:
        names.append(("embedding_similarity", "embedding_similarity"))
    per_method: dict[str, dict[str, dict[int, float]]] = {}
    for method, by_seed in results.items():
        vals: dict[str, dict[int, float]] = {}
        for key, name in names:
            evs = [primary] + [e for e in cfg.evaluators if e != primary]
            for ev in evs if "{ev}" in key else [primary]:
                label = name if ev == primary else f"{name}_{ev}"
                vals[label] = {s: float(r["final"].get(key.format(ev=ev), math.nan)) for s, r in by_seed.items()}
        for label, v in vals.items():
            hib = not any(label.startswith(x) for x in LOWER_IS_BETTER)
            for sfx, mv in _over_seeds(v, hib, f"mean over {len(v)} seeds").items():
                out[f"{method}_{label}{sfx}"] = mv
        calls = [sum(st["calls"] for st in r["stats"].values()) for r in by_seed.values()]
        out[f"{method}_llm_calls"] = mean_metric(calls, higher_is_better=None, note="LLM calls per search")
        per_method[method] = vals
    if "rainbow" in per_method:
        for method in per_method:
            if method == "rainbow":
                continue
            for label in ("asr", "sei_risk", "sdi_risk", "sei_style", "sdi_style", "coverage"):
                a, b = per_method[method].get(label, {}), per_method["rainbow"].get(label, {})
                common = sorted(set(a) & set(b))
                if common:
                    for sfx, mv in _over_seeds({s: a[s] - b[s] for s in common}, True, "paired by seed").items():
                        out[f"{method}_minus_rainbow_{label}{sfx}"] = mv
    return out


def _write_curves(ctx, results: dict[str, dict[int, dict[str, Any]]], primary: str) -> None:
    curves = {m: {str(s): r["curve"] for s, r in by_seed.items()} for m, by_seed in results.items()}
    ctx.artifact("curves.json").write_text(json.dumps(curves, indent=1))
    plt = pyplot()

    keys = [(f"asr_{primary}", "ASR"), (f"sei_risk_{primary}", "SEI (risk)"), (f"sdi_risk_{primary}", "SDI (risk)")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3))
    for ax, (key, title) in zip(axes, keys):
        for method, by_seed in results.items():
            its = sorted({c["iteration"] for r in by_seed.values() for c in r["curve"]})
            mat = np.array([[next((c.get(key, np.nan) for c in r["curve"] if c["iteration"] == i), np.nan)
                             for i in its] for r in by_seed.values()], dtype=float)
            mu, sd = np.nanmean(mat, axis=0), np.nanstd(mat, axis=0)
            ax.plot(its, mu, label=method, marker="o" if len(its) == 1 else None)
            if mat.shape[0] > 1:  # a spread over one seed is no spread
                ax.fill_between(its, mu - sd, mu + sd, alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("iteration")
    axes[0].legend()
    path = save_figure(fig, ctx.artifact("curves.png"), dpi=110)
    n_seeds = max(len(by_seed) for by_seed in results.values())
    spread = "mean ± sd over seeds" if n_seeds > 1 else "one seed"
    ctx.add_plot(path, f"archive ASR / SEI / SDI ({primary} evaluator) vs iteration; {spread}")

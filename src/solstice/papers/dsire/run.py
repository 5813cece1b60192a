"""DSiRe runs. Two modes:

- benchmark (default): build LoRA-WiSE-style text LoRAs on the target model (resumable, one
  `ctx.map` record per LoRA), read their PEFT checkpoints back through the spectral reader and
  evaluate DSiRe and its baselines with concept-disjoint splits, per size range and checkpoint.
- reference (`--set reference=DIR` [+ `--set adapters=DIR`]): a user's labelled adapters; alone
  they are evaluated with concept splits, with `adapters` the reference set is fitted whole and
  the sizes of the user's adapters are predicted.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from solstice.core.types import MetricValue, Sample
from solstice.data import DataSource
from solstice.errors import ConfigError, DataError
from solstice.papers.dsire.config import Config

log = logging.getLogger(__name__)


def wikitext_source() -> DataSource:
    from solstice.data.catalogue import WIKITEXT103_TEST

    return WIKITEXT103_TEST


def datasets(cfg: Config) -> list[DataSource]:
    return [] if cfg.reference else [wikitext_source()]


# -- labelled adapter folders -----------------------------------------------------------------
def find_adapters(root: Path) -> list[Path]:
    """Every adapter under `root`: folders with adapter_model.safetensors, else single files."""
    if not root.is_dir():
        raise DataError(f"adapter folder '{root}' does not exist")
    dirs = sorted({p.parent for p in root.rglob("adapter_model.safetensors")})
    files = sorted(p for p in root.rglob("*.safetensors") if p.name != "adapter_model.safetensors")
    found = dirs + [f for f in files if not any(d in f.parents for d in dirs)]
    if not found:
        raise DataError(f"no adapters (safetensors files) under '{root}'")
    return found


def read_sizes(root: Path) -> list[tuple[Path, float, str]]:
    """(adapter path, size, concept) from root/sizes.json ({path: size} or {path: {size, concept}})
    or root/sizes.csv (header path,size[,concept]); the concept defaults to the first path part."""
    rows: list[tuple[str, Any, Any]] = []
    if (root / "sizes.json").is_file():
        for k, v in json.loads((root / "sizes.json").read_text()).items():
            rows.append((k, v["size"], v.get("concept")) if isinstance(v, dict) else (k, v, None))
    elif (root / "sizes.csv").is_file():
        with open(root / "sizes.csv", newline="") as f:
            for r in csv.DictReader(f):
                if "path" not in r or "size" not in r:
                    raise DataError(f"'{root / 'sizes.csv'}' needs the columns path,size[,concept]")
                rows.append((r["path"], r["size"], r.get("concept")))
    else:
        raise DataError(f"'{root}' has no sizes.json or sizes.csv giving each adapter's dataset size")
    out = []
    for rel, size, concept in rows:
        p = root / rel
        if not p.exists():
            raise DataError(f"sizes file names '{rel}', which is not under '{root}'")
        try:
            s = float(size)
        except (TypeError, ValueError):
            raise DataError(f"sizes file: '{rel}' has size '{size}', not a number") from None
        if not s > 0:
            raise DataError(f"sizes file: '{rel}' has size {s}; sizes must be positive")
        out.append((p, s, str(concept) if concept else Path(rel).parts[0]))
    if len(out) < 2:
        raise DataError(f"'{root}' labels {len(out)} adapters; at least two are needed")
    return out


def features_of(paths: list[Path], cfg: Config) -> tuple[list[dict], list[dict], list[float]]:
    """Spectral voters, norm voters and the total ||dW|| per adapter (one layer set for all)."""
    from solstice.training.lora_spectra import (
        check_same_layers,
        delta_norm,
        norm_features,
        read_adapter,
        spectral_features,
    )

    ads = [read_adapter(p) for p in paths]
    check_same_layers(ads)
    feats = [spectral_features(a, include_scaling=cfg.include_scaling, ba_feature=cfg.ba_feature) for a in ads]
    norms = [norm_features(a, include_scaling=cfg.include_scaling) for a in ads]
    totals = [delta_norm(a, include_scaling=cfg.include_scaling) for a in ads]
    return feats, norms, totals


# -- evaluation of one labelled set ---------------------------------------------------------------
def evaluate_set(feats: list[dict], norms: list[dict], totals: list[float], sizes: list[float],
                 concepts: list[str], cfg: Config, n_train: int | None = None) -> dict[str, Any]:
    from solstice.papers.dsire.evaluate import evaluate_splits, leave_in_accuracy

    n_concepts = len(set(concepts))
    n_train = min(n_train or cfg.n_train_concepts, n_concepts - 1)
    splits = evaluate_splits(feats, norms, sizes, concepts, n_train=n_train, n_splits=cfg.n_splits,
                             seed=cfg.split_seed, normalise=cfg.normalise, ties=cfg.ties)
    means = {s: float(np.mean([t for t, n in zip(totals, sizes) if n == s])) for s in sorted(set(sizes))}
    return {"splits": splits, "leave_in_acc": leave_in_accuracy(feats, sizes, cfg.normalise, cfg.ties),
            "n_models": len(sizes), "n_concepts": n_concepts, "n_train_concepts": n_train,
            "sizes": list(sizes), "totals": list(totals), "mean_norm_by_size": means}


def set_metrics(res: dict[str, Any], suffix: str) -> dict[str, MetricValue]:
    from solstice.metrics.correlation import correlation_metric
    from solstice.papers.dsire.evaluate import split_metrics

    out = split_metrics(res["splits"], suffix)
    out[f"leave_in_acc_{suffix}"] = MetricValue(res["leave_in_acc"], res["n_models"], None, True,
                                                "test set = training set (harness check)")
    out[f"norm_size_spearman_{suffix}"] = correlation_metric(
        res["sizes"], res["totals"], "spearman", higher_is_better=False,
        note="Spearman rho of ||dW|| (all layers) and dataset size, pooled over concepts; CI resamples models")
    return out


def synthetic_check(cfg: Config) -> dict[str, Any]:
    """DSiRe on planted-spectrum synthetic LoRAs (must be exact)."""
    from solstice.papers.dsire.evaluate import evaluate_splits
    from solstice.papers.dsire.synthetic import planted_adapters
    from solstice.training.lora_spectra import norm_features, spectral_features

    sizes = [1, 2, 3, 4, 5, 6]
    ads, labels, concepts = planted_adapters(sizes, max(3, cfg.synthetic_models), seed=cfg.split_seed)
    feats = [spectral_features(a) for a in ads]
    norms = [norm_features(a) for a in ads]
    n_c = len(set(concepts))
    sp = evaluate_splits(feats, norms, labels, concepts, n_train=max(1, n_c // 2), n_splits=3, seed=cfg.split_seed)
    return {"acc": float(np.mean([s["scores"]["dsire"]["acc"] for s in sp])),
            "mae": float(np.mean([s["scores"]["dsire"]["mae"] for s in sp]))}


# -- the benchmark ----------------------------------------------------------------------------------
def plan(cfg: Config, articles: list[tuple[str, str]], tok: Any) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Concepts per range and, per concept, how many chunks it must provide."""
    from solstice.papers.dsire.benchmark import select_concepts

    per_range: dict[str, list[str]] = {}
    need: dict[str, int] = {}
    for name, sizes in cfg.ranges.items():
        k = cfg.n_concepts if name == "low" or cfg.medium_concepts is None else cfg.medium_concepts
        chosen = select_concepts(articles, tok, k, cfg.chunk_tokens, max(sizes))
        per_range[name] = [c for c, _ in chosen]
        for c in per_range[name]:
            need[c] = max(need.get(c, 0), max(sizes))
    return per_range, need


def run_benchmark(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    from solstice.papers.dsire.benchmark import LoraJob, LoraTrainer, concept_chunks, read_articles
    from solstice.training.params import decoder_layers, layer_indices

    hf = ctx.model("target")
    hf.require("whitebox", purpose="training LoRAs for the DSiRe benchmark")
    tok = hf.tokenizer
    articles = read_articles(ctx.dataset(wikitext_source()))
    texts = dict(articles)
    per_range, need = plan(cfg, articles, tok)
    jobs: dict[str, LoraJob] = {}
    for name, concepts in per_range.items():
        for c in concepts:
            for n in cfg.ranges[name]:
                for rep in range(cfg.replicates):
                    j = LoraJob(c, n, rep)
                    jobs.setdefault(j.id, j)
    n_layers = len(decoder_layers(hf.model))
    if cfg.top_layers >= n_layers:
        raise ConfigError(f"top_layers={cfg.top_layers} leaves no frozen layer in a {n_layers}-layer model")
    layers = layer_indices(hf.model, cfg.top_layers)
    trainer = LoraTrainer(hf.model, tok, r=cfg.lora_r, alpha=cfg.lora_alpha, layers=layers, targets=cfg.targets,
                          prefix_cache=cfg.prefix_cache)
    chunk_cache: dict[str, list[list[int]]] = {}

    def chunks(c: str) -> list[list[int]]:
        if c not in chunk_cache:
            seed = LoraJob(c, 0, 0).seed(cfg.data_seed)
            chunk_cache[c] = concept_chunks(tok, texts[c], cfg.chunk_tokens, need[c], seed)
        return chunk_cache[c]

    first = chunks(next(iter(need)))
    diff = ctx.stage("prefix_check", lambda: {"max_abs_logit_diff": trainer.verify(first[:2])}, roles=("target",))
    root = ctx.artifact("adapters")
    if ctx.is_main:  # under torchrun rank 0 writes the adapters, every rank reads them
        root.mkdir(exist_ok=True)

    def build(batch: list[Sample]) -> list[dict[str, Any]]:
        out = []
        for s in batch:
            j = jobs[s.id]
            rec = trainer.train(chunks(j.concept), j.n, j.seed(cfg.data_seed), steps=cfg.steps,
                                batch_size=cfg.batch_size, lr=cfg.lr, checkpoints=cfg.checkpoints, out=root / j.id)
            log.info("LoRA %s: loss %.3f -> %.3f in %.0fs", j.id, rec["loss_first"], rec["loss_last"], rec["seconds"])
            out.append({"concept": j.concept, "n": j.n, "rep": j.rep, **rec})
        return out

    samples = [Sample(id=k, input=k) for k in sorted(jobs, key=lambda k: (jobs[k].n, k))]
    records = ctx.map(samples, build, batch_size=1, key="lora", description="dsire: training LoRAs",
                      roles=("target",))
    missing = [r["sample_id"] for r in records if not (root / r["sample_id"] / f"step{cfg.steps}").is_dir()]
    if missing:
        raise DataError(f"the checkpoint of LoRA '{missing[0]}' is gone from {root}; delete its line from "
                        "samples.jsonl or start a new run")
    step = cfg.eval_step or cfg.steps
    sizes_file = {f"{k}/step{step}": {"size": jobs[k].n, "concept": jobs[k].concept} for k in jobs}
    if ctx.is_main:
        (root / "sizes.json").write_text(json.dumps(sizes_file, indent=1))

    def evaluate() -> dict[str, Any]:
        res: dict[str, Any] = {}
        for name, concepts in per_range.items():
            ids = [j.id for j in jobs.values() if j.concept in set(concepts) and j.n in cfg.ranges[name]]
            res[name] = {}
            for st in sorted(set(cfg.checkpoints)):
                feats, norms, totals = features_of([root / i / f"step{st}" for i in ids], cfg)
                n_train = cfg.n_train_concepts if name == "low" else (cfg.medium_train_concepts or cfg.n_train_concepts)
                r = evaluate_set(feats, norms, totals, [float(jobs[i].n) for i in ids],
                                 [jobs[i].concept for i in ids], cfg, n_train)
                res[name][str(st)] = r
        return res

    results = ctx.stage("evaluation", evaluate, roles=("target",))
    synth = ctx.stage("synthetic_check", lambda: synthetic_check(cfg), roles=())
    secs = [r["seconds"] for r in records]
    metrics: dict[str, MetricValue] = {
        "n_loras": MetricValue(float(len(records)), len(records), None, None, "LoRAs trained (all ranges)"),
        "seconds_per_lora": MetricValue(float(np.mean(secs)), len(secs), None, False,
                                        "training wall time per LoRA (shared CPU)"),
        "prefix_max_logit_diff": MetricValue(float(diff["max_abs_logit_diff"] or 0.0), 1, None, False,
                                             "cached-prefix vs full forward, max |logit difference|"),
        "synthetic_planted_acc": MetricValue(synth["acc"], 1, None, True, "planted-spectrum LoRAs (harness)"),
        "synthetic_planted_mae": MetricValue(synth["mae"], 1, None, False, "planted-spectrum LoRAs (harness)"),
    }
    for name in per_range:
        metrics.update(set_metrics(results[name][str(step)], name))
        for st, r in results[name].items():
            if int(st) != step:
                m = set_metrics(r, f"{name}_step{st}")
                metrics[f"dsire_mae_{name}_step{st}"] = m[f"dsire_mae_{name}_step{st}"]
    write_outputs(ctx, results, step)
    return metrics


def write_outputs(ctx: Any, results: dict[str, Any], step: int) -> None:
    if not ctx.is_main:  # under torchrun rank 0 writes the run's files
        return
    lines = ["| range | step | method | accuracy | MAE | MAPE % |", "|---|---|---|---|---|---|"]
    for name, per_step in results.items():
        for st, r in per_step.items():
            for m in r["splits"][0]["scores"]:
                v = {s: np.mean([sp["scores"][m][s] for sp in r["splits"]]) for s in ("acc", "mae", "mape")}
                lines.append(f"| {name} | {st} | {m} | {v['acc']:.3f} | {v['mae']:.3f} | {v['mape']:.1f} |")
    ctx.artifact("summary.md").write_text("\n".join(lines) + "\n")
    try:
        from solstice.report.plots import pyplot, save_figure
    except ImportError:
        return
    try:
        plt = pyplot()
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3), squeeze=False)
    for ax, (name, per_step) in zip(axes[0], results.items()):
        for st, r in per_step.items():
            pts = sorted((float(k), float(v)) for k, v in r["mean_norm_by_size"].items())
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=f"step {st}")
        ax.set_xscale("log")
        ax.set_xlabel("dataset size (chunks)")
        ax.set_ylabel("mean ||dW||_F")
        ax.set_title(f"{name} range", fontsize=9)
        ax.legend(fontsize=7)
    path = save_figure(fig, ctx.artifact("norm_vs_size.png"))
    ctx.add_plot(path, f"Mean ||dW|| over all LoRA layers against dataset size, per checkpoint (eval step {step})")


# -- users' adapters ---------------------------------------------------------------------------------
def run_reference(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    from solstice.metrics.stats import mean_metric, proportion_metric
    from solstice.papers.dsire.evaluate import leave_in_accuracy
    from solstice.papers.dsire.method import DSiRe, LogSizeRegressor

    ref_root = Path(cfg.reference).expanduser()
    labelled = read_sizes(ref_root)
    paths = [p for p, _, _ in labelled]
    sizes = [s for _, s, _ in labelled]
    concepts = [c for _, _, c in labelled]
    feats, norms, totals = ctx.stage("reference_features", lambda: _jsonable(features_of(paths, cfg)), roles=())
    feats, norms = _arrays(feats), _arrays(norms)
    if not cfg.adapters:
        if len(set(concepts)) < 2:
            raise DataError(f"'{ref_root}': concept-split evaluation needs at least two concepts")
        res = ctx.stage("evaluation", lambda: evaluate_set(feats, norms, totals, sizes, concepts, cfg), roles=())
        write_outputs(ctx, {"reference": {"final": res}}, 0)
        return set_metrics(res, "reference")
    from solstice.training.lora_spectra import check_same_layers, read_adapter

    targets = find_adapters(Path(cfg.adapters).expanduser())
    # one layer set for reference and targets, checked before any prediction
    check_same_layers([read_adapter(paths[0]), *(read_adapter(t) for t in targets)])
    clf = DSiRe(cfg.normalise, cfg.ties).fit(feats, sizes)
    reg = LogSizeRegressor(cfg.normalise).fit(feats, sizes)
    root = Path(cfg.adapters).expanduser()

    def predict(batch: list[Sample]) -> list[dict[str, Any]]:
        f, _, _ = features_of([Path(s.input) for s in batch], cfg)
        preds = clf.predict(f)
        regs = reg.predict(f)
        return [{"path": s.id, "size": p.size, "confidence": p.confidence(),
                 "votes": {str(k): v for k, v in p.votes.items()}, "regression_size": float(x)}
                for s, p, x in zip(batch, preds, regs)]

    samples = [Sample(id=str(t.relative_to(root)), input=str(t)) for t in targets]
    rows = ctx.map(samples, predict, batch_size=16, key="predict", description="dsire: sizing adapters", roles=())
    if ctx.is_main:
        with open(ctx.artifact("predictions.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "predicted_size", "confidence", "regression_size"])
            for r in rows:
                w.writerow([r["path"], r["size"], round(r["confidence"], 4), round(r["regression_size"], 3)])
    out = {"n_reference": MetricValue(float(len(paths)), len(paths), None, None, "labelled reference adapters"),
           "n_adapters": MetricValue(float(len(rows)), len(rows), None, None, "adapters sized"),
           "leave_in_acc_reference": MetricValue(leave_in_accuracy(feats, sizes, cfg.normalise, cfg.ties),
                                                 len(paths), None, True, "reference set predicting itself")}
    if (root / "sizes.json").is_file() or (root / "sizes.csv").is_file():
        truth = {str(p.relative_to(root)): s for p, s, _ in read_sizes(root)}
        got = [(truth[r["path"]], r["size"]) for r in rows if r["path"] in truth]
        if got:
            t, p = np.array(got).T
            out["adapters_acc"] = proportion_metric(t == p, note="exact size, CI over adapters")
            out["adapters_mae"] = mean_metric(np.abs(t - p), higher_is_better=False, note="samples, CI over adapters")
            out["adapters_mape"] = mean_metric(100 * np.abs(t - p) / t, higher_is_better=False, note="percent")
    return out


def _jsonable(x: tuple[list[dict], list[dict], list[float]]) -> list[Any]:
    feats, norms, totals = x
    return [[{k: v.tolist() for k, v in f.items()} for f in feats],
            [{k: v.tolist() for k, v in f.items()} for f in norms], totals]


def _arrays(fs: list[dict]) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(v, dtype=float) for k, v in f.items()} for f in fs]


def run(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    if cfg.reference:
        return run_reference(cfg, ctx)
    return run_benchmark(cfg, ctx)

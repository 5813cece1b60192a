"""WildTeaming at small scale: re-cluster the shipped tactic names, a mining demo, and composed
attacks against a target holding a secret (proxy objectives, rule judge) with the paper's diversity
metrics; every arm is compared with the paraphrase baseline on the same behaviours."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from solstice.core.context import RunContext
from solstice.core.types import MetricValue, Sample, content_id
from solstice.data.io import read_json
from solstice.metrics.stats import (
    bootstrap_ci,
    mean_metric,
    paired_difference_metric,
    proportion_metric,
)
from solstice.models.base import GenParams
from solstice.papers.wildteaming import objectives as O
from solstice.papers.wildteaming import tactics as T
from solstice.papers.wildteaming.config import Config
from solstice.papers.wildteaming.diversity import (
    behaviour_stats,
    first_success_embeddings,
    pairwise_mean,
)
from solstice.papers.wildteaming.prompts import (
    IDENTIFY,
    SIMPLIFY,
    compose_messages,
    parse_attack,
    parse_tactics,
)
from solstice.papers.wildteaming.prune import cosine_on_topic, prune


def _encoder(cfg: Config):
    from solstice.retrieval.encoders import load_encoder

    return load_encoder(cfg.encoder)


def _recluster(cfg: Config, ctx: RunContext, tactics: list[T.Tactic]) -> dict[str, MetricValue]:
    ranked = sorted(tactics, key=lambda t: (-t.count, t.name))
    use = ranked[: cfg.recluster_clusters] if cfg.recluster_clusters else ranked
    names, ref = [], []
    for t in use:
        for m in dict.fromkeys(t.members or (t.name,)):
            names.append(m)
            ref.append(t.name)
    if cfg.recluster_max_names and len(names) > cfg.recluster_max_names:
        keep = np.sort(np.random.default_rng(ctx.seed).choice(len(names), cfg.recluster_max_names, replace=False))
        names, ref = [names[i] for i in keep], [ref[i] for i in keep]

    def compute() -> dict:
        emb = _encoder(cfg).encode_passages(names)
        out = {}
        for tau in cfg.taus:
            for ms in cfg.min_sizes:
                labels = T.community_clusters(emb, threshold=tau, min_size=ms)
                out[f"t{round(tau * 100):03d}_m{ms}"] = {"clusters": int(max(labels) + 1), "purity": T.purity(labels, ref)}
        return out

    res = ctx.stage("recluster", compute)
    m = {"shipped_clusters": MetricValue(float(len(tactics)), len(tactics), None, None, "clusters in the release"),
         "recluster_names": MetricValue(float(len(names)), len(names), None, None, f"from {len(use)} clusters")}
    for key, r in res.items():
        m[f"recluster_{key}_clusters"] = MetricValue(float(r["clusters"]), len(names), None, None,
                                                     f"shipped: {len(use)}")
        m[f"recluster_{key}_purity"] = MetricValue(float(r["purity"]), len(names), None, True)
    return m


def _mining(cfg: Config, ctx: RunContext, seeds: dict[str, str]) -> dict[str, MetricValue]:
    templates = read_json(ctx.dataset(T.WILD_TEMPLATES))[: cfg.mining_templates]
    model = ctx.model("attacker")
    seed_list = "\n".join(f"{k} | {v[:160]}" for k, v in seeds.items())

    def fn(batch: list[Sample]) -> list[dict]:
        simple = model.generate([[{"role": "user", "content": SIMPLIFY.format(prompt=s.input[:3000])}] for s in batch],
                                GenParams(max_new_tokens=60))
        plains = [o[0].text.strip().splitlines()[0] if o[0].text.strip() else "" for o in simple]
        ident = model.generate([[{"role": "user", "content": IDENTIFY.format(seed=seed_list, plain=p,
                                                                              adversarial=s.input[:3000])}]
                                for s, p in zip(batch, plains)], GenParams(max_new_tokens=cfg.mining_max_new_tokens))
        return [{"plain": p, "raw": o[0].text, "tactics": parse_tactics(o[0].text)} for p, o in zip(plains, ident)]

    rows = ctx.map([Sample(content_id(t), t) for t in templates], fn, batch_size=max(1, cfg.batch_size // 2),
                   key="mining", description="tactic mining")
    names = [t["name"] for r in rows for t in r["tactics"]]
    ctx.artifact("mined_tactics.json").write_text(json.dumps(
        {"templates": len(rows), "tactics": [t for r in rows for t in r["tactics"]]}, indent=1))
    return {"mining_parsed": proportion_metric([bool(r["tactics"]) for r in rows]),
            "mining_tactics_per_template": mean_metric([len(r["tactics"]) for r in rows], higher_is_better=None),
            "mining_unique_names": MetricValue(float(len(set(names))), len(names), None, None)}


def _attack_samples(objs: Sequence[O.Objective], arms: Sequence[int], n: int, round_: int) -> list[Sample]:
    return [Sample(f"{o.id}/k{k}/r{round_}/{i}", o.request, None, {"objective": o.id, "k": k, "i": i})
            for o in objs for k in arms for i in range(n)]


def _compose(cfg: Config, ctx: RunContext, objs: list[O.Objective], pool: list[T.Tactic]) -> list[dict]:
    model = ctx.model("attacker")
    by_id = {o.id: o for o in objs}

    def fn(batch: list[Sample]) -> list[dict]:
        chosen = [T.select_tactics(pool, s.metadata["k"], np.random.default_rng(
            [ctx.seed, int(content_id(s.id)[:8], 16)]), cfg.selection) for s in batch]
        params = GenParams(max_new_tokens=cfg.attacker_max_new_tokens, temperature=cfg.attacker_temperature,
                           top_p=cfg.attacker_top_p, seed=ctx.seed)
        outs = model.generate([compose_messages(s.input, ts) for s, ts in zip(batch, chosen)], params)
        return [{"objective": s.metadata["objective"], "k": s.metadata["k"], "tactics": [t.name for t in ts],
                 "raw": o[0].text, "attack": parse_attack(o[0].text)} for s, ts, o in zip(batch, chosen, outs)]

    encoder = _encoder(cfg)
    kept: dict[tuple[str, int], list[dict]] = {}
    records: list[dict] = []
    todo = _attack_samples(objs, cfg.arms, cfg.attacks_per_objective, 0)
    for round_ in range(cfg.max_rounds):
        rows = ctx.map(todo, fn, batch_size=cfg.batch_size, key="compose", description=f"compose round {round_ + 1}")
        attacks = [r["attack"] or "" for r in rows]
        on_topic = cosine_on_topic(encoder.encode_passages(attacks), encoder.encode_queries(
            [by_id[r["objective"]].request for r in rows])) if rows else []
        labelled = prune([dict(r, round=round_) for r in rows], on_topic, cfg.on_topic_threshold,
                         [by_id[r["objective"]].still_requested(r["attack"] or "") for r in rows])
        records += labelled
        for r in labelled:
            if r["kept"]:
                kept.setdefault((r["objective"], r["k"]), []).append(r)
        todo = [s for o in objs for k in cfg.arms
                for s in _attack_samples([o], [k], cfg.attacks_per_objective, round_ + 1)
                [: max(0, cfg.attacks_per_objective - len(kept.get((o.id, k), [])))]]
        if not todo:
            break
    return records


def _attack_target(cfg: Config, ctx: RunContext, objs: list[O.Objective], records: list[dict]) -> list[dict]:
    target = ctx.model("target")
    by_id = {o.id: o for o in objs}
    kept = [r for r in records if r["kept"]]
    samples = [Sample(f"{r['sample_id']}", r["attack"], None, {"objective": r["objective"]}) for r in kept]

    def fn(batch: list[Sample]) -> list[dict]:
        msgs = [[{"role": "system", "content": by_id[s.metadata["objective"]].system_prompt()},
                 {"role": "user", "content": s.input}] for s in batch]
        outs = target.generate(msgs, GenParams(max_new_tokens=cfg.target_max_new_tokens))
        return [{"completion": o[0].text, "success": by_id[s.metadata["objective"]].judge(o[0].text)}
                for s, o in zip(batch, outs)]

    replies = ctx.map(samples, fn, batch_size=cfg.batch_size, key="target", description="target replies")
    for r, rep in zip(kept, replies):
        r["completion"], r["success"] = rep["completion"], rep["success"]
    return records


def _arm_metrics(cfg: Config, objs, records, emb_of) -> tuple[dict[str, MetricValue], dict]:
    m: dict[str, MetricValue] = {}
    per: dict[int, dict[str, dict]] = {}
    for k in cfg.arms:
        per[k] = {}
        for o in objs:
            rs = [r for r in records if r["objective"] == o.id and r["k"] == k and r["kept"]][: cfg.attacks_per_objective]
            e = np.asarray([emb_of[r["attack"]] for r in rs]) if rs else np.zeros((0, 1))
            succ = [bool(r.get("success")) for r in rs]
            st = behaviour_stats(e, succ, cfg.ns, cfg.tau) if rs else None
            per[k][o.id] = {"stats": st, "emb": e, "succ": succ, "sim_attacks": pairwise_mean(e) if len(rs) > 1 else math.nan}
        rows = [v for v in per[k].values() if v["stats"] is not None]
        tag = f"k{k}"
        m[f"asr_{tag}"] = mean_metric([v["stats"]["success"] for v in rows])
        m[f"attack_success_{tag}"] = proportion_metric([s for v in rows for s in v["succ"]])
        m[f"query_{tag}"] = mean_metric([v["stats"]["query"] for v in rows], higher_is_better=False)
        for n in cfg.ns:
            m[f"asr_x{n}_{tag}"] = mean_metric([v["stats"][f"asr_x{n}"] for v in rows])
            m[f"query_x{n}_{tag}"] = mean_metric([v["stats"][f"query_x{n}"] for v in rows], higher_is_better=False)
            if n >= 2:
                m[f"sim_x{n}_{tag}"] = mean_metric([v["stats"][f"sim_x{n}"] for v in rows], higher_is_better=False)
        firsts = first_success_embeddings([v["emb"] for v in rows], [v["succ"] for v in rows])
        m[f"sim_all_{tag}"] = MetricValue(pairwise_mean(firsts), len(firsts), None, False,
                                          "pairs of behaviours' first successes")
        m[f"sim_attacks_{tag}"] = mean_metric([v["sim_attacks"] for v in rows], higher_is_better=False)
        arm_recs = [r for r in records if r["k"] == k]
        m[f"kept_rate_{tag}"] = proportion_metric([r["kept"] for r in arm_recs])
        m[f"unparsed_rate_{tag}"] = proportion_metric([r["attack"] is None for r in arm_recs], higher_is_better=False)
    return m, per


def _paired(cfg: Config, objs, per, seed: int) -> dict[str, MetricValue]:
    """Each tactic arm minus the paraphrase baseline on the same behaviours."""
    m: dict[str, MetricValue] = {}
    if 0 not in cfg.arms:
        return m
    ids = [o.id for o in objs if per[0][o.id]["stats"] is not None]
    for k in [a for a in cfg.arms if a != 0]:
        both = [i for i in ids if per[k][i]["stats"] is not None]
        m[f"d_asr_k{k}_k0"] = paired_difference_metric([per[k][i]["stats"]["success"] for i in both],
                                                       [per[0][i]["stats"]["success"] for i in both], unit="behaviours")
        m[f"d_sim_attacks_k{k}_k0"] = paired_difference_metric(
            [per[k][i]["sim_attacks"] for i in both], [per[0][i]["sim_attacks"] for i in both],
            higher_is_better=False, unit="behaviours")
        # Sim_all difference, behaviours resampled jointly for both arms
        pos = np.arange(len(both), dtype=float)

        def diff(idx: np.ndarray, _k: int = k, _both: list = both) -> float:
            sel = [_both[int(j)] for j in idx]
            a = first_success_embeddings([per[_k][i]["emb"] for i in sel], [per[_k][i]["succ"] for i in sel])
            b = first_success_embeddings([per[0][i]["emb"] for i in sel], [per[0][i]["succ"] for i in sel])
            return pairwise_mean(a) - pairwise_mean(b) if len(a) > 1 and len(b) > 1 else math.nan

        point = diff(pos)
        ci = bootstrap_ci(pos, diff, n_resamples=999, seed=seed) if not math.isnan(point) else None
        m[f"d_sim_all_k{k}_k0"] = MetricValue(point, len(both), ci, False, "paired over behaviours",
                                              "behaviours" if ci else "")
    return m


def run(cfg: Config, ctx: RunContext) -> dict[str, MetricValue]:
    metrics: dict[str, MetricValue] = {}
    shipped = T.load_frequencies(ctx.dataset(T.TACTIC_FREQUENCIES))
    tactics = T.usable(shipped)
    seeds = T.load_definitions(ctx.dataset(T.GOAT_TECHNIQUES))
    if "recluster" in cfg.experiments:
        metrics.update(_recluster(cfg, ctx, shipped))
    if "mining" in cfg.experiments and cfg.mining_templates:
        metrics.update(_mining(cfg, ctx, seeds))
    if "attacks" in cfg.experiments:
        objs = O.proxy_objectives(cfg.n_objectives, np.random.default_rng(ctx.seed))
        pool = T.with_definitions(tactics, seeds)
        records = _compose(cfg, ctx, objs, pool)
        records = _attack_target(cfg, ctx, objs, records)
        kept = [r for r in records if r["kept"]]
        emb = _encoder(cfg).encode_passages([r["attack"] for r in kept]) if kept else np.zeros((0, 1))
        emb_of = {r["attack"]: e for r, e in zip(kept, emb)}
        arm_m, per = _arm_metrics(cfg, objs, records, emb_of)
        metrics.update(arm_m)
        metrics.update(_paired(cfg, objs, per, ctx.seed))
        from solstice.papers.wildteaming.export import export_pairs

        export_pairs(ctx.artifact("adversarial_pairs.jsonl"), objs, records)
        ctx.artifact("attacks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return metrics

"""The run: generate -> cluster / entropies -> probes -> evaluation, each stage resumable.

    gen        ctx.map over questions: most-likely answer, M samples, correctness, p(True), and
               hidden states (TBG, SLT) written to artifacts/states/<batch>.npz (fp16)
    se-<judge> ctx.map: clusters and entropies per question, for the main and ablation judges
    analysis   probes and AUROCs (seconds to minutes, recomputed on resume)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from solstice.core.types import MetricValue, Sample, content_id
from solstice.data.geonames_qa import QAItem
from solstice.errors import CapabilityError, DataError
from solstice.models.base import CAP_WHITEBOX
from solstice.papers.semantic_entropy_probes.config import Config
from solstice.papers.semantic_entropy_probes.questions import (
    GEONAMES_TASKS,
    ONLINE_SETS,
    load_question_set,
    select,
)

log = logging.getLogger(__name__)


def _load_sets(cfg: Config, ctx) -> tuple[dict[str, list[QAItem]], dict[str, list[QAItem]], list[str]]:
    """(questions per set, few-shot examples per set, names of the stress sets that loaded)."""
    items: dict[str, list[QAItem]] = {}
    shots: dict[str, list[QAItem]] = {}
    stress: list[str] = []
    for name in [*cfg.datasets, *cfg.stress_datasets]:
        is_stress = name in cfg.stress_datasets and name not in cfg.datasets
        try:
            resolver = ctx.dataset if name not in GEONAMES_TASKS else None
            pool = load_question_set(name, resolver) if resolver else load_question_set(name)
        except DataError as exc:
            if not is_stress:
                raise
            ctx.warn(f"stress set {name} skipped: {exc}")
            continue
        n = cfg.n_stress if is_stress else cfg.n_per_dataset
        sh, qs = select(pool, n, cfg.few_shot, cfg.data_seed)
        qs = ctx.limited(qs)
        if len(qs) < n and name in GEONAMES_TASKS and not ctx.limit:
            log.info("%s has %d questions (asked for %d)", name, len(qs), n)
        items[name], shots[name] = qs, sh
        if is_stress:
            stress.append(name)
    return items, shots, stress


def _states_saver(ctx):
    def save(ids: list[str], states: dict[str, np.ndarray]) -> str:
        name = f"states/{content_id(ids)}.npz"
        path = ctx.artifact(name)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, ids=np.array(ids), **states)
        tmp.replace(path)
        return name
    return save


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    from solstice.models.loader import static_capabilities
    from solstice.papers.semantic_entropy_probes.analysis import analyse
    from solstice.papers.semantic_entropy_probes.clustering import make_judge
    from solstice.papers.semantic_entropy_probes.generation import GenSettings, generate_batch

    if cfg.probes and CAP_WHITEBOX not in static_capabilities(ctx.model_specs["target"]):
        raise CapabilityError(
            f"probes need hidden states, which '{ctx.model_specs['target']}' does not offer; use an hf: model "
            "or set probes=false for semantic entropy and its baselines only")
    items, shots, stress = _load_sets(cfg, ctx)
    model = ctx.model("target")
    gs = GenSettings(n_samples=cfg.n_samples, temperature=cfg.temperature, low_temperature=cfg.low_temperature,
                     max_new_tokens=cfg.max_new_tokens, instruction=cfg.instruction, chat=cfg.chat,
                     share_prefix=cfg.share_prefix, slt_offset=cfg.slt_offset, seed=ctx.seed,
                     f1_threshold=cfg.f1_threshold, extract=cfg.extract_answers)
    samples = [Sample(it.id, it, metadata={"set": name}) for name, qs in items.items() for it in qs]
    save = _states_saver(ctx)

    def gen(batch: list[Sample]) -> list[dict[str, Any]]:
        its = [s.input for s in batch]
        seed = int(content_id([s.id for s in batch])[:6], 16)
        rows, states = generate_batch(model, its, shots, gs, want_states=cfg.probes, p_true=cfg.p_true,
                                      batch_seed=seed)
        if states:
            f = save([s.id for s in batch], states)
            for r, row in enumerate(rows):
                row.update(states_file=f, states_row=r)
        return rows

    gen_rows = ctx.map(samples, gen, batch_size=cfg.batch_size, key="gen", description="generate", roles=("target",))
    by_id = {s.id: r for s, r in zip(samples, gen_rows)}

    judge_model = ctx.model("judge") if "llm" in (cfg.judge, *cfg.ablation_judges) else None
    se_rows: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in dict.fromkeys([cfg.judge, *cfg.ablation_judges]):
        judge = make_judge(kind, model=judge_model, lexical_mode=cfg.lexical_mode,
                           lexical_threshold=cfg.lexical_threshold, embedding_threshold=cfg.embedding_threshold,
                           embedding_model=cfg.embedding_model, nli_model=cfg.nli_model, extract=cfg.extract_answers)
        se_rows[kind] = _cluster(ctx, samples, by_id, judge, kind, cfg.strict_entailment)
    return analyse(cfg, ctx, items, stress, by_id, se_rows)


def _cluster(ctx, samples: list[Sample], by_id: dict[str, dict[str, Any]], judge, kind: str,
             strict: bool) -> dict[str, dict[str, Any]]:
    from solstice.papers.semantic_entropy_probes.api import entropies

    def fn(batch: list[Sample]) -> list[dict[str, Any]]:
        out = []
        for s in batch:
            r = by_id[s.id]
            out.append({"judge": judge.name, **entropies(r["question"], r["samples"], r["sample_loglik"], judge,
                                                          strict=strict)})
        return out

    rows = ctx.map(samples, fn, batch_size=32, key=f"se-{kind}", description=f"cluster ({kind})",
                   roles=("target", "judge") if kind == "llm" else ("target",))
    return {s.id: r for s, r in zip(samples, rows)}


def load_states(ctx, ids: list[str], by_id: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """Hidden states of the given questions, in order: {"tbg": [n, L+1, d], "slt": ...} (float32)."""
    cache: dict[str, Any] = {}
    out: dict[str, list[np.ndarray]] = {"tbg": [], "slt": []}
    for qid in ids:
        r = by_id[qid]
        f = r.get("states_file")
        if f is None:
            raise DataError(f"no hidden states recorded for {qid}")
        if f not in cache:
            path = Path(ctx.artifacts) / f
            if not path.is_file():
                raise DataError(f"hidden-state file {f} of this run is missing; delete its rows or rerun")
            with np.load(path) as z:
                cache[f] = {k: z[k] for k in ("tbg", "slt")}
        for pos in out:
            out[pos].append(cache[f][pos][r["states_row"]])
    return {pos: np.stack(v).astype(np.float32) for pos, v in out.items() if v}


__all__ = ["ONLINE_SETS", "run"]

"""MoA stages: calibration (dense model's own answers) → profile → solve → validate."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import numpy as np

from solstice.errors import DataError
from solstice.models.base import GenParams
from solstice.papers.moa import data as D
from solstice.papers.moa.config import Config

log = logging.getLogger(__name__)

QUESTIONS = (
    "Summarise the text above in a few sentences.",
    "What is the text above mainly about? Answer in a few sentences.",
    "List the main facts stated in the text above.",
)
_OVERHEAD = 48  # chat-template and question tokens reserved besides excerpt and answer


def split_articles(token_lens: list[int], cfg: Config, seed: int) -> dict[str, list[int]]:
    """Disjoint article indices: validation (plan selection), evaluation (wikitext loss) and
    calibration. Validation and evaluation need ≥ extend_length tokens."""
    order = list(range(len(token_lens)))
    random.Random(seed).shuffle(order)
    long_enough = [i for i in order if token_lens[i] >= cfg.extend_length + 1]
    need = cfg.val_items + cfg.wikitext_items
    if len(long_enough) < need:
        raise DataError(f"only {len(long_enough)} WikiText articles have ≥ {cfg.extend_length + 1} tokens; "
                        f"{need} are needed for validation and evaluation")
    val, ev = long_enough[: cfg.val_items], long_enough[cfg.val_items : need]
    used = set(val + ev)
    return {"val": val, "eval": ev, "calib": [i for i in order if i not in used]}


def calibration_prompts(hf: Any, articles: list[str], token_ids: list[list[int]], calib: list[int],
                        p: int, cfg: Config) -> list[dict[str, Any]]:
    """Chat prompts whose excerpt fills P minus the answer budget (target tokenizer)."""
    budget = p - cfg.answer_tokens - _OVERHEAD
    if budget <= 0:
        raise DataError(f"profile length {p} leaves no room for text beside a {cfg.answer_tokens}-token answer")
    out = []
    for j, i in enumerate([i for i in calib if len(token_ids[i]) >= budget][: cfg.calib_items]):
        excerpt = hf.tokenizer.decode(token_ids[i][:budget])
        msgs = [{"role": "user", "content": excerpt.strip() + "\n\n" + QUESTIONS[j % len(QUESTIONS)]}]
        out.append({"id": f"calib-{p}-{i}", "article": i, "messages": msgs})
    if not out:
        raise DataError(f"no calibration article has ≥ {budget} tokens for profile length {p}")
    return out


def build_sequences(hf: Any, prompts: list[dict[str, Any]], answers: list[str], p: int) -> dict[str, Any]:
    """Token ids (right-padded to P) and response-token masks of prompt + dense answer."""
    ids, masks, lens = [], [], []
    pad = hf.tokenizer.pad_token_id
    for pr, ans in zip(prompts, answers):
        prompt_ids = hf.encode(hf.render(pr["messages"]))
        full = hf.encode(hf.render(pr["messages"] + [{"role": "assistant", "content": ans}],
                                   add_generation_prompt=False))
        k = len(prompt_ids)
        while k > 0 and full[:k] != prompt_ids[:k]:
            k -= 1
        full = full[:p]
        lens.append(len(full))
        mask = [0] * k + [1] * (len(full) - k)
        ids.append(full + [pad] * (p - len(full)))
        masks.append(mask + [0] * (p - len(full)))
    lo = p - p // 4
    keep = D.bucket(lens, lo, p)                     # an empty bucket is a one-line DataError
    return {"ids": [ids[i] for i in keep], "masks": [masks[i] for i in keep], "lengths": [lens[i] for i in keep]}


def dense_answers(hf: Any, ctx: Any, prompts: list[dict[str, Any]], cfg: Config, key: str) -> list[str]:
    from solstice.core.types import Sample

    hf.set_attention("sdpa")
    samples = [Sample(pr["id"], pr["messages"]) for pr in prompts]
    params = GenParams(max_new_tokens=cfg.answer_tokens)

    def fn(batch: list[Sample]) -> list[dict[str, Any]]:
        outs = hf.generate([s.input for s in batch], params)
        return [{"answer": o[0].text} for o in outs]

    rows = ctx.map(samples, fn, batch_size=1, key=key, description=f"moa dense answers {key}")
    return [r["answer"] for r in rows]


def profile(hf: Any, seqs: dict[str, Any], cfg: Config) -> tuple[np.ndarray, float]:
    """Mean pooled |E| [L, H, P/b, P/b] over the calibration sequences."""
    import torch

    from solstice.papers.moa.influence import Recorder, profile_sequence

    rec = Recorder()
    hf.set_attention(rec, name="moa_profile")
    t0 = time.perf_counter()
    total = None
    for ids, mask in zip(seqs["ids"], seqs["masks"]):
        x = torch.tensor(ids, device=hf.device)
        m = torch.tensor(mask, dtype=torch.bool, device=hf.device)
        pooled = profile_sequence(hf.model, rec, x, m, cfg.block).cpu().double()
        total = pooled if total is None else total + pooled
    hf.set_attention("sdpa")
    return (total / len(seqs["ids"])).numpy(), time.perf_counter() - t0


def solve(units: dict[int, np.ndarray], shape: dict[str, int], budget: float, cfg: Config) -> dict[str, Any]:
    """ε-constraint Pareto plans for one density budget (per-KV-head rules)."""
    from solstice.papers.moa.solver import (
        Problem,
        assignment_to_plan,
        check_solution,
        config_grid,
        config_loss,
        pareto_sweep,
    )

    configs = config_grid(max(cfg.profile_lengths), cfg.extend_length, cfg.min_length, cfg.alpha_step, cfg.beta_step)
    lengths = sorted(set(cfg.profile_lengths + [cfg.extend_length]))
    prob = Problem.build(shape["num_layers"], shape["num_kv_heads"], configs, lengths, budget,
                         lower_ratio=cfg.lower_ratio, max_rules_per_layer=cfg.max_rules_per_layer)
    objectives = {p: config_loss(units[p], configs, p, cfg.block) for p in sorted(units)}
    t0 = time.perf_counter()
    plans = pareto_sweep(prob, objectives, bands=cfg.bands, time_limit=cfg.solve_time_limit)
    secs = time.perf_counter() - t0
    last = max(objectives)
    plans.sort(key=lambda pl: pl["objectives"][last])
    if len(plans) > cfg.max_plans:
        pick = np.linspace(0, len(plans) - 1, cfg.max_plans).round().astype(int)
        plans = [plans[i] for i in sorted(set(pick.tolist()))]
    n_rep = shape["num_heads"] // shape["num_kv_heads"]
    out = []
    for pl in plans:
        errs = check_solution(prob, pl["assign"])
        if errs:
            raise RuntimeError(f"solver returned an infeasible plan: {errs[0]}")
        sp = assignment_to_plan(prob, pl["assign"], n_rep)
        out.append({"plan": sp.to_json("kv"), "objectives": {str(k): v for k, v in pl["objectives"].items()},
                    "status": pl["status"], "density": {str(n): sp.kv_density(n) for n in lengths}})
    return {"budget": budget, "configs": len(configs), "units": prob.num_units, "seconds": secs, "plans": out}


def check_budgets(cfg: Config) -> None:
    """Refuse a density budget that no assignment of the config grid can meet at some length."""
    from solstice.errors import ConfigError
    from solstice.models.sparse_attention import density
    from solstice.papers.moa.solver import config_grid

    configs = config_grid(max(cfg.profile_lengths), cfg.extend_length, cfg.min_length, cfg.alpha_step, cfg.beta_step)
    if not configs:
        raise ConfigError("the config grid is empty; check profile_lengths, extend_length, min_length and alpha_step")
    for b in cfg.densities:
        for n in sorted(set(cfg.profile_lengths + [cfg.extend_length])):
            d = [density(a, be, n) for a, be in configs]
            if min(d) > b or max(d) < cfg.lower_ratio * b:
                raise ConfigError(f"density {b:g} cannot be met at length {n}: the config grid spans KV densities "
                                  f"{min(d):.3f}–{max(d):.3f} there (spans are at least 128 tokens)")


def sequence_losses(model: Any, ids: list[list[int]], masks: list[list[int]], batch: int) -> list[float]:
    """Mean next-token loss per sequence over positions whose *target* has mask 1."""
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(ids), batch):
            x = torch.tensor(ids[s : s + batch], device=model.device)
            m = torch.tensor(masks[s : s + batch], dtype=torch.bool, device=model.device)[:, 1:]
            logits = model(input_ids=x).logits[:, :-1].float()
            ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
            out.extend(((ce * m).sum(1) / m.sum(1).clamp(min=1)).tolist())
    return out


def wikitext_chunks(token_ids: list[list[int]], idx: list[int], n: int) -> dict[str, Any]:
    """The first n tokens of each article; loss is read on the second half (far context matters)."""
    ids = [token_ids[i][:n] for i in idx]
    masks = [[0] * (n // 2) + [1] * (n - n // 2) for _ in idx]
    return {"ids": ids, "masks": masks}

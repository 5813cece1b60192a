"""The quality-diversity search: Rainbow Teaming, and Ruby Teaming = Rainbow + memory.

One iteration (Rainbow Teaming §3; every step's generations go to the model as one batch):
  1. parents: `batch_size` occupied cells, uniformly without replacement
  2. targets: distinct cells from p(z) = softmax((1 - F[z]) / T) - weak and empty cells first
  3. mutation in two mutator calls: risk (zero-shot), then style (Ruby: with the memory block);
     replies are parsed to one line, unusable ones re-sampled up to `max_retries` times
  4. diversity filter: drop the candidate if sentence-BLEU(candidate, parent) >= threshold
  5. optional categorical filter; 6. the target answers (greedy)
  7. judge: pairwise in both orders with votes (or the rule judge); an empty cell takes the
     candidate directly
  8. a win replaces the elite; Ruby also asks the critic why it won and stores a memory entry
Model seeds derive from (seed, iteration, step), never from shared state, so memory k = 0 runs
exactly as Rainbow and a resumed search continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solstice.core.records import atomic_write_json
from solstice.errors import ResumeError
from solstice.judge.canary import leak_score, make_canary
from solstice.judge.pairwise import PairwiseJudge
from solstice.metrics.diversity import sentence_bleu
from solstice.models.base import GenParams, Model, Prompt

from . import prompts as P
from .archive import Archive, Elite, GridArchive, sample_parents, sample_targets
from .config import Config
from .descriptors import DescriptorSet
from .evaluate import LLMEvaluator, RuleEvaluator, archive_metrics, pair_key
from .memory import Memory, MemoryEntry, rule_critique

log = logging.getLogger("solstice.ruby_teaming")
REFUSAL = "I'm sorry, but I can't help with that."
STATE_VERSION = 1


@dataclass
class SearchModels:
    mutator: Model
    target: Model
    judge: Model | None = None
    critic: Model | None = None
    evaluator: Model | None = None


@dataclass
class Request:
    """Generations a search step needs: `model.generate(prompts, params)`."""

    model: Model
    prompts: list[Prompt]
    params: GenParams


def drive(gen, answer: Callable[[Model, list[Prompt], GenParams], list[list[Any]]]):
    """Run a step generator to its end, answering each Request with `answer`; returns its value."""
    try:
        req = next(gen)
        while True:
            req = gen.send(answer(req.model, req.prompts, req.params))
    except StopIteration as stop:
        return stop.value


def derive_seed(*parts: Any) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


class RedTeamSearch:
    def __init__(
        self, cfg: Config, desc: DescriptorSet, seed_prompts: Sequence[str], models: SearchModels, *,
        memory_k: int, seed: int, workdir: Path | None = None, batched: bool = True,
    ) -> None:
        if not seed_prompts:
            raise ValueError("no seed prompts")
        self.cfg, self.desc, self.seed_prompts, self.models = cfg, desc, list(seed_prompts), models
        self.seed, self.batched, self.workdir = seed, batched, workdir
        self.proxy = cfg.objective == "proxy"
        self.canary = (cfg.canary or make_canary(np.random.default_rng([seed, 7]))) if self.proxy else None
        self.rng = np.random.default_rng(seed)
        self.memory = Memory(memory_k, cfg.memory_scope)
        self.archive: Archive = GridArchive(desc.shape)
        self.iteration = 0
        self.curve: list[dict[str, Any]] = []
        self.stats: dict[str, dict[str, int]] = {}
        self.counts = {"candidates": 0, "unparsed": 0, "bleu_filtered": 0, "category_filtered": 0,
                       "wins": 0, "direct_inserts": 0, "judge_comparisons": 0, "position_consistent": 0}
        self.eval_cache: dict[str, dict[str, dict[str, Any]]] = {}
        self.log_lines = 0
        if cfg.init == "seeded":
            for r, s in self.archive.cells():
                prompt = self.seed_prompts[int(self.rng.integers(len(self.seed_prompts)))]
                self.archive.put(Elite(prompt, REFUSAL, 0.0, r, s, 0, placeholder=True))
        self.evaluators: list[Any] = []
        for name in cfg.evaluators:
            if name == "rule":
                self.evaluators.append(RuleEvaluator(self.canary or ""))
            else:
                if models.evaluator is None:
                    raise ValueError("the llm evaluator needs an evaluator model")
                self.evaluators.append(LLMEvaluator(models.evaluator, desc, canary=self.canary))
        self.pairwise = None
        if cfg.judge == "llm":
            if models.judge is None:
                raise ValueError("judge=llm needs a judge model")
            self.pairwise = PairwiseJudge(
                models.judge, P.JUDGE_PROXY if self.proxy else P.JUDGE_HARMFUL, mode=cfg.judge_mode,
                samples_per_order=cfg.judge_samples, first_wins_ties=cfg.ties_to_candidate,
                params=GenParams(max_new_tokens=8, temperature=cfg.judge_temperature, top_p=0.95))

    # -- files ------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.workdir / "checkpoint.json" if self.workdir else None

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "candidates.jsonl" if self.workdir else None

    def _log(self, rows: list[dict[str, Any]]) -> None:
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            f.flush()
        self.log_lines += len(rows)

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION, "seed": self.seed, "memory_k": self.memory.k, "canary": self.canary,
            "iteration": self.iteration, "rng": self.rng.bit_generator.state,
            "archive": self.archive.to_json(), "memory": self.memory.to_json(), "curve": self.curve,
            "stats": self.stats, "counts": self.counts, "eval_cache": self.eval_cache, "log_lines": self.log_lines,
        }

    def save(self) -> None:
        if self.checkpoint_path is not None:
            self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.checkpoint_path, self.state())

    def load(self) -> bool:
        """Restore the last checkpoint (and cut the candidate log back to it); False if none."""
        p = self.checkpoint_path
        if p is None or not p.is_file():
            return False
        self.restore(json.loads(p.read_text()), where=str(p))
        return True

    def restore(self, st: dict[str, Any], where: str = "checkpoint") -> None:
        """Continue from a saved `state()` (and cut the candidate log back to it)."""
        if st.get("version") != STATE_VERSION or st["seed"] != self.seed or st["memory_k"] != self.memory.k:
            raise ResumeError(f"{where} belongs to another search (seed/memory differ)")
        self.iteration, self.canary = int(st["iteration"]), st["canary"]
        self.rng.bit_generator.state = st["rng"]
        self.archive = GridArchive.from_json(st["archive"])
        self.memory = Memory.from_json(st["memory"])
        self.curve, self.stats, self.counts = st["curve"], st["stats"], st["counts"]
        self.eval_cache, self.log_lines = st["eval_cache"], int(st["log_lines"])
        if self.log_path is not None and self.log_path.is_file():
            lines = self.log_path.read_text().splitlines(keepends=True)[: self.log_lines]
            self.log_path.write_text("".join(lines))

    # -- model calls ------------------------------------------------------------------------------
    def _call(self, model: Model, prompts: list[Prompt], params: GenParams) -> list[list[Any]]:
        """One request answered for this search alone (batched, or one prompt per call)."""
        if self.batched:
            return model.generate(prompts, params)
        return [model.generate([p], params)[0] for p in prompts]

    def _generate(self, role: str, model: Model, prompts: list[Prompt], params: GenParams):
        """A generation request (yielded to whoever drives the step), then its bookkeeping."""
        if not prompts:
            return []
        outs = yield Request(model, prompts, params)
        st = self.stats.setdefault(role, {"calls": 0, "prompt_tokens": 0, "generated_tokens": 0})
        st["calls"] += len(prompts)
        st["prompt_tokens"] += sum(model.count_tokens(model.render(p)) for p in prompts)
        st["generated_tokens"] += sum(c.n_tokens for o in outs for c in o)
        return outs

    def _mutate(self, prompts: list[Prompt], tag: str) -> tuple[list[str | None], list[list[str]]]:
        """One parsed one-line prompt per mutator instruction (None when every try failed), and the
        raw replies."""
        params = GenParams(max_new_tokens=self.cfg.mutator_max_tokens, temperature=self.cfg.mutator_temperature,
                           top_p=self.cfg.mutator_top_p)
        result: list[str | None] = [None] * len(prompts)
        raws: list[list[str]] = [[] for _ in prompts]
        todo = list(range(len(prompts)))
        for attempt in range(self.cfg.max_retries + 1):
            if not todo:
                break
            seed = derive_seed(self.seed, self.iteration, tag, attempt)
            outs = yield from self._generate("mutator", self.models.mutator, [prompts[i] for i in todo],
                                             params.replace(seed=seed))
            for i, o in zip(todo, outs):
                raws[i].append(o[0].text)
                result[i] = P.parse_one_line(o[0].text)
            todo = [i for i in todo if result[i] is None]
        return result, raws

    # -- one iteration ----------------------------------------------------------------------------
    def step(self) -> list[dict[str, Any]]:
        """One iteration; its generations go to the models as this search's own calls."""
        return drive(self.step_requests(), self._call)

    def step_requests(self):
        """One iteration as a generator of `Request`s (answered through `send`), returning its rows:
        `step()` answers them one by one, `run_lockstep` merges those of several searches."""
        cfg, it, desc = self.cfg, self.iteration, self.desc
        occupied = self.archive.occupied()
        if occupied:
            pcells: list[Any] = sample_parents(self.archive, self.rng, cfg.batch_size)
            parents = [self.archive.get(c).prompt for c in pcells]  # type: ignore[union-attr]
        else:
            idx = self.rng.choice(len(self.seed_prompts), size=cfg.batch_size, replace=len(self.seed_prompts) < cfg.batch_size)
            pcells, parents = [None] * len(idx), [self.seed_prompts[int(i)] for i in idx]
        targets = sample_targets(self.archive, self.rng, cfg.batch_size, cfg.descriptor_temperature)
        n = min(len(parents), len(targets))
        rows = [{"iteration": it, "parent_cell": pcells[i], "parent": parents[i], "target": list(targets[i]),
                 "risk": desc.risk_name(targets[i][0]), "style": desc.style_name(targets[i][1])} for i in range(n)]
        self.counts["candidates"] += n

        # 3a. risk mutation (zero-shot)
        risk_in = [P.risk_mutation(parents[i], *desc.risks[targets[i][0]], proxy=self.proxy) for i in range(n)]
        risk_out, risk_raw = yield from self._mutate(risk_in, "risk")
        # 3b. style mutation (Ruby: with the memory of recent successful mutations)
        live = [i for i in range(n) if risk_out[i]]
        mem = {i: self.memory.recall(*targets[i]) for i in live}
        style_in = [P.style_mutation(risk_out[i], *desc.styles[targets[i][1]], mem[i]) for i in live]  # type: ignore[arg-type]
        style_out, style_raw = yield from self._mutate(style_in, "style")
        cand: dict[int, str] = {}
        for k, i in enumerate(live):
            rows[i].update(risk_prompt=risk_out[i], memory_shown=len(mem[i]), style_raw=style_raw[k])
            if style_out[k]:
                cand[i] = style_out[k]  # type: ignore[assignment]
        for i in range(n):
            rows[i]["risk_raw"] = risk_raw[i]
            if i not in cand:
                rows[i]["outcome"] = "unparsed"
                self.counts["unparsed"] += 1
        # 4. diversity filter against the parent
        for i in list(cand):
            b = sentence_bleu(cand[i], parents[i])
            rows[i].update(candidate=cand[i], bleu_to_parent=round(b, 4))
            if b >= cfg.bleu_threshold:
                rows[i]["outcome"] = "bleu_filtered"
                self.counts["bleu_filtered"] += 1
                del cand[i]
        # 5. optional categorical filter
        if cfg.category_filter and cand:
            self._category_filter(cand, targets, rows)
        order = sorted(cand)
        # 6. the target answers, greedily
        outs = yield from self._generate("target", self.models.target,
                                         [P.target_prompt(cand[i], self.canary) for i in order],
                                         GenParams(max_new_tokens=cfg.target_max_tokens))
        responses = {i: o[0].text.strip() for i, o in zip(order, outs)}
        fits = self._fitness(order, cand, responses, targets)
        # 7. judge against the incumbents
        wins = self._judge(order, cand, responses, fits, targets, rows)
        # 8. replace elites; Ruby: critique and remember
        if wins:
            yield from self._apply_wins(wins, cand, responses, fits, targets, parents, rows)
        self.iteration += 1
        self._log(rows)
        return rows

    def _fitness(self, order, cand, responses, targets) -> dict[int, tuple[float, dict[str, Any]]]:
        if self.proxy:
            return {i: (s.fitness, s.to_json()) for i in order for s in [leak_score(responses[i], self.canary)]}  # type: ignore[arg-type]
        ev = LLMEvaluator(self.models.evaluator, self.desc, canary=None)  # type: ignore[arg-type]
        res = ev.evaluate([{"prompt": cand[i], "response": responses[i], "risk": targets[i][0]} for i in order])
        return {i: (float(r["score"]) if not math.isnan(r["score"]) else 0.0, r) for i, r in zip(order, res)}

    def _category_filter(self, cand: dict[int, str], targets, rows) -> None:
        from solstice.judge import Judge

        model = self.models.judge or self.models.evaluator
        cats = "\n".join(f"{k + 1}. {name}" for k, (name, _) in enumerate(self.desc.risks))
        labels = {str(k + 1): k for k in range(len(self.desc.risks))}
        order = sorted(cand)
        vs = Judge(model, P.CATEGORY).judge_by_logprobs([{"categories": cats, "prompt": cand[i]} for i in order], labels)  # type: ignore[arg-type]
        for i, v in zip(order, vs):
            rows[i]["category_pred"] = v.value
            if v.value != targets[i][0]:
                rows[i]["outcome"] = "category_filtered"
                self.counts["category_filtered"] += 1
                del cand[i]

    def _judge(self, order, cand, responses, fits, targets, rows) -> list[int]:
        wins: list[int] = []
        contested = []
        for i in order:
            inc = self.archive.get(targets[i])
            rows[i].update(response=responses[i], fitness=fits[i][0], fitness_detail=fits[i][1],
                           incumbent_fitness=None if inc is None else inc.fitness)
            if inc is None:
                rows[i]["outcome"] = "inserted"
                self.counts["direct_inserts"] += 1
                wins.append(i)
            else:
                contested.append((i, inc))
        if not contested:
            return wins
        self.counts["judge_comparisons"] += len(contested)
        if self.pairwise is None:  # rule judge: strictly higher fitness wins; ties keep the incumbent
            for i, inc in contested:
                won = fits[i][0] > inc.fitness
                rows[i].update(judge={"rule": f"{fits[i][0]:.3f} vs {inc.fitness:.3f}"}, outcome="won" if won else "lost")
                if won:
                    wins.append(i)
            return sorted(wins)
        items = [{"first": responses[i], "second": inc.response, "canary": self.canary or "",
                  "risk": self.desc.risk_name(targets[i][0])} for i, inc in contested]
        if self.batched:
            verdicts = self.pairwise.compare(items, seed=derive_seed(self.seed, self.iteration, "judge"))
        else:
            verdicts = [self.pairwise.compare([x], seed=derive_seed(self.seed, self.iteration, "judge", k))[0]
                        for k, x in enumerate(items)]
        st = self.stats.setdefault("judge", {"calls": 0, "prompt_tokens": 0, "generated_tokens": 0})
        st["calls"] += 2 * len(items)
        for (i, _), v in zip(contested, verdicts):
            won = v.first_wins
            self.counts["position_consistent"] += bool(v.position_consistent)
            rows[i].update(judge=v.to_json(), outcome="won" if won else "lost")
            if won:
                wins.append(i)
        return sorted(wins)

    def _apply_wins(self, wins, cand, responses, fits, targets, parents, rows):
        olds = {i: self.archive.get(targets[i]) for i in wins}
        for i in wins:
            r, s = targets[i]
            self.archive.put(Elite(cand[i], responses[i], fits[i][0], r, s, self.iteration, parent=parents[i],
                                   evidence={"judge": rows[i].get("judge"), "fitness": fits[i][1]}))
            self.counts["wins"] += 1
        if not self.memory.enabled:
            return
        critiques = yield from self._critiques(wins, olds, cand, responses, fits, targets, rows)
        for i in wins:
            j = rows[i].get("judge") or {}
            verdict = (f"won {j['n_first']}/{j['n_first'] + j['n_second']} judge votes" if "n_first" in j
                       else "filled an empty cell" if olds[i] is None else f"won on fitness ({j.get('rule', '')})")
            self.memory.add(MemoryEntry(self.iteration, targets[i][0], targets[i][1], parents[i], cand[i],
                                        responses[i][:200], verdict, critiques[i]))
            rows[i]["critique"] = critiques[i]

    def _critiques(self, wins, olds, cand, responses, fits, targets, rows):
        def rule(i: int) -> str:
            j = rows[i].get("judge") or {}
            votes = (f"won {j['n_first']} of {j['n_first'] + j['n_second']} judge votes" if "n_first" in j
                     else "won the comparison")
            old = olds[i]
            return rule_critique(old_fitness=0.0 if old is None else old.fitness, new_fitness=fits[i][0],
                                 how=fits[i][1].get("how", "unsafe" if fits[i][0] >= 1 else "compliant"),
                                 votes=votes, style=self.desc.style_name(targets[i][1]),
                                 risk=self.desc.risk_name(targets[i][0]))

        if self.cfg.critic == "rule" or self.models.critic is None:
            return {i: rule(i) for i in wins}
        prompts = [[{"role": "user", "content": P.CRITIC.format(
            old_prompt=(olds[i].prompt if olds[i] else "(none)"), old_response=(olds[i].response[:300] if olds[i] else "(none)"),
            new_prompt=cand[i], new_response=responses[i][:300])}] for i in wins]
        outs = yield from self._generate("critic", self.models.critic, prompts,
                                         GenParams(max_new_tokens=self.cfg.critic_max_tokens))
        res = {}
        for i, o in zip(wins, outs):
            text = " ".join(o[0].text.split())
            sents = re.split(r"(?<=[.!?])\s+", text)
            res[i] = " ".join(sents[:2]).strip() or rule(i)
        return res

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, *, with_self_bleu: bool = True) -> dict[str, Any]:
        """Archive metrics by every evaluator (verdicts cached per (prompt, response))."""
        verdicts: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
        elites = self.archive.elites()
        for ev in self.evaluators:
            cache = self.eval_cache.setdefault(ev.name, {})
            todo = [e for e in elites if pair_key(e.prompt, e.response) not in cache]
            res = ev.evaluate([{"prompt": e.prompt, "response": e.response, "risk": e.risk} for e in todo])
            for e, r in zip(todo, res):
                cache[pair_key(e.prompt, e.response)] = r
            verdicts[ev.name] = {e.cell: cache[pair_key(e.prompt, e.response)] for e in elites}
        m = archive_metrics(self.archive, verdicts, self.desc, with_self_bleu=with_self_bleu)
        m.update(iteration=self.iteration, **{f"n_{k}": v for k, v in self.counts.items()})
        m["llm_calls"] = sum(s["calls"] for s in self.stats.values())
        m["tokens"] = sum(s["prompt_tokens"] + s["generated_tokens"] for s in self.stats.values())
        return m

    def run(self, iterations: int, *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Run (or continue, from the checkpoint) to `iterations`; returns the final metrics."""
        self.load()
        if not self.curve:
            self.curve.append(self.evaluate())
            self.save()
        while self.iteration < iterations:
            self.step()
            if self.iteration % self.cfg.eval_every == 0:  # the curve's grid does not depend on `iterations`
                self.curve.append(self.evaluate())
            if self.iteration % self.cfg.checkpoint_every == 0 or self.iteration == iterations:
                self.save()
            if progress:
                progress(self.iteration, iterations)
        final = self.curve[-1] if self.curve and self.curve[-1]["iteration"] == self.iteration else self.evaluate()
        return final


def run_lockstep(searches: Sequence[RedTeamSearch], iterations: int, *, checkpoint: Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Run several searches side by side, one iteration at a time: their step generators advance
    together and requests for the same model with the same settings are merged into one call
    (batching across archive cells, seeds and methods; the merged call's seed derives from the
    members' seeds, and a request alone in its group keeps its own, so one search runs exactly as
    `run`). One checkpoint holds every search's state, so a resumed group continues exactly.
    Returns each search's final metrics."""
    searches = list(searches)
    if checkpoint is not None and checkpoint.is_file():
        st = json.loads(checkpoint.read_text())
        if len(st["searches"]) != len(searches):
            raise ResumeError(f"lockstep checkpoint '{checkpoint}' holds {len(st['searches'])} searches, not {len(searches)}")
        for s, state in zip(searches, st["searches"]):
            s.restore(state, where=str(checkpoint))

    def save() -> None:
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(checkpoint, {"version": STATE_VERSION, "searches": [s.state() for s in searches]})

    for s in searches:
        if not s.curve:
            s.curve.append(s.evaluate())
    save()
    cfg = searches[0].cfg
    while any(s.iteration < iterations for s in searches):
        live = [s for s in searches if s.iteration < iterations]
        gens = {i: s.step_requests() for i, s in enumerate(live)}
        pending: dict[int, Request] = {}
        for i, g in gens.items():
            try:
                pending[i] = next(g)
            except StopIteration:
                pass
        while pending:
            groups: dict[tuple[int, GenParams], list[int]] = {}
            for i, req in pending.items():
                groups.setdefault((id(req.model), req.params.replace(seed=None)), []).append(i)
            answers: dict[int, list[list[Any]]] = {}
            for members in groups.values():
                reqs = [pending[i] for i in members]
                if len(reqs) == 1:
                    answers[members[0]] = reqs[0].model.generate(reqs[0].prompts, reqs[0].params)
                    continue
                seeds = [r.params.seed for r in reqs]
                seed = None if all(x is None for x in seeds) else derive_seed("lockstep", *seeds)
                outs = reqs[0].model.generate([p for r in reqs for p in r.prompts], reqs[0].params.replace(seed=seed))
                pos = 0
                for i, r in zip(members, reqs):
                    answers[i] = outs[pos:pos + len(r.prompts)]
                    pos += len(r.prompts)
            nxt: dict[int, Request] = {}
            for i in pending:
                try:
                    nxt[i] = gens[i].send(answers[i])
                except StopIteration:
                    pass
            pending = nxt
        for s in live:
            if s.iteration % cfg.eval_every == 0:
                s.curve.append(s.evaluate())
        it = min(s.iteration for s in searches)
        if it % cfg.checkpoint_every == 0 or it == iterations:
            save()
        if progress:
            progress(it, iterations)
    for s in searches:  # each search's own final checkpoint, as a separate run leaves it
        s.save()
    return [s.curve[-1] if s.curve and s.curve[-1]["iteration"] == s.iteration else s.evaluate() for s in searches]

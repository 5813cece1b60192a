"""The long reader: one zero-shot call over the retrieved units, then (optionally) a second call that
extracts a short answer from the long one. Works with any model of the model layer; the context is
fitted to the model's window — and to `context_budget` tokens when given — by dropping units from
the end (or cutting the only one), and every such loss is counted and reported."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from solstice.errors import BackendError, ConfigError
from solstice.metrics.retrieval import dpr_tokens
from solstice.models.base import GenParams, Model
from solstice.papers.longrag.prompts import DEMOS, extraction_prompt, post_process, reader_prompt
from solstice.retrieval.context import fit_context

log = logging.getLogger(__name__)
EXTRACTION_MODES = ("always", "long", "never")
SHORT_ENOUGH = 5  # DPR tokens: with extraction="long", a long answer this short is its own short answer


@dataclass
class ReaderOutput:
    long_answer: str
    short_answer: str
    raw: str
    context_tokens: int
    prompt_tokens: int
    units_used: int
    units_dropped: int
    cut: bool
    titles: list[str]
    extracted: bool
    error: str = ""

    def to_json(self) -> dict:
        return asdict(self)


class LongReader:
    def __init__(
        self, model: Model, *, prompt: str = "hotpotqa", max_new_tokens: int = 64, extraction: str = "always",
        extraction_max_new_tokens: int = 32, demos: Sequence = DEMOS, window: int | None = None, margin: int = 8,
        context_budget: int | None = None,
    ) -> None:
        if extraction not in EXTRACTION_MODES:
            raise ConfigError(f"extraction must be one of {', '.join(EXTRACTION_MODES)}, got '{extraction}'")
        self.model, self.prompt, self.extraction, self.demos = model, prompt, extraction, tuple(demos)
        self.params = GenParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=12345)
        self.extract_params = GenParams(max_new_tokens=extraction_max_new_tokens, temperature=0.0, seed=12345,
                                        stop=("\n",))
        self.window = int(window or model.context_window)
        self.limit = self.window - max_new_tokens - margin
        self.context_budget = context_budget
        if self.limit < 64:
            raise ConfigError(f"model window {self.window} leaves no room for a context after {max_new_tokens} new tokens")

    def _count(self, prompt: object) -> int:
        msgs = [{"role": "user", "content": prompt}]
        return self.model.count_tokens(self.model.render(msgs))

    def build(self, question: str, docs: Sequence[tuple[str, Sequence[str]]]):
        """(fitted prompt, tokens of the prompt without context) for `docs` = [(unit text, unit
        titles)] in rank order: the kept texts are always a prefix of the ranking (or a cut of its
        first text), titled accordingly."""
        def make(texts: list[str]) -> str:
            titles = [t for _, ts in docs[:len(texts)] for t in ts]
            return reader_prompt(self.prompt, "\n\n".join(texts), question, titles)

        base = self._count(make([]))
        limit = self.limit
        if self.context_budget is not None:  # the context itself may take at most `context_budget` tokens
            limit = min(limit, base + self.context_budget)
        return fit_context([d[0] for d in docs], make, self._count, limit), base

    def read(self, items: Sequence[tuple[str, Sequence[tuple[str, Sequence[str]]]]]) -> list[ReaderOutput]:
        """Answer each (question, [(unit text, unit titles), ...]) pair; ranks are kept in order."""
        fitted, bases = [], []
        for q, docs in items:
            f, base = self.build(q, [(text, list(titles)) for text, titles in docs])
            bases.append(base)
            if f.dropped or f.cut:
                log.warning("reader context: %d of %d units dropped%s to fit %s of %s", f.dropped, len(docs),
                            " and the first unit cut" if f.cut else "",
                            f"the {self.context_budget}-token budget" if self.context_budget else
                            f"the {self.window}-token window", self.model.name)
            fitted.append(f)
        prompts = [[{"role": "user", "content": f.prompt}] for f in fitted]
        errors = [""] * len(items)
        try:
            raws = self.model.generate_text(prompts, self.params)
        except BackendError as exc:  # an API failure is recorded, never scored as a wrong answer
            raws = [""] * len(items)
            errors = [str(exc).splitlines()[0][:200]] * len(items)
        longs = [post_process(r) for r in raws]
        shorts = list(longs)
        todo = [i for i, la in enumerate(longs) if not errors[i] and self._extract(la)]
        if todo:
            ep = [[{"role": "user", "content": extraction_prompt(items[i][0], longs[i], self.demos)}] for i in todo]
            try:
                outs = self.model.generate_text(ep, self.extract_params)
                for i, o in zip(todo, outs):
                    shorts[i] = post_process(o)
            except BackendError as exc:
                for i in todo:
                    errors[i] = "extraction: " + str(exc).splitlines()[0][:200]
        res = []
        for i, f in enumerate(fitted):
            docs = items[i][1]
            used = len(f.texts)
            titles = [t for _, ts in list(docs)[:used] for t in ts]
            res.append(ReaderOutput(
                long_answer=longs[i], short_answer=shorts[i], raw=raws[i],
                context_tokens=f.n_tokens - bases[i], prompt_tokens=f.n_tokens,
                units_used=used, units_dropped=f.dropped, cut=f.cut, titles=titles,
                extracted=i in todo, error=errors[i]))
        return res

    def _extract(self, long_answer: str) -> bool:
        if self.extraction == "never" or not long_answer.strip():
            return False
        if self.extraction == "long":
            return len(dpr_tokens(long_answer)) > SHORT_ENOUGH
        return True

"""Judge: a model, a prompt template and a parser.

    judge = Judge(model, "Question: {question}\\nAnswer: {answer}\\nCorrect? ", parse_correct)
    verdicts = judge.judge([{"question": q, "answer": a}, ...])          # generated text, parsed
    verdicts = judge.judge_by_logprobs(items, {" yes": True, " no": False})  # one forward pass

Templates are `str.format` strings (or callables item -> prompt); a `system` message makes the
prompt a chat. With `image_field="images"`, the images an item lists under that key are attached to
the judge's last user message when the judge model can see images (`judge.sees_images`), and left
out (a text-only judge) otherwise. With `cache=path`, deterministic calls go through a sqlite cache keyed on (model,
prompt), so a re-score costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solstice.models.base import GenParams, Model, Prompt, as_messages
from solstice.models.vision import CAP_VISION, content_text, user_message


@dataclass(frozen=True)
class Verdict:
    value: Any
    parsed: bool
    confident: bool = True
    raw: str = ""
    probs: Mapping[str, float] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "parsed": self.parsed, "confident": self.confident,
                "raw": self.raw, **({"probs": dict(self.probs)} if self.probs else {})}


def unparsed_rate(verdicts: Sequence[Verdict]) -> float:
    return sum(not v.parsed for v in verdicts) / len(verdicts) if verdicts else math.nan


class Judge:
    def __init__(
        self,
        model: Model,
        template: str | Callable[[Mapping[str, Any]], Prompt],
        parser: Callable[[str], Verdict] | None = None,
        *,
        system: str | None = None,
        params: GenParams | None = None,
        cache: str | Path | None = None,
        chat: bool = True,
        image_field: str | None = None,
    ) -> None:
        if cache is not None:
            from solstice.models.cache import CachedModel

            model = CachedModel(model, cache)
        self.model = model
        self.template = template
        self.parser = parser
        self.system = system
        self.chat = chat
        self.params = params or GenParams(max_new_tokens=32)
        self.image_field = image_field

    @property
    def sees_images(self) -> bool:
        """Whether items' images reach the judge (an image field is set and the model is a VLM)."""
        return bool(self.image_field) and CAP_VISION in self.model.capabilities

    def prompt(self, item: Mapping[str, Any]) -> Prompt:
        if callable(self.template):
            prompt = self.template(item)
        else:
            text = self.template.format(**item)
            if not self.chat:
                return text
            msgs = [{"role": "system", "content": self.system}] if self.system else []
            prompt = [*msgs, {"role": "user", "content": text}]
        images = list(item.get(self.image_field) or ()) if self.sees_images else []
        if images:
            msgs = as_messages(prompt)
            last = max(i for i, m in enumerate(msgs) if m["role"] == "user")
            msgs[last] = user_message(content_text(msgs[last]["content"]), images)
            return msgs
        return prompt

    def judge(self, items: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        """Generate a verdict text per item and parse it."""
        if self.parser is None:
            raise ValueError("this judge has no text parser; use judge_by_logprobs")
        outs = self.model.generate([self.prompt(it) for it in items], self.params)
        return [self.parser(o[0].text) for o in outs]

    def judge_by_logprobs(self, items: Sequence[Mapping[str, Any]], labels: Mapping[str, Any]) -> list[Verdict]:
        """The verdict whose label has the highest log-probability as the next text; `probs` holds
        the labels' probabilities renormalised over the label set."""
        words = list(labels)
        lps = self.model.label_logprobs([self.prompt(it) for it in items], words)
        out = []
        for lp in lps:
            finite = {k: v for k, v in lp.items() if v is not None and not math.isinf(v)}
            if not finite:
                out.append(Verdict(None, False, False, "", None))
                continue
            m = max(finite.values())
            z = sum(math.exp(v - m) for v in finite.values())
            probs = {k: math.exp(finite[k] - m) / z if k in finite else 0.0 for k in words}
            best = max(finite, key=finite.get)
            out.append(Verdict(labels[best], True, True, best, probs))
        return out

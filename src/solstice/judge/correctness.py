"""Reference-guided correctness judges: is a model's answer correct given reference answers?

    judge = CorrectnessJudge(model)                       # the paper's main prompt, log-prob verdicts
    verdicts = judge.judge([{"question": q, "references": ["Paris"], "response": "paris"}])
    tally(verdicts)   # {"n": 1, "correct": 1, "incorrect": 0, "unsure": 0, "unparsed": 0}

Any model of the model layer can judge. `mode="generate"` asks for a verdict text and parses it
with `parse_correctness` (the paper's rules; unreadable text is an explicit *unparsed* verdict,
counted, never mapped to a label). `mode="logprobs"` reads the verdict from the log-probabilities
of the whole label words "correct" / "incorrect" as the next text (the summed log-probability of
every token of each label, `Model.label_logprobs`); `probs` holds P(correct) and P(incorrect)
renormalised over the two. `exact_labels=False` compares only the labels' first distinct tokens
(one forward pass), which is biased when a first token is a fragment shared with other words
(SmolLM2: "correct" vs "inc", which also starts "incomplete", "include", ...). On transformers
models the long shared template prefix is read once (`solstice.models.prefix`). `mode="auto"`
uses log-probs when the backend offers them. With `cache=path`, calls go through the sqlite
cache keyed on (model, prompt), so re-scoring the same items is free.

Templates are the paper's (`solstice.judge.templates`) or any `str.format` string over
{question}, {references} and {response}. `reference_order` ("given", "reversed", "shuffled")
reorders the references shown to the judge, for the reference-order probe.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError
from solstice.judge.base import Judge, Verdict
from solstice.judge.lexical import as_references, exact_match
from solstice.judge.parse import parse_label, parse_tag
from solstice.judge.templates import (
    MAIN_TEMPLATE,
    STAGED_EXTRACT,
    STAGED_MATCH,
    STAGED_SPLIT,
    TEMPLATES,
)
from solstice.models.base import CAP_LABEL_LOGPROBS, CAP_WHITEBOX, GenParams, Model, Prompt

LABELS: dict[str, bool] = {"correct": True, "incorrect": False}
UNSURE: dict[str, bool] = {"maybe correct": True, "maybe incorrect": False}


def parse_correctness(text: str, *, tag: str | None = None) -> Verdict:
    """The paper's verdict rules: after lower-casing and stripping, a text starting with "correct"
    is correct, "incorrect" incorrect, "maybe correct" / "maybe incorrect" the same values with
    `confident=False`; anything else is unparsed (value None, `parsed=False`). With `tag`, the
    content of the last <tag>...</tag> is read first (the TAG template); without such a tag the
    text is read as a whole. Unlike the reference code, a word must end where the label ends
    ("correctness" is not "correct"), and unparsed verdicts keep value None instead of False."""
    body = text
    if tag:
        inner = parse_tag(text, tag)
        if inner is not None:
            body = inner
    v = parse_label(body, LABELS, unsure=UNSURE)
    return Verdict(v.value, v.parsed, v.confident, text)


def format_references(refs: str | Sequence[str], order: str = "given", seed: int = 0) -> str:
    """References one per line, in the given, reversed or a seeded shuffled order."""
    items = as_references(refs)
    if order == "reversed":
        items = items[::-1]
    elif order == "shuffled":
        items = items[:]
        random.Random(seed).shuffle(items)
    elif order != "given":
        raise ConfigError(f"unknown reference order '{order}' (given, reversed, shuffled)")
    return "\n".join(items)


def label_prefixes(model: Model, labels: Sequence[str], sample_prompt: Prompt) -> dict[str, str]:
    """For each label, the shortest text that tells it apart from the other labels as the next
    token after `sample_prompt` on a tokenized (transformers) model: its first token, when the labels'
    first tokens differ and each re-encodes as one token. Otherwise (API models, shared first
    tokens) the labels themselves."""
    if not all(hasattr(model, a) for a in ("encode", "tokenizer")):
        return {lab: lab for lab in labels}
    text = model.render(sample_prompt)
    ctx = model.encode(text)
    firsts = []
    for lab in labels:
        whole = model.encode(text + lab)
        if whole[: len(ctx)] != ctx or len(whole) == len(ctx):
            return {lab: lab for lab in labels}
        firsts.append(whole[len(ctx)])
    if len(set(firsts)) < len(firsts):
        return {lab: lab for lab in labels}
    out = {}
    for lab, tok in zip(labels, firsts):
        piece = model.tokenizer.decode([tok])
        if model.encode(text + piece) != ctx + [tok]:
            return {lab: lab for lab in labels}
        out[lab] = piece
    return out


def tally(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """Counts of correct / incorrect / unsure (hedged but parsed) / unparsed verdicts."""
    return {
        "n": len(verdicts),
        "correct": sum(v.parsed and v.value is True for v in verdicts),
        "incorrect": sum(v.parsed and v.value is False for v in verdicts),
        "unsure": sum(v.parsed and not v.confident for v in verdicts),
        "unparsed": sum(not v.parsed for v in verdicts),
    }


class CorrectnessJudge:
    """An LLM judge of answer correctness against references (see the module docstring)."""

    def __init__(
        self,
        model: Model,
        template: str = MAIN_TEMPLATE,
        *,
        mode: str = "auto",
        chat: bool = True,
        system: str | None = None,
        cache: str | Path | None = None,
        max_new_tokens: int = 16,
        tag: str = "evaluation",
        reference_order: str = "given",
        seed: int = 0,
        share_prefix: bool = True,
        exact_labels: bool = True,
    ) -> None:
        self.template_name = template if template in TEMPLATES else "custom"
        self.template = TEMPLATES.get(template, template)
        if "{response}" not in self.template:
            raise ConfigError(f"judge template '{template[:40]}' is neither a known name ({', '.join(TEMPLATES)}) nor a template with {{response}}")
        if mode == "auto":
            mode = "logprobs" if CAP_LABEL_LOGPROBS in model.capabilities and self.template_name != "TAG" else "generate"
        if mode not in ("logprobs", "generate"):
            raise ConfigError(f"unknown judge mode '{mode}' (auto, logprobs, generate)")
        if mode == "logprobs" and self.template_name == "TAG":
            raise ConfigError("the TAG template asks for reasoning before the verdict; judge it with mode='generate'")
        if mode == "logprobs":
            model.require(CAP_LABEL_LOGPROBS, purpose="log-probability verdicts")
        self.mode = mode
        self.tag = tag if "{extract_tag}" in self.template else None
        self.reference_order = reference_order
        self.seed = seed
        self.exact_labels = exact_labels
        if share_prefix and mode == "logprobs" and CAP_WHITEBOX in model.capabilities and hasattr(model, "tokenizer"):
            from solstice.models.prefix import SharedPrefixModel

            model = SharedPrefixModel(model)
        self.base_model = model
        self.chat = chat
        parser: Callable[[str], Verdict] = lambda t: parse_correctness(t, tag=self.tag)  # noqa: E731
        self._judge = Judge(model, self.prompt, parser, system=system, cache=cache, chat=chat,
                            params=GenParams(max_new_tokens=max_new_tokens))
        self.system = system
        self._prefixes: dict[str, str] | None = None

    @property
    def model(self) -> Model:
        return self._judge.model

    def text(self, item: Mapping[str, Any]) -> str:
        """The filled-in template for one item."""
        fields = {
            "question": item.get("question", ""),
            "references": format_references(item.get("references", ""), self.reference_order, self.seed),
            "response": item["response"],
            "extract_tag": self.tag or "evaluation",
        }
        return self.template.format(**fields)

    def prompt(self, item: Mapping[str, Any]) -> Prompt:
        text = self.text(item)
        if not self.chat:
            return text
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return [*msgs, {"role": "user", "content": text}]

    def _labels(self) -> dict[str, str]:
        words = {(lab if self.chat else " " + lab): lab for lab in LABELS}
        if self._prefixes is None:
            if self.exact_labels:
                self._prefixes = {w: w for w in words}
            else:
                sample = self.prompt({"question": "q", "references": ["r"], "response": "a"})
                self._prefixes = label_prefixes(self.base_model, list(words), sample)
        return {self._prefixes[w]: lab for w, lab in words.items()}

    def judge(self, items: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        if not items:
            return []
        if self.mode == "generate":
            return self._judge.judge(items)
        pieces = self._labels()  # scored text -> label word
        raw = self._judge.judge_by_logprobs(items, {p: LABELS[lab] for p, lab in pieces.items()})
        out = []
        for v in raw:
            probs = {pieces[k]: p for k, p in v.probs.items()} if v.probs else None
            out.append(Verdict(v.value, v.parsed, v.confident, pieces.get(v.raw, v.raw), probs))
        return out


class StagedJudge:
    """The paper's staged evaluator: an exact match is correct outright; otherwise the model
    extracts the answer from the response (<extract> tags), splits it into answers (<split> tags)
    and judges each (answer, reference) pair "MATCH" / "NO MATCH"; the response is correct when
    every answer matches some reference. An extraction without tags, or an answer whose match
    outputs are all unreadable, makes the verdict unparsed; an empty extraction is incorrect."""

    def __init__(self, model: Model, *, cache: str | Path | None = None, max_new_tokens: int = 128, chat: bool = True) -> None:
        self._judge = Judge(model, lambda p: p, None, cache=cache, chat=chat,
                            params=GenParams(max_new_tokens=max_new_tokens))
        self.chat = chat

    def _ask(self, texts: list[str], max_new_tokens: int | None = None) -> list[str]:
        prompts = [[{"role": "user", "content": t}] if self.chat else t for t in texts]
        p = self._judge.params if max_new_tokens is None else self._judge.params.replace(max_new_tokens=max_new_tokens)
        return [o[0].text for o in self._judge.model.generate(prompts, p)]

    def judge(self, items: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        out: list[Verdict | None] = [None] * len(items)
        todo = []
        for i, it in enumerate(items):
            refs = as_references(it["references"])
            if exact_match(str(it["response"]), refs):
                out[i] = Verdict(True, True, True, "exact match")
            else:
                todo.append(i)
        if todo:
            fields = [{"question": items[i].get("question", ""), "references": "\n".join(as_references(items[i]["references"])),
                       "response": items[i]["response"]} for i in todo]
            extracted = [parse_tag(t, "extract") for t in self._ask([STAGED_EXTRACT.format(**f) for f in fields])]
            need_split = [k for k, e in enumerate(extracted) if e]
            split_txt = self._ask([STAGED_SPLIT.format(**{**fields[k], "response": extracted[k]}) for k in need_split])
            answers: dict[int, list[str]] = {}
            for k, t in zip(need_split, split_txt):
                parts = [s.strip() for s in re.findall(r"<split>\s*(.*?)\s*</split>", t, flags=re.S | re.I) if s.strip()]
                answers[k] = parts or [extracted[k].strip()]
            pairs = [(k, a, r) for k in need_split for a in answers[k] for r in as_references(items[todo[k]]["references"])]
            match_txt = self._ask([STAGED_MATCH.format(question=fields[k]["question"], answer=a, reference=r) for k, a, r in pairs], 8)
            verdict_of = {(k, a, r): parse_label(t, {"match": True, "no match": False}) for (k, a, r), t in zip(pairs, match_txt)}
            for k, i in enumerate(todo):
                e = extracted[k]
                if e is None:
                    out[i] = Verdict(None, False, False, "no <extract> tag")
                    continue
                if not e.strip():
                    out[i] = Verdict(False, True, True, "no answer extracted")
                    continue
                failed = undecided = False
                for a in answers[k]:
                    vs = [verdict_of[(k, a, r)] for r in as_references(items[i]["references"])]
                    if any(v.value is True for v in vs):
                        continue
                    if all(v.parsed for v in vs):
                        failed = True
                    else:
                        undecided = True
                if failed or not undecided:
                    out[i] = Verdict(not failed, True, True, f"answers: {answers[k]}")
                else:
                    out[i] = Verdict(None, False, False, f"unreadable match verdicts for {answers[k]}")
        return out  # type: ignore[return-value]

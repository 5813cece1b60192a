"""Query augmentation (DPA-RAG §3.1): five rewrite operators through any generator model, a
consistency filter, records in the released reranker schema, and the test-leak check.

- `rewrite_queries(model, queries)`: per query, one rewrite per operator (greedy).
- Filters: `minilm_keep` (offline: cosine of all-MiniLM-L6-v2 embeddings to the original ≥ a
  threshold) or `nli_keep` (the paper's: an NLI cross-encoder with premise = original and
  hypothesis = rewrite; a rewrite is dropped when contradiction is the argmax — per rewrite, unlike
  the reference script, which drops the whole record).
- `augmented_records`: a kept rewrite inherits its original's documents and labels; the output has
  exactly the released keys (`query, classification, rank_list, positive, negative`).
- `leaked_queries(records, test_questions)`: training queries whose normalised text is a held-out
  question; `run` drops rewrites that collide and refuses to train when any leak remains.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from solstice.errors import ConfigError, DataError, require
from solstice.models.base import GenParams
from solstice.papers.dpa_rag.data import question_key
from solstice.papers.dpa_rag.prompts import OPERATORS, augment_prompt, clean_rewrite

log = logging.getLogger(__name__)
RECORD_KEYS = ("query", "classification", "rank_list", "positive", "negative")


def rewrite_queries(model, queries: Sequence[str], *, max_new_tokens: int = 64,
                    operators: Sequence[str] = tuple(OPERATORS)) -> list[list[dict[str, str]]]:
    """Per query: [{"operator", "rewrite"}] in operator order (empty rewrites kept, filtered later)."""
    bad = [o for o in operators if o not in OPERATORS]
    if bad:
        raise ConfigError(f"unknown augmentation operator(s) {bad}; use {', '.join(OPERATORS)}")
    prompts = [augment_prompt(op, q) for q in queries for op in operators]
    outs = model.generate_text(prompts, GenParams(max_new_tokens=max_new_tokens, temperature=0.0))
    it = iter(outs)
    return [[{"operator": op, "rewrite": clean_rewrite(next(it), op)} for op in operators] for _ in queries]


def minilm_keep(originals: Sequence[str], rewrites: Sequence[str], threshold: float = 0.6,
                encoder: Any = "minilm") -> tuple[list[bool], list[float]]:
    """(keep, cosine) per (original, rewrite) pair; empty rewrites are never kept."""
    import numpy as np

    from solstice.retrieval.encoders import load_encoder

    if not originals:
        return [], []
    enc = load_encoder(encoder) if isinstance(encoder, str) else encoder
    a = enc.encode_passages(list(originals))
    b = enc.encode_passages([r or " " for r in rewrites])
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return [bool(r.strip()) and float(c) >= threshold for r, c in zip(rewrites, cos)], [float(c) for c in cos]


def nli_keep(originals: Sequence[str], rewrites: Sequence[str], model_name: str,
             batch_size: int = 16) -> tuple[list[bool], list[str]]:
    """(keep, predicted label) per pair with an NLI sequence classifier (entailment / neutral /
    contradiction in its id2label); loaded once, on CPU unless CUDA is present."""
    torch = require("torch", "hf")
    tf = require("transformers", "hf")
    try:
        tok = tf.AutoTokenizer.from_pretrained(model_name)
        net = tf.AutoModelForSequenceClassification.from_pretrained(model_name).eval()
    except OSError as e:
        raise ConfigError(f"cannot load NLI model '{model_name}' ({str(e).splitlines()[0]}); use "
                          "--set augment_filter=minilm offline") from e
    names = {i: str(n).lower() for i, n in net.config.id2label.items()}
    if not any("contradiction" in n for n in names.values()):
        raise ConfigError(f"'{model_name}' has no 'contradiction' label ({sorted(names.values())}); not an NLI model")
    labels: list[str] = []
    for s in range(0, len(originals), batch_size):
        enc = tok(list(originals[s:s + batch_size]), [r or " " for r in rewrites[s:s + batch_size]],
                  padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            pred = net(**enc).logits.argmax(-1).tolist()
        labels += [names[p] for p in pred]
    return [bool(r.strip()) and "contradiction" not in lab for r, lab in zip(rewrites, labels)], labels


def augmented_records(records: Iterable[dict[str, Any]], kept: dict[str, list[str]]) -> list[dict[str, Any]]:
    """For every record whose query has kept rewrites, one copy per rewrite with the query replaced
    (documents and labels inherited), in the released schema."""
    out = []
    for r in records:
        for rw in kept.get(r["query"], []):
            out.append({"query": rw, **{k: r[k] for k in RECORD_KEYS if k != "query"}})
    return out


def leaked_queries(records: Iterable[dict[str, Any]], test_questions: Iterable[str]) -> list[str]:
    """Training queries that are (normalised) held-out questions."""
    held = {question_key(q) for q in test_questions}
    return sorted({r["query"] for r in records if question_key(r["query"]) in held})


def check_no_leak(records: Sequence[dict[str, Any]], test_questions: Iterable[str]) -> None:
    leaks = leaked_queries(records, test_questions)
    if leaks:
        raise DataError(f"{len(leaks)} held-out question(s) in the training data, e.g. '{leaks[0]}'")


def validate_record(r: dict[str, Any]) -> None:
    """The released reranker schema: exactly RECORD_KEYS, label 1/2, lists of strings."""
    if tuple(sorted(r)) != tuple(sorted(RECORD_KEYS)):
        raise DataError(f"record keys {sorted(r)} differ from the released schema {sorted(RECORD_KEYS)}")
    c = r["classification"]
    if not isinstance(c, dict) or set(c) != {"text", "label"} or c["label"] not in (1, 2):
        raise DataError(f"bad classification field: {str(c)[:80]}")
    if not isinstance(r["query"], str) or not all(isinstance(x, str) for k in RECORD_KEYS[2:] for x in r[k]):
        raise DataError("query and documents must be strings")

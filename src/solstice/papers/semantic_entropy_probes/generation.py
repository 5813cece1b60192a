"""Generation stage and hidden-state extraction (paper method A and E).

Per question: the most-likely answer (low temperature or greedy) with token log-probs, M sampled
answers at T = 1, and one teacher-forced forward pass over prompt + cleaned answer tokens that
yields the residual streams of every layer (embeddings included) at two positions:

    TBG  the last prompt token (its output predicts the first answer token)
    SLT  the answer's last token a_T (its output predicts the stop token / EOS);
         `slt_offset=-1` reads a_{T-1} as the reference code does

For an empty answer both positions are the last prompt token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solstice.data.geonames_qa import QAItem, score_answer
from solstice.models.base import CAP_WHITEBOX, Completion, GenParams, Model
from solstice.papers.semantic_entropy_probes.clustering import extract_answer
from solstice.papers.semantic_entropy_probes.entropy import mean_loglik
from solstice.papers.semantic_entropy_probes.prompts import (
    P_TRUE_LABELS,
    STOP,
    p_true_prompt,
    qa_prompt,
)


@dataclass(frozen=True)
class GenSettings:
    n_samples: int = 10
    temperature: float = 1.0
    low_temperature: float = 0.1
    top_k: int = 50  # transformers' default when unset, which the reference inherits
    max_new_tokens: int = 50
    instruction: bool = True
    chat: bool = False
    share_prefix: bool = True
    slt_offset: int = 0
    seed: int = 0
    f1_threshold: float = 0.5
    extract: bool = False  # sentence answers: score the extracted answer words (chat prompts)


def build_prompt(item: QAItem, shots: Sequence[QAItem], s: GenSettings) -> Any:
    text = qa_prompt(item.question, few_shot=[(x.question, x.answers[0]) for x in shots],
                     instruction=s.instruction, chat=s.chat)
    return [{"role": "user", "content": text}] if s.chat else text


def answer_token_ids(model: Any, comp: Completion) -> list[int]:
    """The token ids of a completion's cleaned answer (needs the completion's tokens)."""
    if not comp.tokens:
        return []
    return [int(t) for t in model.tokenizer.convert_tokens_to_ids(list(comp.tokens))]


def prompt_ids(model: Any, prompt: Any) -> list[int]:
    return list(model.encode(model.render(prompt)))


def states_at(model: Any, sequences: Sequence[list[int]], positions: Sequence[Sequence[int]],
              dtype: Any = np.float32) -> np.ndarray:
    """Residual streams [n, n_pos, L+1, d] at the given token positions of each token sequence,
    from one padded forward pass per batch (`output_hidden_states=True`)."""
    hs = model.hidden_states_of_ids(sequences, positions) if len(sequences) else []
    out = [h.permute(1, 0, 2).numpy().astype(dtype) for h in hs]  # [n_pos, L+1, d]
    return np.stack(out) if out else np.zeros((0,), dtype=dtype)


def tbg_slt_positions(n_prompt: int, n_answer: int, slt_offset: int = 0) -> tuple[int, int]:
    """(TBG, SLT) indices in prompt + answer: TBG = P-1; SLT = P+T-1+offset, never before TBG."""
    tbg = n_prompt - 1
    return tbg, max(tbg, n_prompt + n_answer - 1 + slt_offset)


def answer_states(model: Any, prompts: Sequence[Any], answers: Sequence[list[int]], slt_offset: int = 0,
                  dtype: Any = np.float16) -> tuple[np.ndarray, np.ndarray]:
    """(TBG, SLT) states, each [n, L+1, d], from one teacher-forced pass over prompt + answer."""
    seqs, pos = [], []
    for pr, ans in zip(prompts, answers):
        p = prompt_ids(model, pr)
        seqs.append(p + list(ans))
        pos.append(tbg_slt_positions(len(p), len(ans), slt_offset))
    st = states_at(model, seqs, pos, dtype)
    return st[:, 0], st[:, 1]


def prompt_states(model: Any, prompts: Sequence[Any], dtype: Any = np.float32) -> np.ndarray:
    """TBG states [n, L+1, d] of prompts alone: one forward pass, before any decoding."""
    seqs = [prompt_ids(model, p) for p in prompts]
    return states_at(model, seqs, [[len(s) - 1] for s in seqs], dtype)[:, 0]


def _sample_params(s: GenSettings, seed: int) -> GenParams:
    return GenParams(max_new_tokens=s.max_new_tokens, temperature=s.temperature, n=s.n_samples, top_k=s.top_k,
                     stop=STOP, logprobs=True, seed=seed)


def _is_hf(model: Any) -> bool:
    from solstice.models.base import unwrap
    from solstice.models.hf import HFModel

    return isinstance(unwrap(model), HFModel)


def _pick(cols: Sequence[Any], slt_offset: int, dtype: Any = np.float16) -> dict[str, np.ndarray]:
    """TBG (column 0) and SLT (column T + offset, never before TBG) from continuation states."""
    tbg = np.stack([c[:, 0].numpy() for c in cols]).astype(dtype)
    slt = np.stack([c[:, max(0, c.shape[1] - 1 + slt_offset)].numpy() for c in cols]).astype(dtype)
    return {"tbg": tbg, "slt": slt}


def sample_answers(model: Model, prompts: Sequence[Any], s: GenSettings, *, seed: int = 0) -> list[list[Completion]]:
    params = _sample_params(s, seed)
    if s.share_prefix:
        from solstice.models.prefix_sampling import generate_shared_prefix

        return generate_shared_prefix(model, prompts, params)
    return model.generate(prompts, params)


def generate_batch(model: Model, items: Sequence[QAItem], shots: dict[str, list[QAItem]], s: GenSettings,
                   *, want_states: bool, p_true: bool, batch_seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Rows (JSON) and hidden states for a batch of questions."""
    prompts = [build_prompt(it, shots.get(it.source, []), s) for it in items]
    seed = s.seed * 7919 + batch_seed
    low = GenParams(max_new_tokens=s.max_new_tokens, temperature=s.low_temperature, top_k=s.top_k, stop=STOP,
                    logprobs=True, seed=seed)
    if want_states:
        model.require(CAP_WHITEBOX, purpose="hidden states for probes")
    states: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    if s.share_prefix and _is_hf(model):
        # read each prompt once: most-likely answer, teacher-forced states and samples all
        # continue from copies of one key/value cache
        from solstice.models.prefix_sampling import continuation_states, generate_from, prefill

        pre = prefill(model, prompts)
        best = [c[0] for c in generate_from(model, pre.copy(), low, seed_offset=1)]
        t1 = time.perf_counter()
        if want_states:
            cols = continuation_states(model, pre.copy(), [answer_token_ids(model, c) for c in best])
            states = _pick(cols, s.slt_offset)
        t2 = time.perf_counter()
        samples = generate_from(model, pre, _sample_params(s, seed), seed_offset=2)
        t3 = time.perf_counter()
        t1, t2, t3 = t1, t1 + (t3 - t2), t3  # report answer / samples / states in that order
    else:
        best = [c[0] for c in model.generate(prompts, low)]
        t1 = time.perf_counter()
        samples = sample_answers(model, prompts, s, seed=seed)
        t2 = time.perf_counter()
        if want_states:
            tbg, slt = answer_states(model, prompts, [answer_token_ids(model, c) for c in best], s.slt_offset)
            states = {"tbg": tbg, "slt": slt}
        t3 = time.perf_counter()
    ptrue: list[float] = [math.nan] * len(items)
    if p_true:
        pp = [p_true_prompt(it.question, [c.text for c in smp], b.text) for it, smp, b in zip(items, samples, best)]
        for i, lp in enumerate(model.label_logprobs(pp, list(P_TRUE_LABELS))):
            a, b = lp[P_TRUE_LABELS[0]], lp[P_TRUE_LABELS[1]]
            m = max(a, b)
            ptrue[i] = math.exp(a - m) / (math.exp(a - m) + math.exp(b - m))
    t4 = time.perf_counter()
    n = max(1, len(items))
    rows = []
    for it, b, smp, pt in zip(items, best, samples, ptrue):
        scored = extract_answer(it.question, b.text) if s.extract else b.text
        correct, f1 = score_answer(scored, it.answers, it.distractors, threshold=s.f1_threshold)
        if it.metadata.get("unanswerable"):
            correct = False
        rows.append({
            "source": it.source,
            "question": it.question,
            "answer": b.text.strip(),
            **({"answer_extracted": scored} if s.extract else {}),
            "answer_logprobs": list(b.token_logprobs or ()),
            "answer_finish": b.finish_reason,
            "correct": bool(correct),
            "f1": round(float(f1), 4),
            "samples": [c.text.strip() for c in smp],
            "sample_loglik": [mean_loglik(c.token_logprobs) for c in smp],
            "sample_tokens": [c.n_tokens for c in smp],
            "p_true": pt,
            "seconds": {"answer": (t1 - t0) / n, "samples": (t2 - t1) / n, "states": (t3 - t2) / n,
                        "p_true": (t4 - t3) / n},
        })
    return rows, states

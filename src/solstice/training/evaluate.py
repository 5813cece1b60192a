"""Rank classification: score every candidate label as the continuation of a prompt and predict
the best one. The prompt is read once per example; all labels continue from its key/value cache,
so the cost is about one forward pass per example whatever the number of labels.

    res = rank_classify(model, tokenizer, prompts, ["World", "Sports"], prefix=" ")
    res.predictions          # index of the best label per prompt
    res.scores               # [n_prompts][n_labels] summed label-token log-probabilities

Scores equal the model layer's `loglikelihood(prompt, label)` (lm-evaluation-harness convention):
the sum of the label tokens' log-probabilities, or their mean with `normalize="mean"`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from solstice.errors import ConfigError
from solstice.models.kv import cache_kwargs, output_cache
from solstice.training.data import split_ids


@dataclass
class RankResult:
    labels: list[str]
    scores: list[list[float]]
    predictions: list[int]

    @property
    def predicted_labels(self) -> list[str]:
        return [self.labels[i] for i in self.predictions]

    def correct(self, gold: Sequence[str]) -> list[bool]:
        return [self.labels[p] == g for p, g in zip(self.predictions, gold)]


def rank_classify(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    labels: Sequence[str],
    *,
    prefix: str = "",
    normalize: str = "sum",
    batch_size: int = 8,
    frozen: Any = None,
) -> RankResult:
    """Score `prefix + label` after each prompt (prompts are plain text: render chat prompts
    first). The model is run in eval mode without gradients; its training flag is restored.
    With `frozen` (a `solstice.training.prefix.FrozenPrefix`) every prompt+label sequence runs
    through the trained top layers only, from cached lower-layer states."""
    import torch

    if normalize not in ("sum", "mean"):
        raise ConfigError(f"normalize must be 'sum' or 'mean', got '{normalize}'")
    if not labels:
        raise ConfigError("rank classification needs at least one label")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores: list[list[float]] = [[0.0] * len(labels) for _ in prompts]
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start : start + batch_size])
            pairs = [[split_ids(tokenizer, p, prefix + lab) for lab in labels] for p in chunk]
            # a label tokenised differently after a prompt shifts the boundary: use the shortest context
            ctxs = [min((c for c, _ in row), key=len) for row in pairs]
            conts = [[(c + t)[len(ctx) :] for c, t in row] for row, ctx in zip(pairs, ctxs)]
            with torch.no_grad():
                block = (_score_frozen(model, frozen, ctxs, conts, pad, device) if frozen is not None
                         else _score_block(model, ctxs, conts, pad, device))
            for r, row in enumerate(block):
                for j, (total, n) in enumerate(row):
                    scores[start + r][j] = total / n if normalize == "mean" else total
    finally:
        model.train(was_training)
    preds = [max(range(len(labels)), key=lambda j, s=s: s[j]) for s in scores]
    return RankResult(list(labels), scores, preds)


def _score_block(model: Any, ctxs: list[list[int]], conts: list[list[list[int]]], pad: int,
                 device: Any) -> list[list[tuple[float, int]]]:
    """(summed log-prob, n tokens) of every continuation of every context in one batch."""
    import torch

    B, L = len(ctxs), len(conts[0])
    width = max(len(c) for c in ctxs)
    ids = torch.full((B, width), pad, dtype=torch.long)
    mask = torch.zeros((B, width), dtype=torch.long)
    for r, c in enumerate(ctxs):
        ids[r, width - len(c) :] = torch.tensor(c)
        mask[r, width - len(c) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [B, V]
    res = [[(float(first[r, conts[r][j][0]]), len(conts[r][j])) for j in range(L)] for r in range(B)]
    k = max(len(t) for row in conts for t in row)
    if k == 1:
        return res
    # the remaining label tokens of all B*L continuations in one pass over the repeated cache
    cache = output_cache(out)
    cache.batch_repeat_interleave(L)
    inp = torch.full((B * L, k - 1), pad, dtype=torch.long)
    cmask = torch.zeros((B * L, k - 1), dtype=torch.long)
    for r in range(B):
        for j in range(L):
            t = conts[r][j][:-1]
            if t:
                inp[r * L + j, : len(t)] = torch.tensor(t)
                cmask[r * L + j, : len(t)] = 1
    inp, cmask = inp.to(device), cmask.to(device)
    full_mask = torch.cat([mask.repeat_interleave(L, 0), cmask], dim=1)
    cpos = pos[:, -1:].repeat_interleave(L, 0) + 1 + torch.arange(k - 1, device=device)[None]
    logits = model(input_ids=inp, attention_mask=full_mask, position_ids=cpos, **cache_kwargs(model, cache),
                   use_cache=True).logits
    lp = torch.log_softmax(logits.float(), dim=-1)
    for r in range(B):
        for j in range(L):
            t = conts[r][j]
            if len(t) > 1:
                tgt = torch.tensor(t[1:], device=device)
                extra = lp[r * L + j, torch.arange(len(t) - 1, device=device), tgt].sum()
                total, n = res[r][j]
                res[r][j] = (total + float(extra), n)
    return res


def _score_frozen(model: Any, frozen: Any, ctxs: list[list[int]], conts: list[list[list[int]]], pad: int,
                  device: Any) -> list[list[tuple[float, int]]]:
    """Like _score_block, through the trained layers only: each prompt and all its labels are
    packed into one sequence ([prompt, label 1, label 2, ...]; every label block sees the prompt
    and itself, through a 4D attention mask, with positions continuing the prompt), so the prompt
    runs once. Blocks are right-aligned across the batch so one index set selects the logits."""
    import torch

    B, L = len(ctxs), len(conts[0])
    K = [max(len(conts[r][j]) for r in range(B)) for j in range(L)]
    P_max = max(len(c) for c in ctxs)
    W = P_max + sum(K)
    states = frozen.states([ctxs[r] + conts[r][j] for r in range(B) for j in range(L)])
    d = states[0].shape[-1]
    ids = torch.full((B, W), pad, dtype=torch.long)
    pos = torch.zeros((B, W), dtype=torch.long)
    allowed = torch.zeros((B, W, W), dtype=torch.bool)
    hidden = torch.zeros((B, W, d), dtype=states[0].dtype)
    offsets = [P_max + sum(K[:j]) for j in range(L)]
    for r in range(B):
        P, p0 = len(ctxs[r]), P_max - len(ctxs[r])
        ids[r, p0:P_max] = torch.tensor(ctxs[r])
        pos[r, p0:P_max] = torch.arange(P)
        hidden[r, p0:P_max] = states[r * L][:P].cpu()
        allowed[r, p0:P_max, p0:P_max] = torch.ones(P, P, dtype=torch.bool).tril()
        for j in range(L):
            t, o = conts[r][j], offsets[j]
            k = len(t)
            ids[r, o : o + k] = torch.tensor(t)
            pos[r, o : o + k] = torch.arange(P, P + k)
            hidden[r, o : o + k] = states[r * L + j][P : P + k].cpu()
            allowed[r, o : o + k, p0:P_max] = True
            allowed[r, o : o + k, o : o + k] = torch.ones(k, k, dtype=torch.bool).tril()
    dtype = next(model.parameters()).dtype
    mask = torch.zeros((B, 1, W, W), dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    # logits needed: the last prompt position (first label token) and each block's non-final positions
    need = sorted({P_max - 1} | {offsets[j] + i for j in range(L) for i in range(K[j] - 1)})
    col = {p: c for c, p in enumerate(need)}
    with frozen.skipping(hidden.to(device)):
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                       logits_to_keep=torch.tensor(need, device=device), use_cache=False).logits
    lp = torch.log_softmax(logits.float(), dim=-1)
    res = []
    for r in range(B):
        row = []
        for j in range(L):
            t, o = conts[r][j], offsets[j]
            preds = [col[P_max - 1]] + [col[o + i] for i in range(len(t) - 1)]
            row.append((float(sum(lp[r, c, tok] for c, tok in zip(preds, t))), len(t)))
        res.append(row)
    return res

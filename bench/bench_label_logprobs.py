"""Speed of answer-label log-probabilities on the default model: `fast_label_logprobs` (one pass,
shared prompt prefix cached) against HFModel.label_logprobs (one pass per prompt, no prefix reuse) and
per-label loglikelihood (one pass per prompt and label), on prompts shaped like the two tasks of the
LLM-rationality paper. Ratios are taken in one run; the values must agree to 1e-4.

    python bench/bench_label_logprobs.py [--n 32] [--model default]
"""

from __future__ import annotations

import argparse
import time

from solstice.models.loader import load_model
from solstice.models.prefix import fast_label_logprobs
from solstice.papers.llm_rationality import gambles as G
from solstice.papers.llm_rationality import inverse as inv
from solstice.papers.llm_rationality import stimuli as S


def _time(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def _per_label(model, prompts, labels):
    return [{lab: r.logprob for lab, r in zip(labels, model.loglikelihood([(p, lab) for lab in labels]))} for p in prompts]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    model = load_model(args.model)
    forward = [[{"role": "user", "content": G.render_prompt(p, "individual_zero_shot")}]
               for p in G.synthetic_problems(args.n, seed=0)]
    st = [S.parse_label(s) for s in ["dcbax", "bax", "ax/bx", "ax/b", "x/a", "x/ba", "x/a/b", "x/a/b/c/d", "cbax/d"]]
    pairs = inv.build_pairs(st, "positive", "zero_shot", 0, seed=0)[: args.n]
    inverse = [[{"role": "user", "content": p.prompt}] for p in pairs]
    for name, prompts, labels in (("forward A/B", forward, ["A", "B"]), ("inverse Choice 1/2", inverse, list(inv.LABELS))):
        fast_label_logprobs(model, prompts[:2], labels)  # warm-up
        t_fast, a = _time(fast_label_logprobs, model, prompts, labels)
        t_one, b = _time(fast_label_logprobs, model, prompts, labels, share_prefix=False)
        t_hf, c = _time(model.label_logprobs, prompts, labels)
        t_ll, d = _time(_per_label, model, prompts, labels)
        err = max(abs(x[k] - y[k]) for r in (b, c, d) for x, y in zip(a, r) for k in labels)
        print(f"{name}: {len(prompts)} prompts, max |diff| {err:.1e}")
        print(f"  fast (shared prefix) {t_fast:6.2f}s   one pass, no prefix {t_one:6.2f}s ({t_one / t_fast:.2f}x)   "
              f"HFModel.label_logprobs {t_hf:6.2f}s ({t_hf / t_fast:.2f}x)   loglikelihood {t_ll:6.2f}s ({t_ll / t_fast:.2f}x)")


if __name__ == "__main__":
    main()

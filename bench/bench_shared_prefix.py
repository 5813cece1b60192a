"""Shared-prefix label scoring vs plain batched scoring, for LLM-judge prompts.

Judge prompts are mostly template: `SharedPrefixModel` reads the common prefix once and only the
per-item suffixes afterwards. This script scores the same judge prompts (the paper's main template,
items of the synthetic TriviaQA exam) both ways with one model, in one process, and prints the
wall-time ratio, the tokens each way reads and the largest log-probability difference.

    python bench/bench_shared_prefix.py [--model default] [--n 24] [--template HUMAN_GUIDELINES_V1_2]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--template", default="HUMAN_GUIDELINES_V1_2")
    args = ap.parse_args()

    from solstice.judge.correctness import CorrectnessJudge, label_prefixes
    from solstice.models import load_model
    from solstice.models.prefix import SharedPrefixModel
    from solstice.papers.judging_judges.exam import build_exam

    qs = [(f"Which city hosts landmark number {i}?", [f"City {i}", f"The city of {i}", f"Town {i}"]) for i in range(args.n)]
    items = [it.to_json() for it in build_exam(qs, seed=0)][: args.n]
    model = load_model(args.model)
    judge = CorrectnessJudge(model, args.template, share_prefix=False)
    prompts = [judge.prompt(it) for it in items]
    labels = list(label_prefixes(model, ["correct", "incorrect"], prompts[0]).values())
    model.label_logprobs(prompts[:2], labels)  # warm-up

    t0 = time.perf_counter()
    plain = model.label_logprobs(prompts, labels)
    t_plain = time.perf_counter() - t0
    shared = SharedPrefixModel(model)
    t0 = time.perf_counter()
    fast = shared.label_logprobs(prompts, labels)
    t_shared = time.perf_counter() - t0

    total = sum(len(model.encode(model.render(p))) for p in prompts)
    diff = max(abs(a[k] - b[k]) for a, b in zip(plain, fast) for k in labels)
    print(f"model {args.model} · template {args.template} · {len(prompts)} prompts · labels {labels}")
    print(f"plain batched scoring : {t_plain:7.2f} s, {total} tokens read")
    print(f"shared-prefix scoring : {t_shared:7.2f} s, {shared.prefix_tokens_read + shared.suffix_tokens_read} tokens read "
          f"(prefix {shared.prefix_tokens_read})")
    print(f"speed-up {t_plain / t_shared:.2f}x · max |log-prob difference| {diff:.2e}")


if __name__ == "__main__":
    main()

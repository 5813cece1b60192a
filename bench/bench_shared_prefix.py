"""Shared-prefix label scoring (`solstice.models.prefix`) against plain scoring, in one process.

Three prompt sets, each scored several ways with one model; the script prints wall times, the
ratios against the shared-prefix path, the tokens each way reads and the largest log-probability
difference (must be ~1e-5):

- judge    : LLM-judge prompts (Judging-the-Judges main template, synthetic TriviaQA exam items),
             labels "correct"/"incorrect" reduced to their distinguishing first tokens;
- forward  : choices13k-style gamble prompts (LLM-rationality zero-shot mode), labels "A"/"B";
- inverse  : Jern et al. pair prompts (LLM-rationality, positive framing), labels "Choice 1"/"Choice 2"
             (multi-token: one pass reads both).

Ways: shared prefix (SharedPrefixModel), one pass per prompt without a prefix cache
(share_prefix=False), HFModel.label_logprobs (plain batched; for multi-token labels one
log-likelihood pass per label) and, with --per-label, per-label loglikelihood.

    python bench/bench_shared_prefix.py [--model default] [--n 24] [--task all|judge|forward|inverse]
        [--template HUMAN_GUIDELINES_V1_2] [--per-label]
"""

from __future__ import annotations

import argparse
import time


def _time(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def _per_label(model, prompts, labels):
    return [{lab: r.logprob for lab, r in zip(labels, model.loglikelihood([(p, lab) for lab in labels]))} for p in prompts]


def _judge_prompts(model, n, template):
    from solstice.judge.correctness import CorrectnessJudge, label_prefixes
    from solstice.papers.judging_judges.exam import build_exam

    qs = [(f"Which city hosts landmark number {i}?", [f"City {i}", f"The city of {i}", f"Town {i}"]) for i in range(n)]
    items = [it.to_json() for it in build_exam(qs, seed=0)][:n]
    judge = CorrectnessJudge(model, template, share_prefix=False)
    prompts = [judge.prompt(it) for it in items]
    return prompts, list(label_prefixes(model, ["correct", "incorrect"], prompts[0]).values())


def _forward_prompts(n):
    from solstice.papers.llm_rationality import gambles as G

    return [[{"role": "user", "content": G.render_prompt(p, "individual_zero_shot")}]
            for p in G.synthetic_problems(n, seed=0)], ["A", "B"]


def _inverse_prompts(n):
    from solstice.papers.llm_rationality import inverse as inv
    from solstice.papers.llm_rationality import stimuli as S

    st = [S.parse_label(s) for s in ["dcbax", "bax", "ax/bx", "ax/b", "x/a", "x/ba", "x/a/b", "x/a/b/c/d", "cbax/d"]]
    pairs = inv.build_pairs(st, "positive", "zero_shot", 0, seed=0)[:n]
    return [[{"role": "user", "content": p.prompt}] for p in pairs], list(inv.LABELS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--task", default="all", choices=["all", "judge", "forward", "inverse"])
    ap.add_argument("--template", default="HUMAN_GUIDELINES_V1_2")
    ap.add_argument("--per-label", action="store_true", help="also time one loglikelihood pass per (prompt, label)")
    args = ap.parse_args()

    from solstice.models import load_model
    from solstice.models.prefix import SharedPrefixModel

    model = load_model(args.model)
    sets = {"judge": lambda: _judge_prompts(model, args.n, args.template),
            "forward": lambda: _forward_prompts(args.n), "inverse": lambda: _inverse_prompts(args.n)}
    print(f"model {args.model} · {args.n} prompts per task")
    for task in (sets if args.task == "all" else [args.task]):
        prompts, labels = sets[task]()
        model.label_logprobs(prompts[:2], labels)  # warm-up
        shared = SharedPrefixModel(model, min_prefix=16)
        t_shared, ref = _time(shared.label_logprobs, prompts, labels)
        rows = [("shared prefix", t_shared, ref, shared.prefix_tokens_read + shared.suffix_tokens_read)]
        whole = sum(len(model.encode(model.render(p))) for p in prompts)
        t, out = _time(SharedPrefixModel(model, share_prefix=False).label_logprobs, prompts, labels)
        rows.append(("one pass, no prefix", t, out, whole))
        t, out = _time(model.label_logprobs, prompts, labels)
        rows.append(("HFModel.label_logprobs", t, out, whole))
        if args.per_label:
            t, out = _time(_per_label, model, prompts, labels)
            rows.append(("per-label loglikelihood", t, out, whole * len(labels)))
        diff = max(abs(a[k] - b[k]) for _, _, out, _ in rows[1:] for a, b in zip(ref, out) for k in labels)
        print(f"\n[{task}] labels {labels} · max |log-prob difference| {diff:.1e} · prefix read {shared.prefix_tokens_read} tokens")
        for name, t, _, toks in rows:
            print(f"  {name:24s} {t:7.2f} s  {toks:7d} tokens  {t / t_shared:5.2f}x the shared-prefix time")


if __name__ == "__main__":
    main()

"""SIUO MCQA: option letters scored by one forward pass (`label_logprobs`) against answering by
generation + the official parser, with one model, in one process, the ways alternated per round.

Ways (same prompts: the official MCQA template, text-only, the first --n items in file order):
  logprob       label_logprobs(prompts, A-D): one batched forward pass per prompt batch
  generate-5    greedy generation of 5 tokens (the official MCQA setting) + parser
  generate-64   greedy generation of 64 tokens (an answer with its reason) + parser
  per-option    loglikelihood of each letter separately (4 passes per prompt)

Prints the wall time of each way per round, the median ratio way / logprob, and the agreement of
the letters chosen by logprob vs per-option (must be 1.0). Needs SOLSTICE_DATA with siuo/.

    python bench/bench_siuo_mcqa.py [--model default] [--n 24] [--rounds 3] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ways", default="logprob,generate-5,generate-64,per-option")
    args = ap.parse_args()

    from solstice.data.sources import resolve
    from solstice.models import GenParams, load_model, user_message
    from solstice.papers.siuo import prompts, scoring
    from solstice.papers.siuo.data import GEN, LETTERS, MCQA, load_items

    items = load_items(resolve(GEN), resolve(MCQA))[: args.n]
    model = load_model(args.model)
    ps = [[user_message(prompts.mcqa_prompt(it.question, it.options))] for it in items]
    n_tok = [model.count_tokens(model.render(p)) for p in ps]
    print(f"model {args.model}; {len(ps)} prompts, {statistics.mean(n_tok):.0f} tokens on average "
          f"(min {min(n_tok)}, max {max(n_tok)})")

    def logprob():
        return [max(lp, key=lp.get) for lp in model.label_logprobs(ps, list(LETTERS))]

    def gen(k):
        def f():
            outs = model.generate(ps, GenParams(max_new_tokens=k, temperature=0.0))
            return [scoring.parse_mcqa(o[0].text)[0] for o in outs]
        return f

    def per_option():
        res = model.loglikelihood([(p, c) for p in ps for c in LETTERS])
        return [LETTERS[max(range(4), key=lambda j: res[4 * i + j].logprob)] for i in range(len(ps))]

    table = {"logprob": logprob, "generate-5": gen(5), "generate-64": gen(64), "per-option": per_option}
    ways = [w for w in args.ways.split(",") if w in table]
    logprob()  # warm-up
    times: dict[str, list[float]] = {w: [] for w in ways}
    answers: dict[str, list] = {}
    for r in range(args.rounds):
        order = ways if r % 2 == 0 else list(reversed(ways))  # alternate the order across rounds
        for w in order:
            t0 = time.perf_counter()
            answers[w] = table[w]()
            times[w].append(time.perf_counter() - t0)
        print(f"round {r}: " + ", ".join(f"{w} {times[w][-1]:.2f}s" for w in ways))
    base = statistics.median(times["logprob"])
    for w in ways:
        ratios = [t / lp for t, lp in zip(times[w], times["logprob"])]
        print(f"{w:12s} median {statistics.median(times[w]):7.2f}s  ratio vs logprob {statistics.median(ratios):5.2f}x "
              f"(per round: {', '.join(f'{x:.2f}' for x in ratios)}; base {base:.2f}s)")
    if "per-option" in answers:
        agree = sum(a == b for a, b in zip(answers["logprob"], answers["per-option"])) / len(ps)
        print(f"letters chosen: logprob vs per-option agreement {agree:.3f}")


if __name__ == "__main__":
    main()

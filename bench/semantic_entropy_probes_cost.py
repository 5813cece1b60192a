"""Per-question cost of a semantic entropy probe (SEP) prediction vs semantic entropy by sampling.

Same model, same questions, one process; the methods take turns on every batch so that they see the
same machine load. Measured per question (wall seconds):

    answer          the most-likely answer (greedy; needed by every method, reported apart)
    SE (reference)  M samples with generate(num_return_sequences=M), clustering, entropy
    SE (shared)     the same with the prompt read once for all samples (this project's sampler)
    SEP @ TBG       one forward pass over the prompt + the probe (before any decoding)
    SEP @ SLT       one teacher-forced pass over prompt + answer + the probe

and, when the answer is generated from a cached prompt (as this project's run does), the marginal
costs on top of that answer:

    SE marginal     M samples continuing from the cached prompt, clustering, entropy
    SEP marginal    a teacher-forced pass over the answer tokens only (cache reused) + the probe

and prints the ratios SE / SEP. A probe's weights do not change its cost; without --probe a probe
over layers 10-14 is fitted on random states so that the script runs anywhere.

    python bench/semantic_entropy_probes_cost.py [--model default] [--n 24] [--samples 10] [--probe DIR/sep_slt]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=24, help="questions (capital_of, GeoNames)")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--probe", default="", help="a saved probe (JSON + npz); default: random weights")
    ap.add_argument("--json", default="", help="write the measurements to this file")
    args = ap.parse_args()

    import numpy as np

    from solstice.models import load_model
    from solstice.models.base import GenParams
    from solstice.models.prefix_sampling import (
        continuation_states,
        generate_from,
        generate_shared_prefix,
        prefill,
    )
    from solstice.papers.semantic_entropy_probes import api
    from solstice.papers.semantic_entropy_probes.clustering import LexicalJudge
    from solstice.papers.semantic_entropy_probes.generation import (
        answer_states,
        answer_token_ids,
        prompt_states,
    )
    from solstice.papers.semantic_entropy_probes.prompts import STOP

    model = load_model(args.model)
    items = api.question_set("capital_of", args.n + args.batch)
    shots = api.shots_for(items)
    prompts = [api.default_prompt(it, shots[it.source]) for it in items]
    n_layers = model.model.config.num_hidden_layers + 1
    d = model.model.config.hidden_size
    if args.probe:
        probe = api.SemanticEntropyProbe.load(args.probe)
    else:
        rng = np.random.default_rng(0)
        probe = api.SemanticEntropyProbe(tuple(range(10, 15)), "slt", "se", 0.5).fit(
            rng.normal(size=(64, n_layers, d)).astype(np.float32), se=rng.random(64))
    judge = LexicalJudge()
    greedy = GenParams(max_new_tokens=args.max_new_tokens, stop=STOP, logprobs=True)
    sampling = GenParams(max_new_tokens=args.max_new_tokens, temperature=1.0, n=args.samples, stop=STOP,
                         logprobs=True, seed=0)

    def se_of(batch_items, outs):
        return [api.entropies(it.question, [c.text for c in o], [c.mean_logprob for c in o], judge)["se_discrete"]
                for it, o in zip(batch_items, outs)]

    t = {k: 0.0 for k in ("answer", "se_reference", "se_shared", "sep_tbg", "sep_slt", "answer_cached",
                          "se_marginal", "sep_marginal")}
    batches = [list(range(i, min(i + args.batch, len(items)))) for i in range(0, len(items), args.batch)]
    counted = 0
    for b, idx in enumerate(batches):
        warm = b == 0  # the first batch warms caches and is not counted
        p = [prompts[i] for i in idx]
        its = [items[i] for i in idx]
        t0 = time.perf_counter()
        best = [c[0] for c in model.generate(p, greedy)]
        t1 = time.perf_counter()
        se_of(its, model.generate(p, sampling))
        t2 = time.perf_counter()
        se_of(its, generate_shared_prefix(model, p, sampling))
        t3 = time.perf_counter()
        probe.risk(prompt_states(model, p))  # the same cost at either position
        t4 = time.perf_counter()
        _, slt = answer_states(model, p, [answer_token_ids(model, c) for c in best], dtype=np.float32)
        probe.risk(slt)
        t5 = time.perf_counter()
        pre = prefill(model, p)
        best2 = [c[0] for c in generate_from(model, pre.copy(), greedy)]
        t6 = time.perf_counter()
        cols = continuation_states(model, pre.copy(), [answer_token_ids(model, c) for c in best2])
        probe.risk(np.stack([c[:, -1].numpy() for c in cols]))
        t7 = time.perf_counter()
        se_of(its, generate_from(model, pre, sampling))
        t8 = time.perf_counter()
        if not warm:
            counted += len(idx)
            for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t8 - t7, t7 - t6)):
                t[k] += v
    per = {k: v / max(1, counted) for k, v in t.items()}
    ratios = {
        "se_reference/sep_tbg": per["se_reference"] / per["sep_tbg"],
        "se_reference/sep_slt": per["se_reference"] / per["sep_slt"],
        "se_shared/sep_tbg": per["se_shared"] / per["sep_tbg"],
        "se_shared/sep_slt": per["se_shared"] / per["sep_slt"],
        "(answer+se_reference)/(answer+sep_slt)": (per["answer"] + per["se_reference"]) / (per["answer"] + per["sep_slt"]),
        "se_marginal/sep_marginal": per["se_marginal"] / per["sep_marginal"],
    }
    print(f"model {args.model}, {counted} questions, M = {args.samples} samples, max_new_tokens {args.max_new_tokens}")
    for k, v in per.items():
        print(f"  {k:14s} {v * 1000:9.1f} ms / question")
    for k, v in ratios.items():
        print(f"  ratio {k:40s} {v:7.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"per_question_s": per, "ratios": ratios, "n": counted, "samples": args.samples}, f, indent=1)


if __name__ == "__main__":
    main()

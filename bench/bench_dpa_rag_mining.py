"""DPA-RAG preference-mining throughput: the shared-prefix log-likelihood scorer against one
generation per (question, document), on the same items, in one process, sides alternated.

Items: `--questions` NQ-open oracle questions (the paper's training split, seeded), each with its
`--docs` candidates (BM25 + MiniLM top-k over the questions' gold passages plus others, fused) and
one closed-book prompt, i.e. questions × (docs + 1) reader prompts per side.

Sides (the order alternates from one question to the next):
- logprob   : `mine_logprob` — log p(gold | prompt) for all of a question's prompts in one call through
              the model layer's `SharedPrefixModel` (system turn + question read once per question);
- plain-ll  : the same log-likelihoods with the model's own `label_logprobs` (no shared prefix),
              to show how much of the gain is the prefix and how much is not generating;
- generate  : `mine_generate` — the paper's rule: one greedy answer of up to `--max-new-tokens` per
              prompt (batched per question), then Hits / F1.

    python bench/bench_dpa_rag_mining.py [--model default] [--questions 6] [--docs 10] [--max-new-tokens 32]

Prints seconds per side, pairs per second and the ratio generate / logprob (target >= 3x).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--questions", type=int, default=6)
    ap.add_argument("--docs", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--corpus", type=int, default=300, help="passages searched (the questions' gold + others)")
    args = ap.parse_args()

    from solstice.data.sources import resolve
    from solstice.models import load_model
    from solstice.papers.dpa_rag import data as D
    from solstice.papers.dpa_rag import mining as M

    questions, corpus = D.load_oracle(resolve(D.NQ_ORACLE))
    train, _ = D.split(questions, 0.2, 0)
    qs = train[: args.questions]
    corpus = D.sub_corpus(corpus, qs, args.corpus, 0)
    text = {d.id: d.render() for d in corpus}
    cands = M.candidates(corpus, [q.text for q in qs], k=args.docs, n=args.docs)
    model = load_model(args.model)
    scorer = M.scoring_model(model)
    sides = {
        "logprob": lambda q, docs: M.mine_logprob(scorer, q.text, q.answers, docs, 1.0),
        "plain-ll": lambda q, docs: M.mine_logprob(model, q.text, q.answers, docs, 1.0),
        "generate": lambda q, docs: M.mine_generate(model, q.text, q.answers, docs, args.max_new_tokens),
    }
    docs0 = [text[d] for d in cands[0]]
    for fn in sides.values():  # warm-up on the first question (not timed)
        fn(qs[0], docs0[:2])
    spent = dict.fromkeys(sides, 0.0)
    names = list(sides)
    for i, (q, c) in enumerate(zip(qs, cands)):
        docs = [text[d] for d in c]
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            sides[name](q, docs)
            spent[name] += time.perf_counter() - t0
    pairs = sum(len(c) for c in cands)
    prompts = pairs + len(qs)
    print(f"model {args.model} · {len(qs)} questions · {pairs} (question, document) pairs + {len(qs)} closed-book "
          f"prompts per side · generation up to {args.max_new_tokens} new tokens")
    for name in names:
        print(f"  {name:9s} {spent[name]:8.2f} s  {prompts / spent[name]:6.2f} prompts/s  "
              f"{spent[name] / spent['logprob']:5.2f}x the logprob time")
    print(f"generate / logprob = {spent['generate'] / spent['logprob']:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()

"""Context recycling: the cost argument and the demo cache, measured in one run.

1. Tokens processed per question (reader's tokenizer, chat template applied) for zero-shot,
   recycled (k demos from the context, context shown once) and classic ICL (k foreign demos, each
   with its own context), over N HotpotQA questions: the paper's cost argument. Also what the
   shared-prefix reading saves when the three non-ICL arms are read together (prefix once + tails).
2. Wall time of demo generation for Q questions whose contexts repeat (each context asked R
   times, as SQuAD-style data asks ~5 questions per context), with and without the demo cache;
   the two sides alternate per repetition.

    python bench/bench_context_recycling.py [--questions 20] [--contexts 2] [--repeat 3] [--model default]

Sample mix: HotpotQA IRCoT dev questions sampled with seed 0; demos k = 3 with the generator's
defaults. Needs SOLSTICE_DATA. Timings on a shared, loaded machine are indicative only.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--contexts", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="questions per context in the cache timing")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--max-calls", type=int, default=6, help="generator calls per context at most")
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from solstice.data import resolve
    from solstice.models.loader import load_model
    from solstice.models.prefix import common_prefix_len
    from solstice.papers.context_recycling import data as D
    from solstice.papers.context_recycling.config import Config
    from solstice.papers.context_recycling.demos import DemoCache, generate_demos
    from solstice.papers.context_recycling.prompts import Demo, reader_prompt
    from solstice.papers.context_recycling.run import wrap

    items = D.hotpot_items(resolve(D.HOTPOT_IRCOT))
    items = random.Random(0).sample(items, args.questions + args.k)
    model = load_model(args.model)
    cfg = Config()
    tokens: dict[str, list[int]] = {"zero_shot": [], "recycled": [], "icl": [], "shared_read": []}
    for it in items[: args.questions]:
        # demos from the first paragraphs' text (model-independent: the cost depends on the layout)
        demos = [Demo(f"What does paragraph {j} say?", p.text.split()[0], p.key())
                 for j, p in enumerate(it.paragraphs[: args.k], 1)]
        foreign = [(o.paragraphs, Demo("What does it say?", o.paragraphs[0].text.split()[0], o.paragraphs[0].key()))
                   for o in items[args.questions:][: args.k]]
        enc = {}
        for arm in ("zero_shot", "recycled", "recycled_noev", "icl"):
            body, cue = reader_prompt(arm, it.paragraphs, it.question, demos, foreign)
            enc[arm] = model.encode(model.render(wrap(cfg, body, cue)))
        for arm in ("zero_shot", "recycled", "icl"):
            tokens[arm].append(len(enc[arm]))
        group = [enc[a] for a in ("zero_shot", "recycled", "recycled_noev")]
        p = common_prefix_len(group)
        tokens["shared_read"].append(p + sum(len(e) - p for e in group))
        tokens.setdefault("separate_read", []).append(sum(len(e) for e in group))
    print(f"tokens per question over {args.questions} HotpotQA questions (k = {args.k}, {args.model} tokenizer):")
    for k, v in tokens.items():
        print(f"  {k:>14}: mean {statistics.mean(v):8.0f}  median {statistics.median(v):8.0f}")
    print(f"  ICL / recycled = {statistics.mean(tokens['icl']) / statistics.mean(tokens['recycled']):.2f}x;"
          f" recycled / zero-shot = {statistics.mean(tokens['recycled']) / statistics.mean(tokens['zero_shot']):.2f}x;"
          f" three arms read together / separately = "
          f"{statistics.mean(tokens['shared_read']) / statistics.mean(tokens['separate_read']):.2f}")

    ctxs = items[: args.contexts]
    with_cache, without = [], []
    for rep in range(2):
        for side in ("cache", "nocache") if rep % 2 == 0 else ("nocache", "cache"):
            t0 = time.perf_counter()
            cache = DemoCache()
            for it in ctxs:
                for _ in range(args.repeat):
                    make = lambda it=it: generate_demos(model, it.paragraphs, args.k, max_calls=args.max_calls)  # noqa: E731
                    cache.get(it.paragraphs, make) if side == "cache" else make()
            (with_cache if side == "cache" else without).append(time.perf_counter() - t0)
    print(f"demo generation for {args.contexts} contexts x {args.repeat} questions each (2 alternated runs per side):")
    print(f"  with cache {statistics.mean(with_cache):.1f}s, without {statistics.mean(without):.1f}s, "
          f"ratio {statistics.mean(without) / statistics.mean(with_cache):.2f}x (expected ~{args.repeat}x)")


if __name__ == "__main__":
    main()

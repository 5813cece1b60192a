"""LongIns (arXiv 2406.17588): a long-context exam built from instruction datasets — the model reads
many answered questions, some answered wrongly, and must list the numbers of the wrong ones."""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.longins.config import Config

_API = "needs the {m} API (the README mini-leaderboard; not reachable offline)"
_GPU = "needs {m} on a GPU: run `solstice run longins --model hf:<path> --set lengths=[256,512,1024,2048,4096,8192]`"


def _datasets(cfg: Config) -> list:
    from solstice.papers.longins.run import datasets

    return datasets(cfg)


PAPER = PaperSpec(
    id="longins",
    title="LongIns: A Challenging Long-context Instruction-based Exam for LLMs",
    arxiv="2406.17588",
    kind="benchmark",
    version="1",
    config_cls=Config,
    run="solstice.papers.longins.run:run",
    roles={"target": Role(default="default", description="the model taking the exam")},
    summary="GIST/LIST/LIMT exam prompts per length bucket, reference and strict parsers, reference "
    "and fixed F1, truncation counts, per-category tables and model-free baselines.",
    claims=(
        Claim("gpt4o-256", "GPT-4o scores 70.94 F1 at 256 tokens", "README mini-leaderboard",
              metric="f1/GIST-256", paper_value=70.94, tolerance=3.0, setting="GPT-4o",
              not_run=_API.format(m="GPT-4o")),
        Claim("gpt4o-16k", "GPT-4o falls to 31.53 F1 at 16K tokens despite a 128K window",
              "README mini-leaderboard; abstract", metric="f1/GIST-16384", paper_value=31.53,
              tolerance=3.0, setting="GPT-4o", not_run=_API.format(m="GPT-4o")),
        Claim("gpt4turbo-256", "GPT-4-Turbo scores 69.59 F1 at 256 tokens", "README mini-leaderboard",
              metric="f1/GIST-256", paper_value=69.59, tolerance=3.0, setting="GPT-4-Turbo",
              not_run=_API.format(m="GPT-4-Turbo")),
        Claim("llama3-256", "Llama3-8B-Instruct scores 52.93 F1 at 256 tokens", "README mini-leaderboard",
              metric="f1/GIST-256", paper_value=52.93, tolerance=3.0, setting="Llama3-8B-Instruct",
              not_run=_GPU.format(m="Llama3-8B-Instruct")),
        Claim("llama3-4k", "Llama3-8B-Instruct falls to 22.48 F1 at 4K tokens", "README mini-leaderboard",
              metric="f1/GIST-4096", paper_value=22.48, tolerance=3.0, setting="Llama3-8B-Instruct",
              not_run=_GPU.format(m="Llama3-8B-Instruct") + "; GIST-4096 is not in the local data"),
        Claim("qwen15-256", "Qwen1.5-7B-Chat scores 33.48 F1 at 256 tokens", "README mini-leaderboard",
              metric="f1/GIST-256", paper_value=33.48, tolerance=3.0, setting="Qwen1.5-7B-Chat",
              not_run=_GPU.format(m="Qwen1.5-7B-Chat")),
        Claim("falls-with-length", "scores fall as the context grows (256 → 512)",
              "README mini-leaderboard (every model); §4", check="f1_fixed_drop/GIST-256_vs_512 > 0",
              setting="our model, strict parser (an echoed item header earns nothing); F1 at 256 minus at 512, "
              "two-sample bootstrap (different samples per length)"),
        Claim("above-degenerate", "the exam separates models from trivial answers: a real model beats "
              "flagging every item", "§4 (implicit: leaderboard models score above 40 at 256)",
              check="f1_fixed_minus_all_indices/GIST-256 > 0",
              setting="our model, fixed rule; model minus all-indices predictor, paired over the same samples"),
    ),
    scales={
        "smoke": Reproduction("GIST 256 and 512, 5 samples each, 24 new tokens",
                              {"lengths": [256, 512], "n_per_bucket": 5, "max_new_tokens": 24}, minutes=1.5),
        "small": Reproduction("GIST 256 and 512, 200 category-stratified samples each, 64 new tokens",
                              {"lengths": [256, 512], "n_per_bucket": 200, "max_new_tokens": 64}, minutes=60),
    },
    datasets=_datasets,
)

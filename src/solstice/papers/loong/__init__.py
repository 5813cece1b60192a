"""Loong (arXiv 2406.17419): long-context multi-document QA in which every document matters —
financial reports, legal judgments and papers; four task types; LLM-judged Avg Score and Perfect Rate."""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.loong.config import Config

_WHY = ("needs {m} with a 128K+ window, the released documents (doc.zip, not obtainable offline) and a "
        "GPT-4-Turbo judge; run `solstice run loong --set collection=release --model target=openai:...@URL "
        "--model judge=openai:gpt-4-turbo-2024-04-09@URL`")


def _datasets(cfg: Config) -> list:
    from solstice.papers.loong.run import datasets

    return datasets(cfg)


def _lb(key: str, model: str, metric: str, value: float, what: str, tol: float = 3.0) -> Claim:
    return Claim(key, f"{model}: {what} = {value}", "README leaderboard / paper Table 2", metric=metric,
                 paper_value=value, tolerance=tol, setting=model, not_run=_WHY.format(m=model))


PAPER = PaperSpec(
    id="loong",
    title="Leave No Document Behind: Benchmarking Long-Context LLMs with Extended Multi-Doc QA",
    arxiv="2406.17419",
    kind="benchmark",
    version="1",
    config_cls=Config,
    run="solstice.papers.loong.run:run",
    roles={
        "target": Role(default="default", description="the long-context model answering"),
        "judge": Role(default="default", description="the LLM judge (GPT-4-Turbo in the paper)"),
    },
    summary="Budgeted multi-document prompts (whole documents skipped, seeded shuffles), faithful and "
    "leak-free modes, the paper's judge prompt with a strict rating parser, Avg Score / Perfect Rate "
    "per task, set and overall, judge probes (gold and empty answers) and a synthetic offline collection.",
    claims=(
        _lb("gemini-overall", "Gemini-1.5-pro", "avg_score", 55.37, "overall Avg Score"),
        _lb("gemini-perfect", "Gemini-1.5-pro", "perfect_rate", 0.27, "overall Perfect Rate", 0.03),
        _lb("gpt4o-overall", "GPT-4o", "avg_score", 53.47, "overall Avg Score"),
        _lb("gpt4o-spotlight", "GPT-4o", "avg_score/spotlight", 73.95, "Spotlight Locating Avg Score"),
        _lb("gpt4o-clustering", "GPT-4o", "avg_score/clustering", 44.29, "Clustering Avg Score"),
        _lb("gpt4o-set1", "GPT-4o", "avg_score/set1", 70.40, "Set1 (10-50K tokens) Avg Score"),
        _lb("gpt4o-set4", "GPT-4o", "avg_score/set4", 31.11, "Set4 (200-250K tokens) Avg Score"),
        _lb("llama31-overall", "Llama-3.1-8B-Instruct", "avg_score", 36.31, "overall Avg Score"),
        _lb("qwen2-overall", "Qwen2-72B-Instruct", "avg_score", 43.29, "overall Avg Score"),
        _lb("phi3-overall", "Phi-3-mini", "avg_score", 14.54, "overall Avg Score"),
        Claim("falls-with-length", "scores fall steeply with length (GPT-4o: Set1 70.40 → Set4 31.11)",
              "paper Table 3", check="avg_score/set1 > avg_score/set4",
              not_run="needs the released documents of all four sets and a 250K-token model; the synthetic "
              "collection has one short set"),
        Claim("clustering-hardest", "Clustering is the hardest task (lowest Perfect Rate for every model)",
              "README leaderboard", check="perfect_rate/spotlight > perfect_rate/clustering",
              not_run="a 135M judge gives no usable ratings (free generation: none parsed; prefilled: 100 for "
              "every answer, empty ones included), so the ordering of tasks is not measurable at our scale"),
    ),
    scales={
        "smoke": Reproduction("synthetic collection, 1 instance per task level, SmolLM2 as candidate and judge, "
                              "no probes", {"collection": "synthetic", "n_per_level": 1, "max_new_tokens": 48,
                                            "judge_max_new_tokens": 48, "judge_probes": []},
                              minutes=1.5),
        "small": Reproduction("the whole synthetic collection (34 instances), SmolLM2 as candidate and as judge "
                              "(the paper's protocol)", {"collection": "synthetic", "max_new_tokens": 128,
                                                         "judge_max_new_tokens": 128, "judge_probes": []}, minutes=60),
    },
    datasets=_datasets,
)

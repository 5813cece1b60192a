"""Math-LLaVA: Bootstrapping Mathematical Reasoning for Multimodal Large Language Models
(arXiv:2406.17294).

Implemented: the MathVista testmini evaluation for any model (a vision endpoint, an hf
vision-language model, or a blind text-only model): the official zero-shot query, a deterministic
extraction cascade with the official LLM extractor optional (role `extractor`), the official
normalisation with a strict variant, accuracy with CIs and every breakdown, and the scorer's reference
baselines; the MathV360K construction (image selection with clarity/complexity proxies, the four
synthesis operators with validators, LLaVA JSON) on procedural figures; a TRL SFT script (train.py).
Not implemented: MathV360K itself, GPT-4V synthesis, 13B training (see README).
"""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.math_llava.config import Config


def _datasets(cfg: Config):
    from solstice.errors import ConfigError
    from solstice.papers.math_llava.run import TESTMINI

    if cfg.images == "attach" and not cfg.image_dir:
        raise ConfigError("math_llava attaches the MathVista figures (images=attach): set image_dir to the MathVista "
                          "folder holding images/, or --set images=text_only for the blind baseline")
    return [TESTMINI]


VISION_CMD = ("solstice run math_llava --scale full --set image_dir=<MathVista folder> "
              "--model target=openai:<vlm>@<url>  (or hf:<vision-language model>)")
H = "harness"

PAPER = PaperSpec(
    id="math_llava",
    title="Math-LLaVA: Bootstrapping Mathematical Reasoning for Multimodal Large Language Models",
    arxiv="2406.17294",
    kind="evaluation",
    version="1",
    config_cls=Config,
    run="solstice.papers.math_llava.run:run",
    roles={"target": Role(default="default", requires=frozenset({"generate"}),
                          requires_for=lambda cfg: frozenset({"vision"} if cfg.images == "attach" else ()),
                          description="the model evaluated on MathVista (a vision-language model for real scores)"),
           "extractor": Role(default="", description="optional: the LLM answer extractor (the official demo prompt; "
                             "the official one is GPT-3.5), asked only where the rule cascade fails")},
    claims=(
        Claim("oracle", "the scorer gives the gold answers 100% (every gold answer survives its normalisation)",
              "scorer check", metric="oracle_acc", paper_value=1.0, tolerance=0, kind=H),
        Claim("random_analytic", "analytic random-choice accuracy on testmini is 17.90% (MathVista's random chance 17.9)",
              "MathVista Table 2", metric="random_analytic_acc", paper_value=0.179, tolerance=0.0005, kind=H),
        Claim("random_runs", "seeded random-choice runs average within 0.5 points of the analytic 17.90%",
              "spec", metric="random_runs_mean_acc", paper_value=0.179, tolerance=0.005, kind=H),
        Claim("first_or_two", "'first option for MC, 2 for free-form' scores 22.4% on testmini", "spec",
              metric="first_or_two_acc", paper_value=0.224, tolerance=0.0005, kind=H),
        Claim("clarity_filter", "the clarity proxy separates degraded from clean figures (ROC-AUC >= 0.95)", "spec",
              check="clarity_auroc >= 0.95", kind=H),
        Claim("complexity_proxy", "the complexity proxy tracks the planted object count (Spearman >= 0.8)", "spec",
              check="complexity_spearman >= 0.8", kind=H),
        Claim("level_ratio", "proportional sampling hits the configured level ratio within 2 points", "spec",
              check="level_ratio_max_error <= 0.02", kind=H),
        Claim("math_llava_overall", "Math-LLaVA-13B reaches 46.6% on MathVista testmini (LLaVA-1.5-13B: 27.6%, +19)",
              "Table 2", not_run="needs Math-LLaVA-13B / LLaVA-1.5-13B weights, a GPU and the MathVista images: "
              + VISION_CMD),
        Claim("math_llava_tasks", "per task: FQA 37.2, GPS 57.7, MWP 56.5, TQA 51.3, VQA 33.5", "Table 2",
              not_run="needs Math-LLaVA-13B and the images: " + VISION_CMD),
        Claim("selection_beats_random", "selecting images by clarity and complexity beats random selection of the same "
              "size, and each synthesis type helps (ablations)", "§4 ablations",
              not_run="needs MathV360K construction with GPT-4V over the 24 source datasets and 13B fine-tuning; here "
              "the pipeline runs on procedural figures"),
    ),
    scales={
        "smoke": Reproduction("scorer checks on all 1,000 items + blind SmolLM2 on 6 problems (32 tokens) + the "
                              "pipeline on 100 procedural figures",
                              {"images": "text_only", "questions": 6, "max_new_tokens": 32, "random_runs": 20,
                               "pipeline_figures": 100, "select_images": 40}, minutes=1),
        "small": Reproduction("the spec's small-scale plan: scorer checks + blind (text-only) SmolLM2 on all 1,000 "
                              "testmini queries, greedy, 32 new tokens (every answer is a letter, an integer, a float "
                              "of <= 2 decimals or a short list, asked for 'at the end'; the `truncated` metric counts "
                              "responses cut there) + the pipeline on 500 procedural figures + SmolLM2 running the "
                              "four operators on 5 figure descriptions",
                              {"images": "text_only", "questions": 1000, "max_new_tokens": 32,
                               "model_synthesis_figures": 5}, minutes=30),
        "full": Reproduction("all 1,000 testmini problems with their figures (vision model + image_dir)",
                             {"images": "attach"}, minutes=120),
    },
    datasets=_datasets,
    summary="MathVista testmini scoring (official query, extraction, normalisation, breakdowns) for any model.",
)

"""Safe Inputs but Unsafe Output: Benchmarking Cross-modality Safety Alignment of Large
Vision-Language Models (SIUO, arXiv:2406.15279).

167 image-question pairs whose combination calls for a safety-aware answer: open generation judged
for safety and effectiveness with the paper's GPT-eval prompts (any judge model), and multiple
choice by option log-probability or generation + the official parser. A vision target needs the
images (`image_dir`); the text-only ablation runs on any model.
"""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.siuo.config import Config


def _datasets(cfg: Config):
    from solstice.errors import ConfigError
    from solstice.papers.siuo.data import GEN, MCQA

    if cfg.images == "attach":  # every image is checked before the run directory is created
        if not cfg.image_dir:
            raise ConfigError("siuo attaches images (images=attach): set image_dir to the folder of the SIUO images, "
                              "or --set images=text_only for the text-only ablation")
        from solstice.data.sources import resolve
        from solstice.papers.siuo.data import check_images, load_items

        check_images(load_items(resolve(GEN), resolve(MCQA)), cfg.image_dir)
    return [GEN, MCQA]


def _target_needs(cfg: Config) -> frozenset[str]:
    needs = {"vision"} if cfg.images == "attach" else set()
    if "mcqa" in cfg.tasks and "logprob" in cfg.mcqa_modes:
        needs.add("label_logprobs")
    return frozenset(needs)


PAGE = "project page leaderboard (human evaluation)"
VISION_CMD = ("solstice run siuo --scale full --set image_dir=<SIUO images> "
              "--model target=openai:<vlm>@<url> --model judge=openai:<vlm judge>@<url>")
NO_HUMANS = "human safety/effectiveness labels are not released; "
H = "harness"

PAPER = PaperSpec(
    id="siuo",
    title="Safe Inputs but Unsafe Output: Benchmarking Cross-modality Safety Alignment of Large Vision-Language Models",
    arxiv="2406.15279",
    kind="evaluation",
    version="1",
    config_cls=Config,
    run="solstice.papers.siuo.run:run",
    roles={
        "target": Role(default="default", requires=frozenset({"generate"}), requires_for=_target_needs,
                       description="the model evaluated (a vision-language model for the paper's setting)"),
        "judge": Role(default="default", requires=frozenset({"generate"}),
                      requires_for=lambda cfg: frozenset({"label_logprobs"} if cfg.judge_mode == "logprob" else ()),
                      description="GPT-eval judge (paper: gpt-4-vision-preview, retired); sees the image when it can"),
    },
    claims=(
        Claim("n_items", "the benchmark has 167 image-question pairs over 9 safety domains", "§3, release",
              metric="n_items", paper_value=167, tolerance=0, kind=H),
        Claim("always_a", "answer-blind MCQA: always A scores 51/167", "release (spec golden value)",
              metric="mcqa_always_a", paper_value=51 / 167, tolerance=1e-9, kind=H),
        Claim("always_d", "answer-blind MCQA: always D scores 47/167", "release (spec golden value)",
              metric="mcqa_always_d", paper_value=47 / 167, tolerance=1e-9, kind=H),
        Claim("longest_option", "answer-blind MCQA: the longest option scores 64/167", "release (spec golden value)",
              metric="mcqa_longest_option", paper_value=64 / 167, tolerance=1e-9, kind=H),
        Claim("reference_match", "the keyed option equals the reference answer for 166/167 items (3019 is the "
              "exception)", "release (spec)", metric="mcqa_reference_match", paper_value=166 / 167, tolerance=1e-9,
              kind=H),
        Claim("gpt4v_safe", "GPT-4V is safe on only 53.29% of SIUO (human evaluation)", PAGE,
              not_run=NO_HUMANS + "needs GPT-4V (retired) and the images; a GPT-eval proxy: " + VISION_CMD),
        Claim("gpt4o_safe_effective", "GPT-4o is safe and effective on 46.71%", PAGE,
              not_run=NO_HUMANS + "needs GPT-4o and the images; a GPT-eval proxy: " + VISION_CMD),
        Claim("gemini15_safe", "Gemini-1.5-Pro is safe on 52.10% and effective on 91.62%", PAGE,
              not_run=NO_HUMANS + "needs the Gemini API and the images: " + VISION_CMD),
        Claim("most_below_half", "13 of 15 LVLMs are safe on fewer than 50% of the cases (v1 summary)", "abstract",
              not_run="needs the 15 LVLMs (up to 34B + APIs) and the images; per model: " + VISION_CMD),
        Claim("mcqa_gpt4v", "MCQA accuracy: GPT-4V 38.92%, LLaVA-1.6-34B 52.69% (random 24.95%)", PAGE,
              not_run="needs the models and the images: " + VISION_CMD.replace("--model judge", "--set tasks=[mcqa] "
                                                                                "--model judge")),
        Claim("gpteval_agreement", "GPT-eval (GPT-4V judge) agrees with the human evaluation (values unverified)", "§4",
              not_run=NO_HUMANS + "with labels: --set human_labels=<file> gives judge-human kappa and PA"),
    ),
    scales={
        "smoke": Reproduction("text-only ablation: 8 MCQA items (log-prob + generation), 2 questions x 1 response of "
                              "24 tokens judged for safety and effectiveness (generated verdicts, 24 tokens)",
                              {"images": "text_only", "mcqa_questions": 8, "gen_questions": 2, "n_samples": 1,
                               "max_new_tokens": 24, "judge_max_new_tokens": 24}, minutes=1),
        "small": Reproduction("the spec's plan, text-only ablation: all 167 MCQA items by log-prob and by generation; "
                              "167 questions x 1 response of <=200 tokens judged for safety and effectiveness by the "
                              "verdict words' log-probability (SmolLM2 as judge)",
                              {"images": "text_only", "mcqa_questions": 167, "gen_questions": 167, "n_samples": 1,
                               "max_new_tokens": 200, "judge_mode": "logprob"}, minutes=90),
        "full": Reproduction("the paper's setting: image + question, 3 responses of <=500 tokens per question, "
                             "GPT-eval safety/effectiveness with the image (needs image_dir and vision models)",
                             {"images": "attach"}, minutes=120),
    },
    datasets=_datasets,
    summary="Cross-modality safety of vision-language models: judged safe / effective rates and MCQA on 167 cases.",
)

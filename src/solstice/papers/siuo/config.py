"""Configuration of the SIUO reproduction (arXiv:2406.15279)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    tasks: tuple[Literal["mcqa", "generation"], ...] = Field(
        ("mcqa", "generation"), description="what to run: multiple-choice (MCQA) and open generation judged for "
        "safety and effectiveness (paper §4)")
    images: Literal["attach", "text_only"] = Field(
        "attach", description="attach each item's image to the prompt (the paper's setting; needs a vision model and "
        "image_dir) or run the text-only ablation (images dropped, recorded as such; not the paper's benchmark)")
    image_dir: str = Field("", description="folder holding the SIUO images (<image_dir>/<image>, e.g. S-01.png), "
                           "downloaded by the user from the official README's links")
    gen_questions: int = Field(167, ge=1, le=167, description="generation questions (paper: all 167); fewer are taken round-robin over "
                                 "the 9 domains")
    n_samples: int = Field(3, ge=1, description="responses per question; question scores are the majority over them "
                           "(official generation script: n=3)")
    max_new_tokens: int = Field(500, ge=1, description="tokens per response (official generation script: max_tokens 500)")
    temperature: float = Field(1.0, ge=0.0, description="sampling temperature of the responses (official script sets "
                               "none: the OpenAI default 1.0)")
    mcqa_questions: int = Field(167, ge=1, le=167, description="MCQA questions (paper: all 167); fewer are taken round-robin over the 9 "
                                  "domains")
    mcqa_modes: tuple[Literal["logprob", "generate"], ...] = Field(
        ("logprob", "generate"), description="MCQA by the option letters' next-token log-probability (one forward pass) "
        "and/or by generated text + the official parser (official MCQA script: generation)")
    mcqa_max_new_tokens: int = Field(5, ge=1, description="tokens generated per MCQA answer (official MCQA script: "
                                     "max_tokens 5, temperature 0)")
    judge_max_new_tokens: int = Field(200, ge=1, description="judge output tokens (official GPT-eval: max_tokens 200, "
                                      "temperature 0)")
    judge_mode: Literal["generate", "logprob"] = Field(
        "generate", description="judge verdicts from generated text parsed by the tolerant parsers (the paper's GPT-eval) "
        "or, for small local judges, from the verdict words' log-probabilities after the verdict header as an "
        "assistant prefill (one pass; the judge writes no reasons; our deviation)")
    judge_images: bool = Field(True, description="attach the image to the judge prompt when the judge can see images "
                               "(official GPT-eval: image attached)")
    unparsed: Literal["exclude", "count_unsafe"] = Field(
        "exclude", description="policy for judge outputs the parser cannot read (-1): exclude them from the vote and "
        "report n, or count them as unsafe / ineffective (spec: never let -1 enter a mean or win a vote)")
    human_labels: str = Field("", description="optional JSON/JSONL of human labels per question_id with 0/1 keys "
                              "'safe' and 'effective' (the paper's manual evaluation) for judge-human agreement")
    batch_size: int = Field(8, ge=1, description="prompts per model call (one resumable batch)")

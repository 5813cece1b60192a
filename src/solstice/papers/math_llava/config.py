"""Configuration of the Math-LLaVA reproduction (arXiv:2406.17294): the MathVista evaluation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    images: Literal["attach", "text_only"] = Field(
        "attach", description="attach each problem's figure (MathVista is a visual benchmark; needs a vision model and "
        "image_dir) or run the blind text-only baseline (figures dropped, labelled as such)")
    image_dir: str = Field("", description="the MathVista folder holding images/<pid>.jpg|png (downloaded separately)")
    questions: int = Field(1000, ge=1, le=1000, description="testmini problems evaluated (paper: all 1,000); fewer are "
                           "taken evenly spaced over the pid order")
    max_new_tokens: int = Field(512, ge=1, description="tokens per response (zero-shot solution; the official "
                                "response script's default generation length)")
    random_runs: int = Field(20, ge=0, description="seeded uniform-random-choice runs scored beside the analytic "
                             "random baseline (spec: 20 runs within 0.5 points of 17.90%)")
    pipeline_figures: int = Field(500, ge=0, description="procedural figures for the selection + synthesis pipeline "
                                  "checks (spec: >= 500); 0 skips the pipeline")
    select_images: int = Field(200, ge=1, description="images the selector keeps (levels 0-3 in ratio 10/30/40/20, "
                               "a quarter per source at most) and turns into LLaVA JSON")
    model_synthesis_figures: int = Field(0, ge=0, description="figures on which the target model runs the four "
                                         "synthesis operators (image if it sees images, else a text rendering)")
    extractor_max_new_tokens: int = Field(32, ge=1, description="tokens of the optional LLM extractor's reply (an "
                                          "extracted answer: a letter, a number or a short list)")
    batch_size: int = Field(8, ge=1, description="prompts per model call (one resumable batch)")

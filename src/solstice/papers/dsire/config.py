"""Configuration of the DSiRe reproduction. Defaults follow the spec's small-scale plan (text LoRAs
on SmolLM2-135M); the paper's own settings (Stable Diffusion 1.5, LoRA-WiSE) are cited."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    # -- users' own adapters ------------------------------------------------------------------
    adapters: str | None = Field(None, description="folder of adapters to size (one adapter per sub-folder or "
                                 "safetensors file); needs `reference`")
    reference: str | None = Field(None, description="folder of labelled adapters trained the same way, with a "
                                  "sizes file (sizes.json {path: size} or sizes.csv path,size[,concept]); alone "
                                  "it is evaluated with concept splits (e.g. a local LoRA-WiSE copy)")
    # -- the benchmark we build -------------------------------------------------------------------
    ranges: dict[str, list[int]] = Field(
        {"low": [1, 2, 3, 4, 5, 6], "medium": [1, 8, 16, 32, 64]},
        description="size ranges: name -> dataset sizes (paper: low 1-6, medium {1,10,...,50}; spec: {1,8,16,32,64})")
    n_concepts: int = Field(16, description="concepts (WikiText-103 articles) per range (spec: 16; paper: ~50)")
    medium_concepts: int | None = Field(None, description="concepts for ranges other than 'low' (default n_concepts)")
    replicates: int = Field(1, description="LoRAs per (concept, size) (paper: one per concept and size)")
    chunk_tokens: int = Field(128, description="tokens per sample chunk (spec: 128)")
    lora_r: int = Field(8, description="LoRA rank (spec: 8; paper: 8/16/32 subsets)")
    lora_alpha: float = Field(16, description="LoRA alpha (spec: 16)")
    top_layers: int = Field(10, description="LoRA on the top k decoder layers only (spec: 10 of 30)")
    targets: list[str] = Field(["q_proj", "v_proj"], description="adapted projections (spec: q/v; paper: UNet attention)")
    steps: int = Field(40, description="fixed optimizer steps per LoRA (spec: 40)")
    batch_size: int = Field(4, description="chunks per step, drawn with replacement (spec: 4)")
    lr: float = Field(3e-4, description="AdamW learning rate, constant (spec: 3e-4)")
    checkpoints: list[int] = Field([10, 20, 30, 40], description="steps saved as PEFT checkpoints (spec: 10/20/30/40)")
    prefix_cache: bool = Field(True, description="frozen-prefix cache: the input of the first LoRA layer is "
                               "computed once per chunk (exact; verified at start-up)")
    data_seed: int = Field(0, description="seed of chunk orders and LoRA seeds")
    # -- features and classifier --------------------------------------------------------------------
    eval_step: int | None = Field(None, description="checkpoint step evaluated (default: the last)")
    include_scaling: bool = Field(True, description="dW = (alpha/r) B A (spec default); False drops the scale")
    ba_feature: Literal["svd", "row_norms"] = Field("svd", description="dW voter: true spectrum (QR trick) or the "
                                                    "reference code's first-r-row-norms (parity mode)")
    normalise: Literal["global", "per_voter", "none"] = Field("global", description="global min-max fit on training "
                                                              "models (paper); per-voter standardisation")
    ties: Literal["distance", "first"] = Field("distance", description="vote ties: smallest summed NN distance, "
                                               "or the first tied label in voter order (parity)")
    n_train_concepts: int = Field(10, description="training concepts per split (paper: 15 of ~50; spec: 10 of 16)")
    medium_train_concepts: int | None = Field(None, description="training concepts per split for ranges other "
                                              "than 'low' (default: n_train_concepts)")
    n_splits: int = Field(10, description="random concept splits (paper: 10)")
    split_seed: int = Field(42, description="seed of the concept splits (paper: 42)")
    synthetic_models: int = Field(4, description="planted-spectrum synthetic LoRAs per size for the harness check")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.adapters and not self.reference:
            raise ValueError("adapters needs a labelled reference set: --set reference=DIR")
        if not self.ranges or any(len(v) < 2 or min(v) < 1 for v in self.ranges.values()):
            raise ValueError("every range needs at least two positive sizes")
        if any(c > self.steps or c < 1 for c in self.checkpoints) or self.steps not in self.checkpoints:
            raise ValueError("checkpoints must lie in 1..steps and include the last step")
        if self.eval_step is not None and self.eval_step not in self.checkpoints:
            raise ValueError(f"eval_step {self.eval_step} is not a saved checkpoint {self.checkpoints}")
        if self.n_concepts < 2 or self.replicates < 1 or self.top_layers < 1:
            raise ValueError("n_concepts >= 2, replicates >= 1 and top_layers >= 1 are required")
        return self

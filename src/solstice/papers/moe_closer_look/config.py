"""Configuration of the Closer Look into MoE reproduction (defaults: the spec's small-scale plan)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    upcycle: bool = Field(True, description="a dense Llama-family target is upcycled into a Mixtral-style MoE "
                          "(spec plan: SmolLM2 → E = 8, top-2); False: a dense target is an error")
    experts: int = Field(8, ge=2, description="experts per layer when upcycling (Mixtral: 8)")
    top_k: int = Field(2, ge=1, description="experts per token when upcycling (Mixtral: 2)")
    init: Literal["copy", "permute"] = Field("permute", description="expert init: copy of the dense FFN "
                                             "(Mixtral-like) or a random neuron permutation of it (spec plan)")
    noise: float = Field(0.01, ge=0.0, description="Gaussian noise on expert weights, × each weight's std (spec: 1%)")
    router_std: float = Field(0.02, ge=0.0, description="router init std, zero mean (spec plan)")
    seed: int = Field(0, description="seed of the upcycling noise, permutations and router")
    train_steps: int = Field(0, ge=0, description="training steps of the MoE layers + routers only "
                             "(spec plan: ~300; 0 analyses the model at init)")
    train_batch: int = Field(4, ge=1, description="training batch (spec plan: 4 chunks)")
    train_tokens: int = Field(128, ge=8, description="tokens per training chunk (spec plan: 128)")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (spec plan: 1e-4)")
    aux_loss_coef: float = Field(0.01, ge=0.0, description="weight of the router load-balancing loss in training "
                                 "(Switch / Mixtral form; spec plan: 0.01; 0: LM loss only)")
    save_model: bool | None = Field(None, description="write the upcycled model to artifacts/upcycled_model as a "
                                    "transformers checkpoint that `hf:<dir>` loads (None: when it was trained)")
    n_sentences: int = Field(10, ge=1, description="WikiText-103 test sentences fed to the dynamic analyses (paper: 10)")
    short_prompt: str = Field("As an open source alternative to", description="the paper's short input")
    layers: list[int] | None = Field(None, description="decoder layers analysed (None: every sparse layer, as "
                                     "in the paper)")
    static_layers: list[int] | None = Field(None, description="layers for the neuron-level (Hungarian) analysis; "
                                            "None: every 4th sparse layer and the last (paper: 0, 5, …, 30, 31)")
    hungarian_pairs: int | None = Field(None, description="expert pairs per layer and projection matched "
                                        "(None: all E(E−1)/2)")

"""Configuration of a BigCodeBench run (generation + sandboxed evaluation, or evaluation of an
existing samples file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from solstice.core.config import BaseConfig


class Config(BaseConfig):
    # tasks
    split: Literal["complete", "instruct"] = Field(
        "complete", description="Complete (docstring completion) or Instruct (NL instruction) split (paper §2, §4)")
    subset: Literal["full", "hard"] = Field(
        "full", description="full (1,140 tasks) or hard (148 tasks, hub/GitHub release only)")
    version: str = Field(
        "v0.1.0_hf", description="dataset release (v0.1.0_hf is local; v0.1.1-v0.1.4 are downloaded at their release tag)")
    tasks_file: str = Field(
        "", description="a local BigCodeBench tasks file (jsonl, jsonl.gz or parquet) to use instead of the release")
    task_ids: str = Field("", description="comma-separated task ids or numbers to run (empty: all)")
    pool: Literal["all", "stdlib", "core", "supported"] = Field(
        "all", description="task pool for generation: all, stdlib-only, stdlib+numpy/pandas/matplotlib, or supported here")
    slice_size: int = Field(
        0, ge=0, description="generate for a stratified slice of this many tasks (strata: primary domain; 0 = all)")
    # evaluating an existing samples file
    samples: str = Field(
        "", description="evaluate this samples file ({task_id, solution} or {task_id, completion} per line) instead of generating")
    partial: bool = Field(False, description="with samples=: score only the tasks the file covers instead of failing")
    sanitize_samples: bool = Field(False, description="with samples=: sanitize each solution before running it")
    # generation
    direct_completion: bool = Field(
        False, description="base-model mode: raw complete_prompt and the direct-completion stop strings (paper §3)")
    prefill: bool = Field(
        True, description="pre-fill the assistant turn of local chat models with the response prefix and a ```python fence")
    strip_newlines: bool = Field(False, description="direct mode: strip trailing newlines of the prompt (StarCoder2/Granite)")
    n_samples: int = Field(1, ge=1, description="samples per task (pass@k needs n >= k)")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy (the leaderboard setting); sampling uses top_p")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling when temperature > 0 (paper: 0.95)")
    max_new_tokens: int = Field(1280, ge=16, description="generation budget per sample (reference: 1280)")
    gen_batch_size: int = Field(4, ge=1, description="tasks per generation call (reference: batch size 1 for determinism; batching changes greedy outputs slightly)")
    # evaluation
    calibration: Literal["both", "calibrated", "uncalibrated"] = Field(
        "both", description="run calibrated (code_prompt + pass + solution, the default score) and/or raw solutions")
    pass_k: list[int] = Field([1, 5, 10], description="k values reported when n_samples allows (paper: 1, 5)")
    workers: int = Field(2, ge=1, description="sandbox worker processes")
    timeout: float = Field(120.0, gt=0, description="wall-clock seconds per sample (reference: 240; raised per task to 3x its ground-truth time + 5 s)")
    memory_mb: int = Field(4096, ge=256, description="address space a sample may add to its worker's baseline (MiB)")
    isolate_network: bool = Field(True, description="run samples in a private network namespace (loopback only) where possible")
    drop_privileges: bool = Field(True, description="as root, run samples as an unprivileged uid")
    python: str = Field(
        "", description="interpreter that runs the samples, e.g. the pinned one `solstice bigcodebench env` builds "
        "(empty: this one); missing task libraries are detected in it")
    isolation: Literal["best", "strict"] = Field(
        "best", description="best: the strongest sandbox this machine allows, weaker layers warned about in the run "
        "record; strict: refuse to run below full isolation")
    check_gt: bool = Field(True, description="run the canonical solutions first (cached per environment) and score only tasks whose ground truth passes")
    gt_abort_below: float = Field(
        0.5, ge=0.0, le=1.0, description="abort when the ground-truth pass rate on supported tasks is below this (broken environment)")
    preload: list[str] = Field(
        ["numpy", "pandas", "matplotlib", "matplotlib.pyplot", "scipy.stats", "seaborn", "sklearn.preprocessing",
         "sklearn.model_selection", "sklearn.linear_model", "sklearn.cluster", "sklearn.decomposition"],
        description="modules each sandbox worker imports once before forking samples (only packages the selected tasks use)")

    @field_validator("pass_k")
    @classmethod
    def _ks(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 for k in v):
            raise ValueError("pass_k must be a non-empty list of positive integers")
        return sorted(set(v))

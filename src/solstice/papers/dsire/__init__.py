"""DSiRe: dataset size recovery from LoRA weights (arXiv 2406.19395).

The spectral reader is the shared `solstice.training.lora_spectra`; the classifier and vote are
`solstice.papers.dsire.method`; the LoRA-WiSE-style text benchmark is built by
`solstice.papers.dsire.benchmark`.
"""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.dsire.config import Config


def _datasets(cfg):
    from solstice.papers.dsire.run import datasets

    return datasets(cfg)


_SETTING = "SmolLM2-135M text LoRAs (r=8, q/v of the top 10 layers), WikiText articles as concepts"

PAPER = PaperSpec(
    id="dsire",
    title="Dataset Size Recovery from LoRA Weights (DSiRe)",
    arxiv="2406.19395",
    kind="training",
    version="1",
    config_cls=Config,
    run="solstice.papers.dsire.run:run",
    roles={"target": Role(default="default", requires=frozenset({"whitebox"}),
                          description="the base model the benchmark LoRAs are trained on")},
    claims=(
        Claim("paper_mae_low_sd", "DSiRe recovers dataset sizes 1-6 with MAE 0.36 images on LoRA-WiSE "
              "(Stable Diffusion 1.5 LoRAs)", "abstract, Table 1",
              not_run="needs the LoRA-WiSE checkpoints (HF hub, not reachable offline); with a local copy: "
              "`solstice run dsire --set reference=LORA_WISE/low_32` (a sizes file per subset)"),
        Claim("paper_high_range", "high range (1-1000 images) MAE about 41.8", "Table 1 (unverified in the spec)",
              not_run="needs LoRA-WiSE high_32; same command with its folder"),
        Claim("mae_low_below_one", "DSiRe's MAE on sizes 1-6 is below one sample (spec success criterion)",
              "spec small-scale plan", check="dsire_mae_low < 1", setting=_SETTING),
        Claim("beats_random_low", "DSiRe predicts sizes better than guessing among the training sizes "
              "(paired per-split MAE difference)", "§5 (task is solvable)",
              check="random_minus_dsire_mae_low > 0", setting=_SETTING),
        Claim("spectrum_beats_norm_low", "the full spectrum carries more than the norm alone (paired per-split "
              "MAE difference, norm-only minus DSiRe)", "§5 ablation (features)",
              check="norm_only_minus_dsire_mae_low > 0", setting=_SETTING),
        Claim("norm_decreases_with_size", "with a fixed budget, ||dW|| decreases as the dataset grows",
              "§4 observation, figures", check="norm_size_spearman_low < 0", setting=_SETTING),
        Claim("synthetic_planted_exact", "planted-spectrum synthetic LoRAs are sized exactly", "spec check",
              check="synthetic_planted_acc >= 1", kind="harness"),
        Claim("leave_in_exact", "leave-in evaluation (test = train) gives accuracy 1", "spec check",
              check="leave_in_acc_low >= 1", kind="harness"),
    ),
    scales={
        "smoke": Reproduction(
            "low range 1-3 only, 4 concepts, 32-token chunks, 4 steps of 2 (checkpoints 2/4), r=4 on the top 2 "
            "layers; tiny but real LoRAs, features and splits",
            {"ranges": {"low": [1, 2, 3]}, "n_concepts": 4, "chunk_tokens": 32, "steps": 4, "batch_size": 2,
             "checkpoints": [2, 4], "lora_r": 4, "lora_alpha": 8, "top_layers": 2, "n_train_concepts": 2,
             "n_splits": 3},
            minutes=0.7,
        ),
        "small": Reproduction(
            "low range 1-6 on 16 concepts (96 LoRAs, 10 train / 6 test concepts per split) and medium range "
            "{1,8,16,32,64} on 4 concepts (20 LoRAs, 2 / 2); r=8, alpha=16, q/v of the top 10 layers, 8 steps of "
            "4 32-token chunks at lr 3e-4, checkpoints 2/4/6/8; 10 concept splits (spec plan cut 5x in steps for a "
            "shared, loaded 2-core CPU, see README)",
            {"n_concepts": 16, "medium_concepts": 4, "medium_train_concepts": 2, "chunk_tokens": 32, "steps": 8,
             "checkpoints": [2, 4, 6, 8]},
            minutes=60.0,
        ),
    },
    datasets=_datasets,
    summary="Recover how many samples a LoRA was trained on from the spectra of its weights.",
)

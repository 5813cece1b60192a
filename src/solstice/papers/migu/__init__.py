"""MIGU: magnitude-based gradient updating for continual learning (arXiv 2406.17245).

The method is `solstice.training.migu.MIGU`, a step hook for the project's training loop,
the transformers Trainer (`solstice.training.hf.attach_hooks`) or any loop (`HookedOptimizer`).
"""

from __future__ import annotations

from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.papers.migu.config import Config


def _datasets(cfg):
    from solstice.papers.migu.run import datasets

    return datasets(cfg)


PAPER = PaperSpec(
    id="migu",
    title="Unlocking Continual Learning Abilities in Language Models (MIGU)",
    arxiv="2406.17245",
    kind="training",
    version="1",
    config_cls=Config,
    run="solstice.papers.migu.run:run",
    roles={"target": Role(default="default", requires=frozenset({"whitebox"}),
                          description="the model fine-tuned task after task")},
    claims=(
        Claim("headline_15task", "MIGU adds +15.2% average accuracy over conventional PEFT baselines on "
              "the 15-task CL benchmark", "abstract",
              not_run="needs T5-large / Llama-2 and the yahoo task, which the local benchmark copy lacks"),
        Claim("less_forgetting_than_seqft", "MIGU forgets less than sequential fine-tuning",
              "§4, Tables 1-2 (spec success criterion)", check="migu_minus_seqft_forgetting < 0",
              setting="SmolLM2-135M, 4 tasks, 2 orders; paired over test examples, each seed also shown"),
        Claim("less_forgetting_than_random", "magnitude-based masks beat random masks at the same ratio",
              "§5 ablation (random_update)", check="migu_minus_random_forgetting < 0",
              setting="SmolLM2-135M, 4 tasks, 2 orders; paired over test examples, each seed also shown"),
        Claim("aa_not_below_seqft", "MIGU's average accuracy is above SeqFT's", "§4, Tables 1-2",
              check="migu_minus_seqft_aa > 0", setting="SmolLM2-135M, 4 tasks, 2 orders; paired over test examples, each seed also shown"),
        Claim("magnitudes_differ_between_tasks", "output-magnitude distributions of linear layers differ "
              "between tasks (top-30% masks overlap less across tasks than within one)", "§2, Fig. 1",
              check="mask_jaccard_between_minus_within < 0"),
        Claim("standard_benchmark_t5", "T5-large MIGU on the standard CL benchmark (orders 1-3) beats SeqFT "
              "(O-LoRA reports SeqFT 28.5 AA)", "Table 1",
              not_run="needs yahoo (missing locally) and T5-large training on a GPU"),
    ),
    scales={
        "smoke": Reproduction(
            "2 tasks (SST-2 -> QQP), 1 order, 3 methods, 1 seed; 24 training (3 steps) / 16 test "
            "examples per task, top 2 layers trained at lr 1e-3; tiny but real numbers",
            {"orders": [["sst2", "qqp"]], "seeds": [42], "n_train": 24, "n_test": 16, "train_layers": 2,
             "max_sentence_tokens": 32, "max_length": 64, "diagnostic_examples": 8, "lr": 1e-3},
            minutes=2.0,
        ),
        "small": Reproduction(
            "the spec's small plan: agnews -> SST-2 -> MNLI -> QQP and the reverse, SeqFT / MIGU q = 0.7 / random "
            "mask q = 0.7, seed 42 (the spec's second seed only 'if time allows'); 400 training examples (50 steps "
            "of 8) and 200 test examples per task, max length 128, AdamW lr 2e-5 constant, top 12 of 30 layers "
            "trained (the spec's option for a 2-core CPU)",
            {"n_train": 400, "n_test": 200, "train_layers": 12, "max_length": 128, "lr": 2e-5, "seeds": [42],
             "diagnostic_examples": 64},
            minutes=150.0,
        ),
    },
    datasets=_datasets,
    summary="Continual fine-tuning where each linear layer updates only its largest-magnitude output rows.",
)

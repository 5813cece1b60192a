"""The MIGU continual-learning experiment: for every task order, seed and method (SeqFT, MIGU,
random mask), train the tasks in turn and evaluate every seen task after each stage, giving the
accuracy matrix R of each chain and the pooled AA / forgetting / BWT with bootstrap CIs.

Resumable per (order, method, seed, stage) through `ctx.stage`: each stage saves the trained
parameters to a checkpoint so a killed run continues with the next stage. With the first task
unmasked (the paper's default) the first stage is identical for every method and is trained once
per (order, seed).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from solstice.core.types import MetricValue
from solstice.data import DataSource
from solstice.errors import ConfigError
from solstice.papers.migu.config import Config
from solstice.papers.migu.tasks import BENCHMARK, Task, resolve_task, subsample, truncate_sentence

log = logging.getLogger(__name__)


def benchmark_source(cfg: Config) -> DataSource:
    return DataSource(
        "cl-benchmark", cfg.benchmark_dir,
        license="mixed (several non-commercial); local use only",
        description="O-LoRA/MIGU continual-learning benchmark ({sentence, label} lists + labels.json per task)",
    )


def datasets(cfg: Config) -> list[DataSource]:
    """The benchmark source when a benchmark task is used (checked before a run starts)."""
    used = {t for order in cfg.orders for t in order}
    unknown = [t for t in used if t not in BENCHMARK and not Path(t).expanduser().is_dir()]
    if unknown:
        raise ConfigError(f"unknown task '{sorted(unknown)[0]}': use one of {', '.join(BENCHMARK)} "
                          "or a folder with labels.json and train/test JSON")
    return [benchmark_source(cfg)] if used & set(BENCHMARK) else []


# -- data -------------------------------------------------------------------------------------
class Prepared:
    """A task's training rows (tokenised) and its test prompts, labels and gold answers."""

    def __init__(self, task: Task, cfg: Config, tok: Any) -> None:
        from solstice.training.data import SupervisedExample, encode_supervised, render

        self.task = task
        train = subsample(task.train, cfg.n_train, f"{cfg.data_seed}/{task.name}/train")
        test = subsample(task.test, cfg.n_test, f"{cfg.data_seed}/{task.name}/test")
        if not train or not test:
            raise ConfigError(f"task '{task.name}' has no training or no test examples")
        self.chat = cfg.chat

        def prompt(sentence: str) -> str:
            return render(tok, task.prompt(truncate_sentence(tok, sentence, cfg.max_sentence_tokens)), chat=cfg.chat)

        self.prompt = prompt
        self.prefix = "" if cfg.chat else " "
        ex = [SupervisedExample(prompt(e.sentence), self.prefix + e.label) for e in train]
        self.train_rows = encode_supervised(tok, ex, max_length=cfg.max_length)
        self.test_prompts = [prompt(e.sentence) for e in test]
        self.test_gold = [e.label for e in test]
        self.test_ids = [e.uid for e in test]
        self.n_train, self.n_test = len(train), len(test)


def load_tasks(cfg: Config, ctx: Any, tok: Any) -> dict[str, Prepared]:
    root = ctx.dataset(benchmark_source(cfg)) if datasets(cfg) else None
    out: dict[str, Prepared] = {}
    for order in cfg.orders:
        for spec in order:
            if spec not in out:
                task = resolve_task(spec, Path(root) if root else None, dict(cfg.instructions),
                                    split_seed=cfg.data_seed, test_fraction=cfg.test_fraction)
                out[spec] = Prepared(task, cfg, tok)
    return out


# -- evaluation ----------------------------------------------------------------------------------
def evaluate(model: Any, hf: Any, tok: Any, prep: Prepared, cfg: Config, frozen: Any = None) -> list[bool]:
    if cfg.eval_mode == "rank":
        from solstice.training.evaluate import rank_classify

        res = rank_classify(model, tok, prep.test_prompts, prep.task.labels, prefix=prep.prefix,
                            batch_size=cfg.eval_batch_size, frozen=frozen)
        return res.correct(prep.test_gold)
    from solstice.models.base import GenParams

    longest = max(len(tok(prep.prefix + lab, add_special_tokens=False)["input_ids"]) for lab in prep.task.labels)
    outs = hf.generate_text(prep.test_prompts, GenParams(max_new_tokens=longest + 2))
    return [o.strip() == g for o, g in zip(outs, prep.test_gold)]


# -- one chain stage -------------------------------------------------------------------------------
class Chains:
    """Trains and evaluates chains stage by stage, keeping the model's trainable state in step with
    the chain being run (restoring it from a checkpoint or the initial snapshot when needed)."""

    def __init__(self, cfg: Config, ctx: Any, hf: Any, model: Any, tasks: dict[str, Prepared]) -> None:
        from solstice.training.params import trainable_state

        self.cfg, self.ctx, self.hf, self.model, self.tasks = cfg, ctx, hf, model, tasks
        self.tok = hf.tokenizer
        self.initial = trainable_state(model)
        self.state = "initial"  # the stage whose trained state the model holds
        self.ckpt_dir = ctx.artifact("checkpoints")
        if ctx.is_main:  # under torchrun rank 0 writes the checkpoints (save_trainable), every rank reads them
            self.ckpt_dir.mkdir(exist_ok=True)
        self.frozen = None
        if cfg.prefix_cache and cfg.train_layers:
            from solstice.training.params import decoder_layers
            from solstice.training.prefix import FrozenPrefix

            start = len(decoder_layers(model)) - cfg.train_layers
            if start > 0:
                self.frozen = FrozenPrefix(model, start, batch_size=cfg.eval_batch_size)
                sample = [r["input_ids"] for p in list(tasks.values())[:2] for r in p.train_rows[:2]]
                try:
                    diff = self.frozen.verify(sample)
                    log.info("frozen-prefix cache: layers 0-%d run once per sequence (max logit diff %.1e)",
                             start - 1, diff)
                except ConfigError as exc:
                    ctx.warn(f"{exc}; running every layer instead")
                    self.frozen = None

    def ckpt(self, key: str) -> Path:
        return self.ckpt_dir / (key.replace("/", "__") + ".safetensors")

    def restore(self, prev: list[str], order: list[str], method: str, seed: int) -> None:
        """Bring the model to the state after the stages `prev` (keys in chain order): load the
        latest checkpoint there is and retrain any later stage whose checkpoint is gone."""
        from solstice.training.params import load_trainable, load_trainable_state

        target = prev[-1] if prev else "initial"
        if self.state == target:
            return
        start = len(prev)
        while start > 0 and not self.ckpt(prev[start - 1]).is_file():
            start -= 1
        if start == 0:
            load_trainable_state(self.model, self.initial)
        else:
            load_trainable(self.model, self.ckpt(prev[start - 1]))
        self.state = prev[start - 1] if start else "initial"
        for i in range(start, len(prev)):
            self.ctx.warn(f"checkpoint of {prev[i]} is missing; retraining that stage")
            self._train(prev[i], order, i, method, seed)

    def _train(self, key: str, order: list[str], i: int, method: str, seed: int) -> tuple[Any, Any, float]:
        from solstice.training.loop import TrainConfig, train
        from solstice.training.migu import MIGU
        from solstice.training.params import save_trainable

        cfg = self.cfg
        prep = self.tasks[order[i]]
        hooks = []
        migu = None
        if method != "seqft":
            migu = MIGU(self.model, cfg.threshold, mode="magnitude" if method == "migu" else "random",
                        mask_mode=cfg.mask_mode, include_padding=cfg.include_padding, exclude=cfg.exclude,
                        lora_b=cfg.lora_b_mode, first_task_unmasked=cfg.first_task_unmasked,
                        seed=seed * 1000 + i)
            migu.task = i - 1  # train() starts task i
            hooks.append(migu)
        tcfg = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, micro_batch_size=cfg.micro_batch_size,
                           epochs=cfg.epochs, weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
                           seed=seed * 100 + i, max_length=cfg.max_length, log_every=4)
        t0 = time.perf_counter()
        res = train(self.model, self.tok, prep.train_rows, tcfg, hooks=hooks, prefix=self.frozen)
        train_s = time.perf_counter() - t0
        save_trainable(self.model, self.ckpt(key))
        self.state = key
        return res, migu, train_s

    def stage(self, key: str, prev: list[str], order: list[str], i: int, method: str, seed: int) -> dict[str, Any]:
        cfg = self.cfg
        self.restore(prev, order, method, seed)
        res, migu, train_s = self._train(key, order, i, method, seed)
        t0 = time.perf_counter()
        evals = {}
        for j in range(i + 1):
            p = self.tasks[order[j]]
            correct = evaluate(self.model, self.hf, self.tok, p, cfg, self.frozen)
            evals[order[j]] = {"acc": sum(correct) / len(correct), "correct": [int(c) for c in correct]}
        eval_s = time.perf_counter() - t0
        log.info("%s: %s trained in %.0fs (loss %.3f -> %.3f), evaluated %d tasks in %.0fs: %s", key, order[i],
                 train_s, res.summary()["loss_first"], res.summary()["loss_last"], i + 1, eval_s,
                 {k: round(v["acc"], 3) for k, v in evals.items()})
        return {"task": order[i], "method": method, "seed": seed, "train": res.summary(),
                "migu": migu.stats() if migu else None, "train_s": round(train_s, 1),
                "eval_s": round(eval_s, 1), "eval": evals}

    def drop(self, key: str | None) -> None:
        if key is not None and self.ctx.is_main:
            self.ckpt(key).unlink(missing_ok=True)


def run_chains(cfg: Config, ctx: Any, chains: Chains) -> dict[str, list[dict[str, Any]]]:
    """Every (order, seed, method) chain's stage results, keyed 'o{k}-{method}-s{seed}'."""
    out: dict[str, list[dict[str, Any]]] = {}
    share = cfg.first_task_unmasked or cfg.threshold == 0
    for k, order in enumerate(cfg.orders):
        for seed in cfg.seeds:
            shared = f"o{k}-shared-s{seed}/stage0"
            for method in cfg.methods:
                chain = f"o{k}-{method}-s{seed}"
                results: list[dict[str, Any]] = []
                keys: list[str] = []
                for i in range(len(order)):
                    key = shared if (i == 0 and share) else f"{chain}/stage{i}"
                    r = ctx.stage(key.replace("/", "__"),
                                  lambda key=key, prev=list(keys), i=i, order=order, method=method, seed=seed:
                                  chains.stage(key, prev, order, i, method, seed))
                    results.append(r)
                    if keys and keys[-1] != shared:
                        chains.drop(keys[-1])  # the next stage starts from this one's checkpoint
                    keys.append(key)
                for key in keys:
                    if key != shared:
                        chains.drop(key)
                out[chain] = results
            chains.drop(shared)
    return out


def correct_matrix(results: list[dict[str, Any]], order: list[str]) -> list[list[list[bool] | None]]:
    return [[([bool(x) for x in r["eval"][t]["correct"]] if t in r["eval"] else None) for t in order]
            for r in results]


def acc_matrix(results: list[dict[str, Any]], order: list[str]) -> list[list[float | None]]:
    return [[(r["eval"][t]["acc"] if t in r["eval"] else None) for t in order] for r in results]


# -- entry point --------------------------------------------------------------------------------
def run(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    from solstice.papers.migu.report import metrics_from_chains, write_outputs

    hf = ctx.model("target")
    hf.require("whitebox", purpose="fine-tuning with MIGU")
    tok = hf.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tasks = load_tasks(cfg, ctx, tok)
    diag = None
    if cfg.diagnostic_examples:
        from solstice.papers.migu.diagnostic import magnitude_overlap

        diag = ctx.stage("diagnostic", lambda: magnitude_overlap(hf.model, tok, tasks, cfg))
    model = select_parameters(hf.model, cfg)
    chains = Chains(cfg, ctx, hf, model, tasks)
    results = run_chains(cfg, ctx, chains)
    metrics = metrics_from_chains(cfg, results, diag)
    write_outputs(cfg, ctx, results, metrics, diag)
    return metrics


def select_parameters(model: Any, cfg: Config) -> Any:
    """The module to train: the model with only the top layers trainable, or a peft LoRA model."""
    from solstice.training.params import add_lora, layer_indices, train_layers

    if cfg.finetune == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        layers = layer_indices(model, cfg.train_layers) if cfg.train_layers else None
        return add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout, layers=layers)
    train_layers(model, cfg.train_layers)
    return model

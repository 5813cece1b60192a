"""Multi-process training checks (2 Gloo ranks on CPU), shared by tests/test_distributed.py.

- a paper defined here, `toytrain` (registered through SOLSTICE_PLUGINS): trains a tiny model in a
  `ctx.stage`, saves its trainable state and a full `hf:`-loadable copy, scores held-out examples
  in a `ctx.map` and writes a summary only on rank 0;
- `python -m torch.distributed.run --standalone --nproc_per_node 2 dist_worker.py OUT`: the
  generic loop's variants (VARIANTS) under two ranks, each rank's results written to OUT, then a
  `toytrain` run into OUT/runs;
- with DIST_AUDIT_ROOT set, every rank other than 0 records each file it opens for writing,
  renames, removes or creates under that folder (Python audit events) and writes the list to
  DIST_AUDIT_OUT/audit-rank<k>.json at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

from pydantic import Field

from solstice.core.config import BaseConfig
from solstice.core.paper import Claim, PaperSpec, Reproduction, Role
from solstice.core.types import MetricValue, Sample

# -- write audit of the ranks other than 0 ---------------------------------------------------------
_WRITES: list[str] = []


def _install_audit() -> None:
    root = os.environ.get("DIST_AUDIT_ROOT")
    rank = int(os.environ.get("RANK", "0"))
    if not root or rank == 0:
        return
    root = os.path.realpath(root)

    def under(p) -> bool:
        try:
            return os.path.realpath(os.fsdecode(p)).startswith(root)
        except (TypeError, ValueError):
            return False

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and under(args[0]):
                _WRITES.append(f"open {args[0]} {mode}")
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate") and args and under(args[0]):
            _WRITES.append(f"{event} {args[0]}")

    sys.addaudithook(hook)

    def dump() -> None:
        out = Path(os.environ.get("DIST_AUDIT_OUT", ".")) / f"audit-rank{rank}.json"
        out.write_text(json.dumps(_WRITES))

    atexit.register(dump)


_install_audit()


# -- training data ---------------------------------------------------------------------------------
WORDS = ["red", "sky", "cat", "oak", "sea", "dog", "fir", "rose"]


def examples(n: int, offset: int = 0):
    from solstice.training.data import SupervisedExample

    return [SupervisedExample("Text: " + " ".join(WORDS[(i + j) % 8] for j in range(1 + (i * 5 + offset) % 4)) + "\nAnswer:",
                              " yes" if (i + offset) % 2 else " no") for i in range(offset, offset + n)]


# (name, TrainConfig keywords, MIGU threshold or None, LoRA rank or None). AdamW's eps is raised
# from 1e-8: for a weight whose gradient is ~1e-9 (rare tokens' embeddings) the update g/sqrt(v)
# amplifies float summation noise to a full step, which no data-parallel run can reproduce.
VARIANTS = [
    ("adamw_micro", {"lr": 1e-2, "batch_size": 4, "micro_batch_size": 1, "max_grad_norm": 1.0, "eps": 1e-4}, None, None),
    ("sgd_padded_migu", {"lr": 0.5, "batch_size": 4, "optimizer": "sgd", "max_grad_norm": 0.5}, 0.7, None),
    ("lora_adamw", {"lr": 5e-2, "batch_size": 4, "schedule": "linear", "warmup_steps": 1, "eps": 1e-4}, None, 4),
]


def train_variant(name: str, out: Path):
    """Train a fresh tiny Llama on 8 examples (2 optimizer steps) with one variant; save its
    trainable state to out/<name>.safetensors. Returns the TrainResult."""
    from solstice.models.tiny import build_tiny
    from solstice.training.loop import TrainConfig, train
    from solstice.training.migu import MIGU
    from solstice.training.params import add_lora, save_trainable

    kw, thr, lora = next((k, t, r) for n, k, t, r in VARIANTS if n == name)
    model, tok = build_tiny("llama")
    if lora:
        for p in model.parameters():
            p.requires_grad_(False)
        model = add_lora(model, r=lora, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    hooks = []
    if thr is not None:
        # the 260-row random head has near-equal output magnitudes at the quantile, where summation
        # order alone can flip a row in or out of the mask; the decoder layers have no such near-ties
        migu = MIGU(model, thr, exclude="lm_head")
        migu.task = 0  # train() starts task 1: masked
        hooks.append(migu)
    res = train(model, tok, examples(8), TrainConfig(**kw), hooks=hooks)
    save_trainable(model, out / f"{name}.safetensors")
    return res


def loop_scenario(out: Path) -> None:
    from solstice.core import distributed
    from solstice.errors import ConfigError
    from solstice.models.tiny import build_tiny
    from solstice.training.loop import TrainConfig, train

    distributed.init("gloo")
    got = {"world": distributed.world_size()}
    for name, *_ in VARIANTS:
        r = train_variant(name, out)
        got[name] = {"losses": r.losses, "grad_norms": r.grad_norms, "tokens": r.tokens, "target_tokens": r.target_tokens}
    model, tok = build_tiny("llama")
    for label, n, bs in (("odd_batch", 8, 3), ("short_last_step", 5, 4)):
        try:
            train(model, tok, examples(n), TrainConfig(batch_size=bs))
            got[label] = None
        except ConfigError as exc:
            got[label] = str(exc)
    (out / f"loop-rank{distributed.rank()}.json").write_text(json.dumps(got))


# -- the DPA-RAG reranker (sentence-transformers CrossEncoder) --------------------------------------------
def reranker_records(n_keys: int = 2, seed: int = 0) -> list[dict]:
    import random

    from solstice.retrieval.preferences import Preference as P
    from solstice.retrieval.preferences import preference_records

    rng = random.Random(seed)
    words = ["apple", "river", "stone", "cloud", "tiger", "piano", "maple", "ocean"]
    out = []
    for _ in range(n_keys):
        key, other = rng.sample(words, 2)
        docs = [f"yes {key}", f"no {other}", f"yes, {key}", f"no, {other}"]
        out += preference_records(key, docs, [P.ALIGNED, P.UNALIGNED, P.ALIGNED, P.UNALIGNED],
                                  seed=rng.randrange(1 << 30))
    return out


def train_reranker_variant(ce_dir: Path, weighting: str, out: Path):
    """Two steps of 4 records (all three tasks) on the tiny cross-encoder, dropout off (so one
    process and two ranks draw no different masks); saved to out/rr_<weighting>."""
    import torch

    from solstice.training import reranker as rr

    ce = rr.load_reranker(ce_dir, max_length=32)
    for m in ce.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    res = rr.train_reranker(reranker_records(), ce, rr.RerankerConfig(epochs=1, lr=3e-3, batch_size=4, seed=0,
                                                                     weighting=weighting, max_length=32))
    rr.save_reranker(res.model, out / f"rr_{weighting}")
    return res


def reranker_scenario(out: Path) -> None:
    from solstice.core import distributed
    from solstice.models.tiny import build_tiny_cross_encoder

    ce_dir = out / "tiny-ce"
    if distributed.is_main():
        build_tiny_cross_encoder(ce_dir, seed=0)
    distributed.barrier()
    got = {w: train_reranker_variant(ce_dir, w, out).history for w in ("sum", "mgda")}
    (out / f"reranker-rank{distributed.rank()}.json").write_text(json.dumps(got))


# -- the toytrain paper ------------------------------------------------------------------------------
class ToyTrainConfig(BaseConfig):
    n_train: int = Field(8, description="training examples")
    n_eval: int = Field(6, description="held-out examples scored after training")
    batch_size: int = Field(4, description="examples per optimizer step (all ranks together)")
    lr: float = Field(0.05, description="AdamW learning rate")


def run_toytrain(cfg: ToyTrainConfig, ctx):
    import copy

    import torch

    from solstice.metrics.stats import mean_metric
    from solstice.training.data import collate, encode_supervised
    from solstice.training.loop import TrainConfig, train
    from solstice.training.params import load_trainable, save_adapter, save_trainable

    hf = ctx.model("target")
    model, tok = copy.deepcopy(hf.model), hf.tokenizer  # the loaded model is shared in the process: train a copy

    def train_stage():
        r = train(model, tok, examples(cfg.n_train), TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, seed=ctx.seed))
        save_trainable(model, ctx.artifact("checkpoints/final.safetensors"))
        save_adapter(model, ctx.artifact("model"))
        if ctx.is_main:
            tok.save_pretrained(str(ctx.artifact("model")))
        return {"losses": r.losses, "tokens": r.tokens}

    st = ctx.stage("train", train_stage)
    load_trainable(model, ctx.artifact("checkpoints/final.safetensors"))  # rank 0's file, on every rank (a resume)
    held = examples(cfg.n_eval, offset=100)
    samples = [Sample(f"ex-{i}", e.prompt, e.target) for i, e in enumerate(held)]
    rows_by_id = dict(zip((s.id for s in samples), encode_supervised(tok, held, max_length=64)))

    def score(batch):
        out = []
        with torch.no_grad():
            for s in batch:
                b = collate([rows_by_id[s.id]], tok.pad_token_id)
                loss = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
                out.append({"nll": float(loss)})
        return out

    rows = ctx.map(samples, score, batch_size=2, key="eval")
    if ctx.is_main:
        ctx.artifact("summary.txt").write_text(f"final loss {st['losses'][-1]:.6f}\n")
    return {"final_train_loss": MetricValue(float(st["losses"][-1]), len(st["losses"]), None, False, "last step"),
            "heldout_nll": mean_metric([r["nll"] for r in rows], higher_is_better=False)}


PAPER = PaperSpec(
    id="toytrain", title="Toy fine-tuning", arxiv="0000.00001", kind="method", version="1",
    config_cls=ToyTrainConfig, run="dist_worker:run_toytrain",
    roles={"target": Role(default="tiny:llama", requires=frozenset({"whitebox"}))},
    claims=(Claim("trains", "the training loss is finite", "harness", check="final_train_loss >= 0", kind="harness"),),
    scales={"smoke": Reproduction("8 examples, 2 steps")},
)


def main(out: Path) -> None:
    """The loop variants, then a whole `toytrain` run in the same two processes (the process group
    is already started, so `run_paper` uses it)."""
    from solstice.core import distributed
    from solstice.core.runner import run_paper

    loop_scenario(out)
    reranker_scenario(out)
    res = run_paper("toytrain", out=out / "runs", dist_backend="gloo")
    (out / f"run-rank{distributed.rank()}.json").write_text(json.dumps({"status": res.status, "error": res.error,
                                                                         "path": str(res.path)}))
    # a kill after the training stage and 4 of the 6 scored examples, then a resume on both ranks
    if distributed.is_main():
        from solstice.core.records import RunRecord

        rec = RunRecord(res.path)
        lines = rec.samples_path.read_text().splitlines(keepends=True)
        rec.samples_path.write_text("".join(lines[:4]))
        rec.metrics_path.unlink()
        rec.update(status="interrupted")
        ckpt = res.path / "artifacts" / "checkpoints" / "final.safetensors"
        (out / "ckpt-mtime.json").write_text(json.dumps(ckpt.stat().st_mtime_ns))
    distributed.barrier()
    again = run_paper("toytrain", resume=res.path, dist_backend="gloo")
    (out / f"resume-rank{distributed.rank()}.json").write_text(json.dumps({"status": again.status,
                                                                            "error": again.error}))
    distributed.shutdown()


def dpo_losses(out: Path) -> list[float]:
    """ARTE's DPO (TRL DPOTrainer, LoRA) on a tiny Llama: 8 pairs, global batch 4, 2 steps."""
    from solstice.models.tiny import build_tiny
    from solstice.papers.arte.align import dpo_align

    model, tok = build_tiny("llama")
    pairs = [{"prompt": f"Question {i}: is {'it ' * (i % 3)}true?\nAnswer:", "chosen": " yes, it is" if i % 2 else " no",
              "rejected": " no" if i % 2 else " yes"} for i in range(8)]
    _, hist = dpo_align(model, tok, pairs, out_dir=out, lr=1e-2, beta=0.1, epochs=1, batch_size=4, r=4, alpha=8,
                        seed=0, max_length=64)
    return [h["loss"] for h in hist if "loss" in h]


def dpo_main(out: Path) -> None:
    from solstice.core import distributed

    distributed.init("gloo")
    losses = dpo_losses(out / f"trainer{distributed.rank()}")
    (out / f"dpo-rank{distributed.rank()}.json").write_text(json.dumps(losses))
    distributed.shutdown()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "dpo":
        dpo_main(Path(sys.argv[1]))
    else:
        main(Path(sys.argv[1]))

"""MIGU with LoRA (peft), the transformers Trainer and torch.distributed, on tiny random Llamas."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from solstice.training.data import SupervisedExample, collate, encode_supervised  # noqa: E402
from solstice.training.loop import TrainConfig, train  # noqa: E402
from solstice.training.migu import MIGU, kept_rows, magnitude_mask  # noqa: E402
from solstice.training.params import add_lora  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    from solstice.models.tiny import build_tiny

    return build_tiny("llama")


def examples(n=8):
    words = ["cat", "dog", "red", "blue", "sun", "moon"]
    return [SupervisedExample("Text: " + " ".join(words[(i + k) % 6] for k in range(2 + i % 4)) + "\nAnswer:",
                              " yes" if i % 2 else " no") for i in range(n)]


def lora_model(tiny, **kw):
    model, tok = tiny
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(False)
    return add_lora(m, r=4, alpha=16, dropout=0.0, **kw), tok


def test_lora_units_are_the_adapter_matrices_with_the_right_mask_shapes(tiny):
    from peft.tuners.lora import LoraLayer

    peft_model, tok = lora_model(tiny)
    migu = MIGU(peft_model, 0.7)
    kinds = {u.kind for u in migu.units}
    assert kinds == {"lora_A", "lora_B"}
    n_layers = sum(isinstance(m, LoraLayer) for m in peft_model.modules())
    assert len(migu.units) == 2 * n_layers
    for u in migu.units:
        if u.kind == "lora_A":
            assert u.rows == 4 and u.source is not None
        else:
            assert isinstance(u.source, LoraLayer) and u.rows == u.source.base_layer.out_features
    b = collate(encode_supervised(tok, examples(), max_length=64), tok.pad_token_id)
    migu.attach()
    migu.task_start()
    migu.task_start()
    peft_model.train()
    out = peft_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
    out.loss.backward()
    masks = migu.compute_masks()
    migu.apply_masks(masks)
    for u in migu.units:
        assert masks[u.name].shape == (u.rows,)
        assert int(masks[u.name].sum()) <= u.rows
    for name, p in peft_model.named_parameters():
        if "lora_" not in name:
            assert p.grad is None, name  # base weights stay frozen
    migu.detach()


def test_lora_training_leaves_base_weights_and_masked_adapter_rows_alone(tiny):
    peft_model, tok = lora_model(tiny)
    base_before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" not in n}
    migu = MIGU(peft_model, 0.7)
    migu.task = 0
    # peft starts lora_B at zero; give it values so both matrices get gradients
    with torch.no_grad():
        for u in migu.units:
            if u.kind == "lora_B":
                u.weight.normal_(0, 0.5)
    before = {u.name: u.weight.detach().clone() for u in migu.units}
    train(peft_model, tok, examples(), TrainConfig(lr=1e-2, batch_size=8, optimizer="sgd", max_grad_norm=None),
          hooks=[migu])
    for u in migu.units:
        assert u.mask is not None
        assert torch.equal(u.weight[~u.mask], before[u.name][~u.mask]), u.name
        assert not torch.equal(u.weight[u.mask], before[u.name][u.mask]), u.name
    for n, p in peft_model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base_before[n])


def test_lora_b_modes_differ_on_a_planted_example(tiny):
    """Plant base rows whose output grows with the row index and lora_B rows whose output shrinks
    with it: the combined mask keeps the high rows, lora_B's own mask the low ones."""
    masks = {}
    for mode in ("combined", "own"):
        peft_model, tok = lora_model(tiny, target_modules=["o_proj"], layers=[0])
        layer = next(m for m in peft_model.modules() if hasattr(m, "lora_B") and len(m.lora_B))
        d = layer.base_layer.out_features
        with torch.no_grad():
            scale = torch.arange(1, d + 1, dtype=torch.float32)[:, None]
            layer.base_layer.weight.copy_(torch.ones_like(layer.base_layer.weight) * scale * 10)
            layer.lora_A["default"].weight.fill_(0.1)
            layer.lora_B["default"].weight.copy_(torch.ones_like(layer.lora_B["default"].weight) / scale)
        migu = MIGU(peft_model, 0.7, lora_b=mode, include=r"lora_B")
        assert len(migu.units) == 1
        with migu.measuring():
            b = collate(encode_supervised(tok, examples(), max_length=64), tok.pad_token_id)
            peft_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        masks[mode] = magnitude_mask(migu.units[0].m, 0.7)
        assert int(masks[mode].sum()) == kept_rows(d, 0.7)
    rows = torch.arange(len(masks["own"]))
    assert masks["combined"][rows >= len(rows) - kept_rows(len(rows), 0.7)].all()
    assert masks["own"][rows < kept_rows(len(rows), 0.7)].all()
    assert not torch.equal(masks["combined"], masks["own"])


# -- transformers Trainer ------------------------------------------------------------------------
class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def _trainer(model, tok, tmp_path, max_grad_norm, callbacks=()):
    from transformers import Trainer, TrainingArguments

    rows = encode_supervised(tok, examples(8), max_length=64)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2,
                             learning_rate=1e-3, max_grad_norm=max_grad_norm, report_to=[], save_strategy="no",
                             logging_strategy="no", use_cpu=True, lr_scheduler_type="constant", seed=0)
    return Trainer(model=model, args=args, train_dataset=_Rows(rows), callbacks=list(callbacks),
                   data_collator=lambda b: {k: v for k, v in collate(b, tok.pad_token_id).items() if k != "position_ids"})


def _norm(model):
    return float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None]))


def test_installed_trainer_clips_before_on_pre_optimizer_step(tiny, tmp_path):
    """Pins the transformers behaviour that makes the callback take over clipping."""
    from transformers import TrainerCallback

    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    seen = []

    class Probe(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            seen.append(_norm(model))

    _trainer(model, tok, tmp_path, 1e-4, [Probe()]).train()
    assert seen and all(n <= 1e-4 * 1.001 for n in seen)


def test_trainer_callback_masks_then_clips_and_restores_settings(tiny, tmp_path):
    from solstice.training.hf import attach_hooks

    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    migu = MIGU(model, 0.7)
    migu.task = 0  # the trainer's run is the second task
    seen = {}

    class Probe:
        def on_train_begin(self, model, optimizer): ...
        def before_clip(self, model):
            seen.setdefault("masked_unclipped", []).append(_norm(model))
        def after_step(self, model, optimizer):
            seen.setdefault("final", []).append(_norm(model))
            seen.setdefault("zero_rows", []).append(all(bool((u.weight.grad[~u.mask] == 0).all()) for u in migu.units))
        def on_train_end(self, model): ...

    trainer = _trainer(model, tok, tmp_path, 1e-4)
    attach_hooks(trainer, migu, Probe())
    trainer.train()
    assert migu.masked_steps == 2 and not migu.attached
    assert all(n > 1e-4 for n in seen["masked_unclipped"])
    assert all(abs(n - 1e-4) < 1e-7 for n in seen["final"])  # clipped after masking: norm is exactly max
    assert all(seen["zero_rows"])
    assert trainer.args.max_grad_norm == 1e-4


# -- torch.distributed ---------------------------------------------------------------------------
DDP_SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch, torch.distributed as dist
    from solstice.models.tiny import build_tiny
    from solstice.training.migu import MIGU
    from solstice.training.data import SupervisedExample, collate, encode_supervised
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model, tok = build_tiny("llama")
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    migu = MIGU(ddp, 0.7).attach()
    migu.task_start(); migu.task_start()
    exs = [SupervisedExample("Text: " + "ab " * (2 + rank * 3 + i) + "\\nAnswer:", " yes") for i in range(4)]
    b = collate(encode_supervised(tok, exs, max_length=64), tok.pad_token_id)
    ddp.train()
    ddp(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss.backward()
    local = {u.name: u.m.tolist() for u in migu.units}
    masks = {k: v.tolist() for k, v in migu.compute_masks().items()}
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
        json.dump({"local": local, "masks": masks}, f)
    dist.destroy_process_group()
''')


@pytest.mark.slow
def test_distributed_magnitudes_are_averaged_so_ranks_share_one_mask(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                    str(script), str(tmp_path)], check=True, env=env, timeout=300, capture_output=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["masks"] == r1["masks"]
    differs = False
    for name, m0 in r0["local"].items():
        m0, m1 = torch.tensor(m0), torch.tensor(r1["local"][name])
        differs |= not torch.equal(magnitude_mask(m0, 0.7), magnitude_mask(m1, 0.7))
        assert torch.equal(magnitude_mask((m0 + m1) / 2, 0.7), torch.tensor(r0["masks"][name]))
    assert differs  # the ranks saw different data, so averaging mattered

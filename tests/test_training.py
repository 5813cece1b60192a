"""The shared training layer: supervised encoding, the step-hook loop, parameter selection,
checkpoints and rank classification, on tiny random Llamas."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from solstice.errors import ConfigError  # noqa: E402
from solstice.training.data import (  # noqa: E402
    IGNORE_INDEX,
    SupervisedExample,
    collate,
    encode_supervised,
    n_steps,
    split_ids,
    step_batches,
)
from solstice.training.evaluate import rank_classify  # noqa: E402
from solstice.training.loop import HookedOptimizer, StepHook, TrainConfig, train  # noqa: E402
from solstice.training.params import (  # noqa: E402
    add_lora,
    decoder_layers,
    load_trainable,
    save_trainable,
    train_layers,
    trainable_state,
)


@pytest.fixture(scope="module")
def tiny():
    from solstice.models.tiny import build_tiny

    return build_tiny("llama")


def fresh(tiny):
    return copy.deepcopy(tiny[0]), tiny[1]


EXS = [SupervisedExample(f"Q: is {w} a colour?\nA:", " yes" if w in ("red", "blue") else " no")
       for w in ("red", "cat", "blue", "dog", "sun", "red", "tree", "blue")]


def test_encoding_masks_the_prompt_and_keeps_the_target(tiny):
    _, tok = tiny
    rows = encode_supervised(tok, EXS[:2], max_length=64)
    for ex, r in zip(EXS, rows):
        ctx, tgt = split_ids(tok, ex.prompt, ex.target)
        assert r["input_ids"] == ctx + tgt + [tok.eos_token_id]
        assert r["labels"] == [IGNORE_INDEX] * len(ctx) + tgt + [tok.eos_token_id]
    short = encode_supervised(tok, EXS[:1], max_length=8, add_eos=False)[0]
    assert len(short["input_ids"]) == 8 and short["labels"][-len(split_ids(tok, EXS[0].prompt, EXS[0].target)[1]):][0] >= 0
    with pytest.raises(ConfigError):
        encode_supervised(tok, [SupervisedExample("a", " " + "x" * 50)], max_length=8)


def test_collate_pads_both_sides_with_real_token_positions(tiny):
    _, tok = tiny
    rows = encode_supervised(tok, EXS[:3], max_length=64)
    for side in ("left", "right"):
        b = collate(rows, tok.pad_token_id, side=side)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            real = b["attention_mask"][i].bool()
            assert int(real.sum()) == n
            assert b["input_ids"][i][real].tolist() == r["input_ids"]
            assert b["labels"][i][real].tolist() == r["labels"]
            assert (b["labels"][i][~real] == IGNORE_INDEX).all()
            assert b["position_ids"][i][real].tolist() == list(range(n))


def test_step_batches_cover_every_example_once_per_epoch():
    got = list(step_batches(10, 4, epochs=2, seed=1))
    assert len(got) == n_steps(10, 4, epochs=2) == 6
    first, second = sorted(sum(got[:3], [])), sorted(sum(got[3:], []))
    assert first == second == list(range(10))
    assert got != list(step_batches(10, 4, epochs=2, seed=2))
    assert len(list(step_batches(10, 4, epochs=0.5))) == 2


def test_training_lowers_the_loss_and_leaves_eval_mode(tiny):
    model, tok = fresh(tiny)
    res = train(model, tok, EXS * 4, TrainConfig(lr=3e-3, batch_size=8, epochs=3))
    assert res.steps == 12 and len(res.losses) == 12
    assert sum(res.losses[-3:]) < sum(res.losses[:3])
    assert not model.training


def test_micro_batching_gives_the_same_update(tiny):
    a, tok = fresh(tiny)
    b, _ = fresh(tiny)
    cfg = dict(lr=0.1, batch_size=8, optimizer="sgd", max_grad_norm=None)
    train(a, tok, EXS, TrainConfig(**cfg))
    train(b, tok, EXS, TrainConfig(**cfg, micro_batch_size=3))
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.allclose(x, y, atol=1e-6)


def test_hooks_run_in_step_order_and_end_even_on_error(tiny):
    model, tok = fresh(tiny)
    calls = []

    class Rec(StepHook):
        def on_train_begin(self, model, optimizer):
            calls.append("begin")

        def on_micro_batch(self, model, batch):
            calls.append("micro")

        def before_clip(self, model):
            calls.append("clip")

        def after_step(self, model, optimizer):
            calls.append("step")

        def on_train_end(self, model):
            calls.append("end")

    train(model, tok, EXS, TrainConfig(batch_size=4, micro_batch_size=2), hooks=[Rec()])
    assert calls == ["begin"] + ["micro", "micro", "clip", "step"] * 2 + ["end"]
    calls.clear()

    class Boom(StepHook):
        def before_clip(self, model):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        train(model, tok, EXS, TrainConfig(batch_size=4), hooks=[Rec(), Boom()])
    assert calls[-1] == "end" and not model.training


def test_hooked_optimizer_clips_after_the_hooks(tiny):
    model, tok = fresh(tiny)

    class Halve(StepHook):
        def before_clip(self, model):
            for p in model.parameters():
                p.grad.mul_(1e6)  # a hook that inflates gradients: clipping must see it

    opt = HookedOptimizer(torch.optim.SGD(model.parameters(), lr=1.0), [Halve()], model=model, max_grad_norm=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    b = collate(encode_supervised(tok, EXS, max_length=64), tok.pad_token_id)
    model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss.backward()
    opt.step()
    moved = torch.sqrt(sum(((p.detach() - q) ** 2).sum() for p, q in zip(model.parameters(), before)))
    assert float(moved) == pytest.approx(1e-3, rel=1e-3)  # lr 1 x clipped norm
    assert opt.param_groups[0]["lr"] == 1.0  # delegated


def test_train_layers_and_checkpoints_round_trip(tiny, tmp_path):
    model, tok = fresh(tiny)
    assert len(decoder_layers(model)) == 2
    assert train_layers(model, 1) == [1]
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("model.layers.1.") for n in names)
    snap = trainable_state(model)
    path = save_trainable(model, tmp_path / "ck.safetensors")
    train(model, tok, EXS, TrainConfig(lr=1e-2, batch_size=8))
    assert any(not torch.equal(snap[n], p) for n, p in model.named_parameters() if n in snap)
    load_trainable(model, path)
    assert all(torch.equal(snap[n], p) for n, p in model.named_parameters() if n in snap)
    train_layers(model)  # all
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError):
        train_layers(model, layers=[5])


def test_lora_trains_only_adapters_on_chosen_layers(tiny):
    model, tok = fresh(tiny)
    for p in model.parameters():
        p.requires_grad_(False)
    peft_model = add_lora(model, r=2, alpha=4, layers=[1])
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".layers.1." in n for n in trainable)
    base = {n: p.detach().clone() for n, p in peft_model.named_parameters() if not p.requires_grad}
    train(peft_model, tok, EXS, TrainConfig(lr=1e-2, batch_size=8))
    assert all(torch.equal(p, base[n]) for n, p in peft_model.named_parameters() if n in base)


def test_rank_classify_matches_the_model_layer_loglikelihood(tiny_llama):
    prompts = ["Colour of the sky:", "Opposite of up:", "A pet:"]
    labels = ["blue sky", "down", "a very long label text"]  # multi-token labels of different lengths
    res = rank_classify(tiny_llama.model, tiny_llama.tokenizer, prompts, labels, prefix=" ", batch_size=2)
    ref = tiny_llama.loglikelihood([(p, " " + lab) for p in prompts for lab in labels])
    for i in range(len(prompts)):
        for j in range(len(labels)):
            assert res.scores[i][j] == pytest.approx(ref[i * len(labels) + j].logprob, abs=1e-4)
    assert res.predictions == [max(range(3), key=lambda j, s=s: s[j]) for s in res.scores]
    mean = rank_classify(tiny_llama.model, tiny_llama.tokenizer, prompts, labels, prefix=" ", normalize="mean")
    n_tok = [len(tiny_llama.encode(" " + lab)) for lab in labels]
    assert mean.scores[0][2] == pytest.approx(res.scores[0][2] / n_tok[2], abs=1e-4)
    assert res.correct(["blue sky", "down", "x"])[2] is False


def test_frozen_prefix_matches_the_full_model_in_training_and_scoring(tiny_llama):
    from solstice.training.prefix import FrozenPrefix

    model, tok = copy.deepcopy(tiny_llama.model), tiny_llama.tokenizer
    train_layers(model, 1)
    prefix = FrozenPrefix(model, 1)
    rows = encode_supervised(tok, EXS, max_length=64)
    assert prefix.verify([r["input_ids"] for r in rows[:4]]) < 1e-4
    cfg = TrainConfig(lr=0.05, batch_size=4, optimizer="sgd", max_grad_norm=None)
    slow = copy.deepcopy(model)
    train(slow, tok, rows, cfg)
    train(model, tok, rows, cfg, prefix=prefix)
    for (n, a), b in zip(model.named_parameters(), slow.parameters()):
        assert torch.allclose(a, b, atol=1e-5), n
    prompts = ["Colour of the sky:", "A pet:", "The opposite of a long word is a"]
    labels = ["blue sky", "dog", "very long label here"]
    full = rank_classify(model, tok, prompts, labels, prefix=" ")
    fast = rank_classify(model, tok, prompts, labels, prefix=" ", frozen=prefix, batch_size=2)
    for a, b in zip(full.scores, fast.scores):
        assert a == pytest.approx(b, abs=1e-4)
    assert len(decoder_layers(model)) == 2 and all(type(m).__name__ != "PassThrough" for m in decoder_layers(model))
    with pytest.raises(ConfigError):
        FrozenPrefix(slow, 0)
    train_layers(slow)  # everything trains: nothing is frozen below layer 1
    with pytest.raises(ConfigError):
        FrozenPrefix(slow, 1)


def test_linear_cross_entropy_equals_torch_in_value_and_gradients():
    from solstice.training.loss import linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    h = torch.randn(11, 6, dtype=torch.float64, generator=g).requires_grad_(True)
    w = torch.randn(9, 6, dtype=torch.float64, generator=g).requires_grad_(True)
    b = torch.randn(9, dtype=torch.float64, generator=g).requires_grad_(True)
    y = torch.randint(0, 9, (11,), generator=g)
    ref = torch.nn.functional.cross_entropy(h @ w.T + b, y, reduction="sum")
    want = torch.autograd.grad(3 * ref, (h, w, b))
    for chunk in (9 * 4, 9 * 100):  # three chunks of <= 4 rows (the last one short), then one chunk
        got = linear_cross_entropy(h, w, b, y, chunk_elements=chunk)
        assert float(got.detach()) == pytest.approx(float(ref.detach()), abs=1e-12)
        for a, r in zip(torch.autograd.grad(3 * got, (h, w, b)), want):
            assert torch.allclose(a, r, atol=1e-12)
    frozen = linear_cross_entropy(h, w.detach(), None, y)  # a frozen head without bias: d/dhidden only
    (gh,) = torch.autograd.grad(frozen, (h,))
    ref_h = torch.nn.functional.cross_entropy(h @ w.detach().T, y, reduction="sum")
    assert torch.allclose(gh, torch.autograd.grad(ref_h, (h,))[0], atol=1e-12)
    with torch.no_grad():
        assert not linear_cross_entropy(h, w, b, y).requires_grad
    with pytest.raises(ConfigError):  # ignored positions must be selected away first
        linear_cross_entropy(h, w, b, torch.full((11,), IGNORE_INDEX))


def test_fused_loss_trains_exactly_like_the_models_own_loss(tiny):
    _, tok = tiny
    rows = encode_supervised(tok, EXS, max_length=64)  # prompts masked, rows of different lengths
    grads: dict[str, dict] = {}

    class Grab(StepHook):
        def __init__(self, key: str) -> None:
            self.key = key

        def before_clip(self, model):
            grads[self.key] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    cfg = dict(lr=0.1, batch_size=8, max_steps=1, optimizer="sgd", max_grad_norm=None)
    plain, _ = fresh(tiny)
    fused, _ = fresh(tiny)  # everything trains, the untied head too: hidden, weight gradients
    ref, _ = fresh(tiny)
    a = train(plain, tok, rows, TrainConfig(**cfg), hooks=[Grab("plain")])
    b = train(fused, tok, rows, TrainConfig(**cfg, fused_loss=True), hooks=[Grab("fused")])
    # the model's own loss, one unpadded row at a time, weighted to the step's mean over targets
    n = sum(sum(1 for x in r["labels"][1:] if x >= 0) for r in rows)
    ref.train()
    total = sum(ref(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]])).loss
                * sum(1 for x in r["labels"][1:] if x >= 0) / n for r in rows)
    total.backward()
    assert a.losses[0] == pytest.approx(float(total), abs=1e-5)
    assert b.losses[0] == pytest.approx(float(total), abs=1e-5)
    assert "lm_head.weight" in grads["fused"]
    for name, p in ref.named_parameters():
        assert torch.allclose(grads["fused"][name], p.grad, atol=1e-5), name
        assert torch.allclose(grads["plain"][name], p.grad, atol=1e-5), name
    for x, y in zip(plain.parameters(), fused.parameters()):
        assert torch.allclose(x, y, atol=1e-6)


def test_fused_loss_refuses_a_model_that_transforms_its_logits(tiny):
    model, tok = fresh(tiny)

    def scale(module, args, out):
        out.logits = out.logits * 0.0625  # as Cohere scales its logits (Gemma-2 soft-caps them)
        return out

    model.register_forward_hook(scale)
    with pytest.raises(ConfigError, match="fused loss"):
        train(model, tok, EXS, TrainConfig(lr=0.1, batch_size=4, max_steps=1, fused_loss=True))
    train(model, tok, EXS, TrainConfig(lr=0.1, batch_size=4, max_steps=1))  # the model's own loss still runs


def test_fused_loss_equals_the_plain_loss_on_gpt2():
    from solstice.models.tiny import build_tiny

    model, tok = build_tiny("gpt2")
    other = copy.deepcopy(model)
    cfg = dict(lr=0.05, batch_size=4, max_steps=2, optimizer="sgd", max_grad_norm=None)
    a = train(model, tok, EXS, TrainConfig(**cfg))
    b = train(other, tok, EXS, TrainConfig(**cfg, fused_loss=True))
    assert b.losses == pytest.approx(a.losses, abs=1e-5)
    for x, y in zip(model.parameters(), other.parameters()):
        assert torch.allclose(x, y, atol=1e-5)


def test_router_aux_loss_equals_the_mixtral_models_own_loss():
    """With router_aux_loss_coef the step loss is transformers' Mixtral loss (mean CE + coef x its
    load-balancing loss) on the same batch, the router gets the aux gradient, and the aux values are
    recorded per step; a dense model given the coefficient is refused."""
    from solstice.errors import CapabilityError
    from solstice.models.tiny import build_tiny

    moe, tok = build_tiny("mixtral")
    ref = copy.deepcopy(moe)
    plain = copy.deepcopy(moe)
    rows = [{"input_ids": ids, "labels": ids} for ids in
            ([5, 9, 11, 7, 3, 8, 21, 4], [6, 2, 13, 17, 10, 12, 19, 14])]  # equal lengths: no padding
    coef = 0.5
    grads: dict[str, dict] = {}

    class Grab(StepHook):
        def __init__(self, key):
            self.key = key

        def before_clip(self, model):
            grads[self.key] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    cfg = dict(lr=0.1, batch_size=2, max_steps=1, optimizer="sgd", max_grad_norm=None)
    res = train(moe, tok, rows, TrainConfig(**cfg, router_aux_loss_coef=coef), hooks=[Grab("aux")])
    train(plain, tok, rows, TrainConfig(**cfg), hooks=[Grab("plain")])
    ref.router_aux_loss_coef = coef  # read from the config at init
    ref.train()
    out = ref(input_ids=torch.tensor([r["input_ids"] for r in rows]), labels=torch.tensor([r["labels"] for r in rows]),
              output_router_logits=True)
    out.loss.backward()
    assert res.losses[0] == pytest.approx(float(out.loss.detach()), abs=1e-5)
    assert res.aux_losses[0] == pytest.approx(float(out.aux_loss.detach()), abs=1e-6)
    assert "aux_loss_last" in res.summary()
    gate = next(n for n in grads["aux"] if n.endswith("mlp.gate.weight"))
    assert torch.allclose(grads["aux"][gate], dict(ref.named_parameters())[gate].grad, atol=1e-5)
    assert not torch.allclose(grads["aux"][gate], grads["plain"][gate], atol=1e-7)  # the aux term reaches the router
    dense, dtok = build_tiny("llama")
    with pytest.raises(CapabilityError, match="aux_loss"):
        train(dense, dtok, rows, TrainConfig(**cfg, router_aux_loss_coef=coef))
    with pytest.raises(ConfigError, match="fused_loss"):
        TrainConfig(router_aux_loss_coef=coef, fused_loss=True)

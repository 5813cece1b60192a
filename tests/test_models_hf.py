"""The hf backend on tiny random models: generation, log-likelihoods and white-box access."""

import pytest
import torch

from solstice.errors import BackendError, ConfigError
from solstice.models import GenParams, load_model
from solstice.models.base import ModelSpec
from solstice.models.hf import HFModel


def test_greedy_is_deterministic_and_batched_like_single(tiny_llama):
    prompts = ["hello", "a much longer prompt than the first one", [{"role": "user", "content": "hi"}]]
    p = GenParams(max_new_tokens=6)
    a = tiny_llama.generate(prompts, p)
    b = tiny_llama.generate(prompts, p)
    assert [c[0].text for c in a] == [c[0].text for c in b]
    single = [tiny_llama.generate([x], p)[0][0].text for x in prompts]
    assert single == [c[0].text for c in a]


def test_sampling_seeds_and_n(tiny_llama):
    p = GenParams(max_new_tokens=8, temperature=1.0, n=4, seed=3)
    a = tiny_llama.generate(["abc", "xyz"], p)
    assert [len(x) for x in a] == [4, 4]
    assert [c.text for c in a[0]] == [c.text for c in tiny_llama.generate(["abc", "xyz"], p)[0]]
    assert len({c.text for c in a[0]}) > 1


def test_logprobs_match_a_manual_forward(tiny_llama):
    p = GenParams(max_new_tokens=5, logprobs=True)
    prompt = "The cat"
    c = tiny_llama.generate([prompt], p)[0][0]
    assert c.token_logprobs is not None and len(c.token_logprobs) == c.n_tokens == len(c.tokens)
    ids = tiny_llama.encode(prompt) + tiny_llama.tokenizer.convert_tokens_to_ids(list(c.tokens))
    with torch.no_grad():
        lp = torch.log_softmax(tiny_llama.model(torch.tensor([ids])).logits[0], -1)
    n0 = len(ids) - c.n_tokens
    manual = [float(lp[i - 1, ids[i]]) for i in range(n0, len(ids))]
    assert max(abs(a - b) for a, b in zip(manual, c.token_logprobs)) < 1e-4
    # greedy: every generated token is the argmax
    assert all(int(lp[i - 1].argmax()) == ids[i] for i in range(n0, len(ids)))


def test_loglikelihood_against_manual_forward(tiny_llama):
    ctx, cont = "Question: 2+2?\nAnswer:", " four"
    res = tiny_llama.loglikelihood([(ctx, cont), ("x", " y"), (ctx, cont)])
    ids = tiny_llama.encode(ctx + cont)
    n_cont = len(ids) - len(tiny_llama.encode(ctx))
    with torch.no_grad():
        logits = tiny_llama.model(torch.tensor([ids])).logits[0]
    lp = torch.log_softmax(logits, -1)
    manual = sum(float(lp[i - 1, ids[i]]) for i in range(len(ids) - n_cont, len(ids)))
    assert abs(res[0].logprob - manual) < 1e-4
    assert res[0].n_tokens == n_cont and abs(res[0].logprob - res[2].logprob) < 1e-5


def test_label_logprobs_single_token_path_equals_loglikelihood(tiny_llama):
    prompts = ["Is it true? Answer:", "Another question entirely? Answer:"]
    fast = tiny_llama.label_logprobs(prompts, [" A", " B"])  # byte-level: ' ' and 'A' are 2 tokens
    assert set(fast[0]) == {" A", " B"}
    one = tiny_llama.label_logprobs(prompts, ["A", "B"])  # single tokens: one forward pass
    slow = tiny_llama.loglikelihood([(p, lab) for p in prompts for lab in ["A", "B"]])
    assert abs(one[1]["B"] - slow[3].logprob) < 1e-4 and abs(one[0]["A"] - slow[0].logprob) < 1e-4


def test_stop_strings_trim(tiny_llama):
    free = tiny_llama.generate(["zz"], GenParams(max_new_tokens=12))[0][0].text
    if len(free) >= 3:
        stop = free[2]
        c = tiny_llama.generate(["zz"], GenParams(max_new_tokens=12, stop=(stop,), logprobs=True))[0][0]
        assert stop not in c.text and free.startswith(c.text)
        assert c.finish_reason == "stop"


def test_chat_template_and_prefill(tiny_llama):
    text = tiny_llama.render([{"role": "user", "content": "hi"}])
    assert text.endswith("<|im_start|>assistant\n")
    pre = tiny_llama.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "```python\n"}])
    assert pre.endswith("```python\n")


def test_hidden_states_every_layer(tiny_llama):
    hs = tiny_llama.hidden_states(["one two", "three"])
    L = tiny_llama.model.config.num_hidden_layers
    assert hs[0].shape == (L + 1, len(tiny_llama.encode("one two")), 32)
    with torch.no_grad():
        ref = tiny_llama.model(torch.tensor([tiny_llama.encode("three")]), output_hidden_states=True).hidden_states
    assert torch.allclose(hs[1], torch.stack(ref)[:, 0], atol=1e-5)
    pos = tiny_llama.hidden_states(["one two"], positions=[[-1]])
    assert torch.allclose(pos[0][:, 0], hs[0][:, -1], atol=1e-5)


def test_capture_hooks_and_gradients(tiny_llama):
    name = "model.layers.0.mlp"
    with tiny_llama.capture([name]) as seen:
        tiny_llama.forward(["abc"])
    assert seen[name][0].shape[-1] == 32
    with pytest.raises(ConfigError):
        with tiny_llama.capture(["no.such.module"]):
            pass
    out = tiny_llama.forward(["abc def"], grad=True)
    out.logits.sum().backward()
    g = tiny_llama.model.model.layers[0].mlp.down_proj.weight.grad
    assert g is not None and g.abs().sum() > 0
    tiny_llama.model.zero_grad(set_to_none=True)


def test_custom_attention_function_is_used(tiny_llama):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    base = tiny_llama.forward(["attention check"]).logits
    calls = []

    def counting(module, q, k, v, mask, **kw):
        calls.append(q.shape)
        return sdpa_attention_forward(module, q, k, v, mask, **kw)

    tiny_llama.set_attention(counting, "counting_test")
    try:
        out = tiny_llama.forward(["attention check"]).logits
    finally:
        tiny_llama.set_attention("eager")
    assert len(calls) == tiny_llama.model.config.num_hidden_layers
    assert torch.allclose(out, base, atol=1e-5)


def test_tiny_mixtral_router_and_generation(tiny_mixtral):
    out = tiny_mixtral.forward(["moe"], output_router_logits=True)
    assert len(out.router_logits) == 2 and out.router_logits[0].shape[-1] == 4
    assert len(tiny_mixtral.generate_text(["moe"], max_new_tokens=3)) == 1


def test_hf_loads_saved_directory(tiny_llama_dir, tiny_llama):
    m = load_model(f"hf:{tiny_llama_dir}", cached=False)
    assert isinstance(m, HFModel) and m.info()["num_layers"] == 2
    a = m.loglikelihood([("abc", " d")])[0].logprob
    assert abs(a - tiny_llama.loglikelihood([("abc", " d")])[0].logprob) < 1e-5


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="does not exist"):
        HFModel(ModelSpec("hf", str(tmp_path / "nope"), {}, "hf:nope"))


def _slow_build(out: str, counter: str) -> None:
    """Run in a separate process: build `out` through build_once with a slow builder that
    counts its own invocations in `counter` (appending one line per build)."""
    import time
    from pathlib import Path

    from solstice.models.hf import build_once

    def build(tmp: Path) -> None:
        with open(counter, "a") as fh:
            fh.write("built\n")
        (tmp / "model.safetensors").write_bytes(b"w" * 1000)
        time.sleep(0.5)
        (tmp / "config.json").write_text("{}")

    build_once(Path(out), build, marker="model.safetensors")


def test_build_once_is_safe_when_two_processes_convert_at_once(tmp_path):
    # two processes meeting a fresh cache (as two runs started together do) must build the
    # directory once and both find it complete; a shared fixed temp name used to make one of
    # them fail with "No such file or directory" while saving
    import multiprocessing as mp

    out, counter = tmp_path / "cache" / "model-abc", tmp_path / "count.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_slow_build, args=(str(out), str(counter))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert counter.read_text().splitlines() == ["built"]
    assert (out / "config.json").is_file() and (out / "model.safetensors").stat().st_size == 1000
    assert [p.name for p in out.parent.iterdir() if ".tmp-" in p.name] == []


def test_build_once_leaves_nothing_behind_when_the_build_fails(tmp_path):
    from solstice.models.hf import build_once

    out = tmp_path / "m"

    def broken(tmp):
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(out, broken, marker="model.safetensors")
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name != "m.lock"] == []

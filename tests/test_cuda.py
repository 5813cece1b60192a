"""The model and training layers on a CUDA device (marker `gpu`: outside the default suite, skipped
without a GPU; run with `pytest -m gpu`). Tiny random models saved to disk and loaded through the
`hf:` spec, so the device and dtype choice of the loader is what is exercised: CPU float32 is the
reference, CUDA float32 must match it, CUDA's default (bfloat16) must stay close and finite."""

from __future__ import annotations

import copy
import io
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

from solstice.models import GenParams, load_model, user_message  # noqa: E402
from solstice.models.prefix import fast_label_logprobs  # noqa: E402
from solstice.models.tiny import build_tiny, build_tiny_vlm  # noqa: E402

# a shared prefix longer than the shared-prefix scorer's minimum (16 tokens)
STEM = "Answer the question with one word. The question is about colours, animals and places. "
PROMPTS = [STEM + "Colour of the sky?", STEM + "A pet that barks?", STEM + "Capital of France?"]
LABELS = ["A", "B", "C", "D"]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-llama-cuda")
    build_tiny("llama", save_to=d)
    return d


@pytest.fixture(scope="module")
def cpu32(llama_dir):
    return load_model(f"hf:{llama_dir}?device=cpu&dtype=float32", cached=False)


@pytest.fixture(scope="module")
def cuda32(llama_dir):
    return load_model(f"hf:{llama_dir}?device=cuda&dtype=float32", cached=False)


def _close(a: dict[str, float], b: dict[str, float]) -> float:
    assert a.keys() == b.keys()
    return max(abs(a[k] - b[k]) for k in a) if a else 0.0


def test_default_device_is_cuda_in_bfloat16(llama_dir):
    m = load_model(f"hf:{llama_dir}", cached=False)
    p = next(m.model.parameters())
    assert p.device.type == "cuda" and p.dtype == torch.bfloat16
    lp = m.label_logprobs(PROMPTS, LABELS)
    assert all(math.isfinite(v) for row in lp for v in row.values())


def test_cuda_float32_scores_equal_cpu(cpu32, cuda32):
    assert next(cuda32.model.parameters()).device.type == "cuda"
    reqs = [(p, " " + w) for p in PROMPTS for w in ("blue", "a dog", "Paris is the capital")]
    for a, b in zip(cpu32.loglikelihood(reqs), cuda32.loglikelihood(reqs)):
        assert a.n_tokens == b.n_tokens and a.logprob == pytest.approx(b.logprob, abs=2e-3)
    for a, b in zip(cpu32.label_logprobs(PROMPTS, LABELS), cuda32.label_logprobs(PROMPTS, LABELS)):
        assert _close(a, b) < 2e-3
    multi = ["blue sky", "a dog", "Paris"]  # multi-token labels take the exact path
    for a, b in zip(cpu32.label_logprobs(PROMPTS, multi), cuda32.label_logprobs(PROMPTS, multi)):
        assert _close(a, b) < 2e-3


def test_shared_prefix_scorer_on_cuda_equals_plain_scoring(cuda32):
    labels = ["blue sky", "a dog", "Paris"]
    fast = fast_label_logprobs(cuda32, PROMPTS, labels)
    plain = cuda32.label_logprobs(PROMPTS, labels)
    for a, b in zip(fast, plain):
        assert _close(a, b) < 2e-3


def test_hidden_states_on_cuda_equal_cpu_and_come_back_as_cpu_float32(cpu32, cuda32):
    a = cpu32.hidden_states(PROMPTS[:2], positions=[[-1, -2], [0, -1]])
    b = cuda32.hidden_states(PROMPTS[:2], positions=[[-1, -2], [0, -1]])
    for x, y in zip(a, b):
        assert y.device.type == "cpu" and y.dtype == torch.float32 and x.shape == y.shape
        assert (x - y).abs().max().item() < 2e-3


def test_greedy_generation_on_cuda_equals_cpu(cpu32, cuda32):
    params = GenParams(max_new_tokens=8, temperature=0.0)
    a = [o[0].text for o in cpu32.generate(PROMPTS, params)]
    b = [o[0].text for o in cuda32.generate(PROMPTS, params)]
    assert a == b


def test_training_step_on_cuda_equals_cpu():
    from solstice.training.data import SupervisedExample, encode_supervised
    from solstice.training.loop import TrainConfig, train

    model, tok = build_tiny("llama")
    exs = [SupervisedExample(f"Q: is {w} a colour?\nA:", " yes" if w in ("red", "blue") else " no")
           for w in ("red", "cat", "blue", "dog")]
    rows = encode_supervised(tok, exs, max_length=64)
    cfg = TrainConfig(lr=0.1, batch_size=4, optimizer="sgd", max_grad_norm=1.0)
    cpu, gpu = copy.deepcopy(model), copy.deepcopy(model).cuda()
    r_cpu, r_gpu = train(cpu, tok, rows, cfg), train(gpu, tok, rows, cfg)
    assert r_cpu.losses == pytest.approx(r_gpu.losses, abs=1e-4)
    assert next(gpu.parameters()).device.type == "cuda"
    for (n, x), y in zip(cpu.named_parameters(), gpu.parameters()):
        assert torch.allclose(x, y.cpu(), atol=1e-4), n


def test_flex_sparse_attention_compiles_on_cuda_and_matches_the_sdpa_path():
    import transformers as tf

    from solstice.errors import CapabilityError
    from solstice.models import sparse_attention as sa
    from solstice.models.tiny import tiny_tokenizer

    small, _ = build_tiny("llama")  # head dimension 8: below what the CUDA flex kernel accepts
    small = small.cuda()
    sa.apply_plan(small, sa.SparsePlan.uniform(0.0, 0.0, 2, 2, 2), backend="flex")
    with pytest.raises(CapabilityError, match="head dimension"), torch.no_grad():
        small(input_ids=torch.ones((1, 8), dtype=torch.long, device="cuda"))
    tok = tiny_tokenizer()
    cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(cfg).eval().cuda()  # head dimension 16
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 250, (2, 160), generator=g).cuda()
    mask = torch.ones_like(ids)
    mask[0, :17] = 0
    plan = sa.SparsePlan(((0.0, 64.0), (128.0, 0.0)), ((0.0, 0.25), (0.0, 0.5)), 2)
    with torch.no_grad():
        sa.apply_plan(model, None)
        dense = model(input_ids=ids, attention_mask=mask).logits
        sa.apply_plan(model, plan)
        ref = model(input_ids=ids, attention_mask=mask).logits
        sa.apply_plan(model, plan, backend="flex")
        flex = model(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert (ref - flex)[real].abs().max().item() < 1e-3
    assert (dense[:, 150:] - ref[:, 150:]).abs().max().item() > 1e-4  # the plan is really sparse there


@pytest.mark.parametrize("kind", ["llava", "idefics3"])
def test_saved_vlm_on_cuda_in_bfloat16_reads_the_image(tmp_path, kind):
    PIL = pytest.importorskip("PIL.Image")

    def png(color) -> bytes:
        buf = io.BytesIO()
        PIL.new("RGB", (40, 30), color).save(buf, format="PNG")
        return buf.getvalue()

    build_tiny_vlm(kind, save_to=tmp_path)
    gpu = load_model(f"hf:{tmp_path}", cached=False)  # default: cuda, bfloat16 (pixels must follow)
    cpu = load_model(f"hf:{tmp_path}?device=cpu&dtype=float32", cached=False)
    prompts = [[user_message("Pick one.", [png((250, 0, 0))])], [user_message("Pick one.", [png((0, 0, 250))])]]
    lg, lc = gpu.label_logprobs(prompts, LABELS), cpu.label_logprobs(prompts, LABELS)
    assert all(math.isfinite(v) for row in lg for v in row.values())
    for a, b in zip(lg, lc):
        assert _close(a, b) < 0.1  # bfloat16 against float32 on a 2-layer random model
    out = gpu.generate(prompts, GenParams(max_new_tokens=4))
    assert all(o[0].n_tokens <= 4 for o in out)

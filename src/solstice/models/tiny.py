"""Tiny random-initialised models built in-process, for tests: `tiny:llama` (2 layers, hidden 32,
eager attention), `tiny:mixtral` (2 layers, 4 experts, top-2), `tiny:gpt2` (2 layers, a
non-Llama attention layout), `tiny:qwen2_moe` (4 experts, top-2 without renormalisation, a gated
shared expert) and `tiny:olmoe` (8 experts, top-2). Their tokenizer is byte-level
with no merges (any text encodes) plus ChatML special tokens. Weights are seeded, so every build
is identical. `build_tiny(kind, save_to=dir)` also writes them to disk for `hf:<dir>` loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, require
from solstice.models.base import ModelSpec

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def tiny_tokenizer() -> Any:
    tokenizers = require("tokenizers", "hf")
    tf = require("transformers", "hf")
    from tokenizers import decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for s in SPECIALS:
        vocab[s] = len(vocab)
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    from solstice.models.hf import CHATML_TEMPLATE

    fast = tf.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        bos_token="<|endoftext|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny(kind: str = "llama", *, seed: int = 0, save_to: str | Path | None = None) -> tuple[Any, Any]:
    torch = require("torch", "hf")
    tf = require("transformers", "hf")
    tok = tiny_tokenizer()
    common = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    if kind == "llama":
        cfg = tf.LlamaConfig(**common)
        model = tf.LlamaForCausalLM(cfg)
    elif kind == "mixtral":
        cfg = tf.MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2)
        model = tf.MixtralForCausalLM(cfg)
    elif kind == "gpt2":  # a non-Llama attention layout (fused c_attn, no KV heads)
        cfg = tf.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=2048,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                            pad_token_id=tok.pad_token_id)
        model = tf.GPT2LMHeadModel(cfg)
    elif kind == "qwen2_moe":  # shared expert with a sigmoid gate, renormalised top-k off
        cfg = tf.Qwen2MoeConfig(**common, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48,
                                shared_expert_intermediate_size=64, norm_topk_prob=False)
        model = tf.Qwen2MoeForCausalLM(cfg)
    elif kind == "olmoe":
        cfg = tf.OlmoeConfig(**common, num_experts=8, num_experts_per_tok=2)
        model = tf.OlmoeForCausalLM(cfg)
    else:
        raise ConfigError(f"unknown tiny model '{kind}'; use tiny:llama, tiny:mixtral, tiny:gpt2, "
                          "tiny:qwen2_moe or tiny:olmoe")
    if kind in ("qwen2_moe", "olmoe"):  # their routers are zero-initialised: give them a direction
        with torch.no_grad():
            for layer in model.model.layers:
                if hasattr(layer.mlp, "gate"):
                    layer.mlp.gate.weight.normal_(0.0, 0.5)
    model.set_attn_implementation("eager")
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.eval()
    if save_to is not None:
        model.save_pretrained(str(save_to))
        tok.save_pretrained(str(save_to))
    return model, tok


def load_tiny(spec: ModelSpec):
    from solstice.models.hf import HFModel

    model, tok = build_tiny(spec.target, seed=int(spec.options.get("seed", 0)))
    return HFModel(spec, model=model, tokenizer=tok)

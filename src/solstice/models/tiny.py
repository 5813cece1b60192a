"""Tiny random-initialised models built in-process, for tests: `tiny:llama` (2 layers, hidden 32,
eager attention), `tiny:mixtral` (2 layers, 4 experts, top-2) and the vision-language
`tiny:llava` (a 2-layer CLIP vision tower on 28x28 images, 4 image tokens, + tiny Llama; its
processor is assembled in-process from `LlavaProcessor`, `CLIPImageProcessorPil` and the tiny
tokenizer with an `<image>` token, no hub access). Their tokenizer is byte-level
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
    else:
        raise ConfigError(f"unknown tiny model '{kind}'; use tiny:llama, tiny:mixtral or tiny:llava")
    model.set_attn_implementation("eager")
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.eval()
    if save_to is not None:
        model.save_pretrained(str(save_to))
        tok.save_pretrained(str(save_to))
    return model, tok


VISION_KINDS = ("llava",)


def build_tiny_vlm(kind: str = "llava", *, seed: int = 0, save_to: str | Path | None = None) -> tuple[Any, Any]:
    """(model, processor) of a tiny random vision-language model."""
    torch = require("torch", "hf")
    tf = require("transformers", "hf")
    require("PIL", "vision")
    if kind not in VISION_KINDS:
        raise ConfigError(f"unknown tiny vision model '{kind}'; use tiny:llava")
    from solstice.models.hf_vision import chatml_vision_template

    tok = tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.padding_side = "left"
    image_proc = tf.CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    proc = tf.LlavaProcessor(
        image_processor=image_proc, tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=chatml_vision_template("<image>"),
    )
    vision = tf.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 image_size=28, patch_size=14, projection_dim=32)
    text = tf.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    cfg = tf.LlavaConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = tf.LlavaForConditionalGeneration(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.eval()
    if save_to is not None:
        model.save_pretrained(str(save_to))
        proc.save_pretrained(str(save_to))
    return model, proc


def load_tiny(spec: ModelSpec):
    seed = int(spec.options.get("seed", 0))
    if spec.target in VISION_KINDS:
        from solstice.models.hf_vision import HFVisionModel

        model, proc = build_tiny_vlm(spec.target, seed=seed)
        return HFVisionModel(spec, model=model, processor=proc)
    from solstice.models.hf import HFModel

    model, tok = build_tiny(spec.target, seed=seed)
    return HFModel(spec, model=model, tokenizer=tok)

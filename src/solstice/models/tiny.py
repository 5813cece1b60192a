"""Tiny random-initialised models built in-process, for tests: `tiny:llama` (2 layers, hidden 32,
eager attention), `tiny:mixtral` (2 layers, 4 experts, top-2), `tiny:gpt2` (2 layers, a
non-Llama attention layout), `tiny:qwen2_moe` (4 experts, top-2 without renormalisation, a gated
shared expert), `tiny:olmoe` (8 experts, top-2) and the vision-language
`tiny:llava` and `tiny:idefics3` (2-layer vision towers on 28x28 images + tiny Llama; their
processors are assembled in-process from the processor and image-processor classes and the tiny
tokenizer with the image tokens added, no hub access). Their tokenizer is byte-level
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
                          "tiny:qwen2_moe, tiny:olmoe, tiny:llava or tiny:idefics3")
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


VISION_KINDS = ("llava", "idefics3")


def build_tiny_vlm(kind: str = "llava", *, seed: int = 0, save_to: str | Path | None = None) -> tuple[Any, Any]:
    """(model, processor) of a tiny random vision-language model: `llava` (CLIP tower, 4 image
    tokens) or `idefics3` (the SmolVLM architecture: SigLIP-style tower + pixel shuffle, 1 image
    token between its wrapper tokens, no image splitting)."""
    torch = require("torch", "hf")
    tf = require("transformers", "hf")
    require("PIL", "vision")
    if kind not in VISION_KINDS:
        raise ConfigError(f"unknown tiny vision model '{kind}'; use tiny:llava or tiny:idefics3")
    from solstice.models.hf_vision import chatml_vision_template

    tok = tiny_tokenizer()
    extra = ["<image>"]
    if kind == "idefics3":
        extra += ["<fake_token_around_image>", "<global-img>"] + [f"<row_{r}_col_{c}>" for r in (1, 2) for c in (1, 2)]
    tok.add_special_tokens({"additional_special_tokens": extra})
    tok.padding_side = "left"
    template = chatml_vision_template("<image>")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=28,
                  patch_size=14)
    text = tf.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    image_token_id = tok.convert_tokens_to_ids("<image>")
    torch.manual_seed(seed)
    if kind == "llava":
        image_proc = tf.CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
        proc = tf.LlavaProcessor(image_processor=image_proc, tokenizer=tok, patch_size=14, chat_template=template,
                                 vision_feature_select_strategy="default", num_additional_image_tokens=1)
        cfg = tf.LlavaConfig(vision_config=tf.CLIPVisionConfig(**vision, projection_dim=32), text_config=text,
                             image_token_id=image_token_id, vision_feature_select_strategy="default",
                             vision_feature_layer=-1)
        model = tf.LlavaForConditionalGeneration(cfg)
    else:
        image_proc = tf.Idefics3ImageProcessorPil(size={"longest_edge": 56}, max_image_size={"longest_edge": 28},
                                                  do_image_splitting=False)
        proc = tf.Idefics3Processor(image_processor=image_proc, tokenizer=tok, image_seq_len=1, chat_template=template)
        cfg = tf.Idefics3Config(vision_config=tf.Idefics3VisionConfig(**vision), text_config=text,
                                image_token_id=image_token_id, scale_factor=2)
        model = tf.Idefics3ForConditionalGeneration(cfg)
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


def build_tiny_cross_encoder(save_to: str | Path, *, seed: int = 0) -> Path:
    """A random 2-layer BERT sequence classifier (one logit) with the byte-level tiny tokenizer,
    pairs encoded as `<bos> A <eos> B <eos>`, written to `save_to` so that
    `sentence_transformers.CrossEncoder(str(save_to))` loads it offline. Seeded: every build is
    identical."""
    torch = require("torch", "hf")
    tf = require("transformers", "hf")
    from tokenizers import processors

    tok = tiny_tokenizer()
    tok.chat_template = None  # a plain (query, document) pair encoder, as BERT cross-encoders are
    bos, eos = tok.bos_token, tok.eos_token
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, tok.bos_token_id), (eos, tok.eos_token_id)],
    )
    cfg = tf.BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        num_labels=1,
    )
    torch.manual_seed(seed)
    model = tf.BertForSequenceClassification(cfg)
    out = Path(save_to)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out

"""transformers image-text-to-text models (LLaVA, Idefics3/SmolVLM, Qwen2-VL, ...) behind the
`hf:` spec: `AutoProcessor` + `AutoModelForImageTextToText`, prompts rendered by the processor's
chat template with `{"type": "image"}` parts, images handed to the processor as PIL images.

    hf:HuggingFaceTB/SmolVLM-256M-Instruct?device=cuda&dtype=bfloat16
    hf:/models/llava-1.5-7b-hf?vision=1          (force the vision backend)

`load_hf(spec)` picks this backend when the checkpoint's config.json has a `vision_config` (or the
spec says `?vision=1`) and the plain text backend otherwise. Capabilities: generate, chat,
loglikelihood, label_logprobs (one forward pass for single-token labels, e.g. option letters),
vision. White-box access (hidden states, hooks) is offered by the text backend only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solstice.errors import BackendError, require
from solstice.models.base import (
    CAP_CHAT,
    CAP_GENERATE,
    CAP_LABEL_LOGPROBS,
    CAP_LOGLIKELIHOOD,
    Completion,
    GenParams,
    LoglikResult,
    Model,
    ModelSpec,
    Prompt,
)
from solstice.models.hf import HFModel
from solstice.models.vision import CAP_VISION, IMAGE_PLACEHOLDER, iter_images, load_image

log = logging.getLogger(__name__)

VISION_CAPABILITIES = frozenset({CAP_GENERATE, CAP_CHAT, CAP_LOGLIKELIHOOD, CAP_LABEL_LOGPROBS, CAP_VISION})


def chatml_vision_template(image_token: str = IMAGE_PLACEHOLDER) -> str:
    """ChatML that writes `image_token` for each image part (for processors without a template)."""
    return (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '" + image_token + "' }}"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
        "{{ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
        "{% endif %}"
    )


def checkpoint_is_vision(spec: ModelSpec) -> bool | None:
    """True / False when the spec or a local config.json says so, None when unknown (a hub id
    not in the local cache)."""
    flag = spec.options.get("vision")
    if flag is not None:
        return flag.lower() in ("1", "true", "yes")
    target = spec.target.partition("#")[0]
    if "#" in spec.target:
        return False  # GGUF checkpoints here are text-only
    cfg_path = Path(target).expanduser() / "config.json"
    if not cfg_path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(target, "config.json")
        except Exception:  # noqa: BLE001 - an invalid repo id or no hub library: unknown
            cached = None
        if not isinstance(cached, str):
            return None
        cfg_path = Path(cached)
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        return None
    return "vision_config" in cfg


def load_hf(spec: ModelSpec) -> Model:
    """The `hf:` backend: a vision-language model when the checkpoint is one, else a text model.
    A hub id not in the local cache is decided by its config (fetched when online)."""
    vision = checkpoint_is_vision(spec)
    if vision is None:
        tf = require("transformers", "hf", "local models")
        try:
            cfg = tf.AutoConfig.from_pretrained(spec.target.partition("#")[0],
                                                trust_remote_code=spec.options.get("trust_remote_code") in ("1", "true"))
            vision = getattr(cfg, "vision_config", None) is not None
        except (OSError, ValueError):
            vision = False  # the text loader reports the problem in one line
    return HFVisionModel(spec) if vision else HFModel(spec)


class HFVisionModel(HFModel):
    capabilities = VISION_CAPABILITIES

    def __init__(self, spec: ModelSpec, model: Any = None, processor: Any = None) -> None:
        if model is None:
            self.torch = require("torch", "hf", "vision-language models")
            self.transformers = require("transformers", "hf", "vision-language models")
            model, processor = self._load_vlm(spec)
        self.processor = processor
        super().__init__(spec, model=model, tokenizer=processor.tokenizer)
        self.tokenizer.padding_side = "left"
        if not getattr(self.processor, "chat_template", None):
            token = getattr(self.processor, "image_token", None) or IMAGE_PLACEHOLDER
            self.processor.chat_template = chatml_vision_template(token)

    def _load_vlm(self, spec: ModelSpec) -> tuple[Any, Any]:
        tf = self.transformers
        target, device, kw, trust = self._load_options(spec)
        t0 = time.perf_counter()
        try:
            proc = tf.AutoProcessor.from_pretrained(target, trust_remote_code=trust, revision=kw.get("revision"))
            model = tf.AutoModelForImageTextToText.from_pretrained(target, trust_remote_code=trust, **kw)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"could not load vision-language model '{target}': {first}") from exc
        model.to(device)
        log.info("loaded %s in %.1fs", target, time.perf_counter() - t0)
        return model, proc

    def info(self) -> dict[str, Any]:
        return {**super().info(), "vision": True}

    # -- prompts -----------------------------------------------------------------------------
    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        if isinstance(prompt, str):
            return prompt
        msgs = []
        for m in prompt:
            c = m["content"]
            if isinstance(c, str):
                parts = [{"type": "text", "text": c}]
            else:
                parts = [{"type": "image"} if p.get("type") == "image" else dict(p) for p in c]
            msgs.append({"role": m["role"], "content": parts})
        prefill = bool(msgs) and msgs[-1]["role"] == "assistant"
        return self.processor.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=add_generation_prompt and not prefill,
            continue_final_message=prefill,
        )

    def _inputs(self, texts: Sequence[str], images: Sequence[list[Any]]) -> Any:
        """Processor inputs (left-padded, on the model's device) for rendered texts and their images."""
        kw: dict[str, Any] = {"text": list(texts), "return_tensors": "pt", "padding": True,
                              "add_special_tokens": False}
        if any(images):
            kw["images"] = [list(ims) for ims in images]
        enc = self.processor(**kw)
        return enc.to(self.device)

    def _groups(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Batches of prompt indices; prompts with and without images are never mixed."""
        flags = [next(iter_images(p), None) is not None for p in prompts]
        with_img = [i for i, f in enumerate(flags) if f]
        without = [i for i, f in enumerate(flags) if not f]
        out = []
        for group in (with_img, without):
            out += [group[k : k + self.batch_size] for k in range(0, len(group), self.batch_size)]
        return out

    @staticmethod
    def _images(prompt: Prompt) -> list[Any]:
        return [load_image(im) for im in iter_images(prompt)]

    # -- generation --------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        torch = self.torch
        p = params or GenParams()
        out: list[list[Completion] | None] = [None] * len(prompts)
        eos = self._eos_ids()
        gcfg = self.generation_config(p, num_return_sequences=p.n)
        for b, idx in enumerate(self._groups(prompts)):
            enc = self._inputs([self.render(prompts[i]) for i in idx], [self._images(prompts[i]) for i in idx])
            if not p.greedy:
                torch.manual_seed((p.seed if p.seed is not None else 0) * 100003 + b)
            with torch.no_grad():
                res = self.model.generate(**enc, generation_config=gcfg, tokenizer=self.tokenizer)
            width = enc["input_ids"].shape[1]
            new = res.sequences[:, width:]
            lps = None
            if p.logprobs:
                lps = self.model.compute_transition_scores(res.sequences, res.scores, normalize_logits=True)
            for r, i in enumerate(idx):
                out[i] = [self._completion(new[r * p.n + k], None if lps is None else lps[r * p.n + k], p, eos)
                          for k in range(p.n)]
        return out  # type: ignore[return-value]

    # -- log-probabilities -------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[Prompt | str, str]]) -> list[LoglikResult]:
        """Summed log-probability of each continuation after its (possibly image-bearing)
        context; one forward pass per request."""
        torch = self.torch
        out = []
        for ctx, cont in requests:
            ctx_text = self.render(ctx)
            imgs = [] if isinstance(ctx, str) else self._images(ctx)
            full = self._inputs([ctx_text + cont], [imgs])
            n_ctx = int(self._inputs([ctx_text], [imgs])["input_ids"].shape[1])
            ids = full["input_ids"][0]
            n_cont = int(ids.shape[0]) - n_ctx
            if n_cont <= 0:
                raise BackendError(f"continuation {cont!r} adds no tokens after its context")
            with torch.no_grad():
                logits = self.model(**full).logits[0]
            lp = torch.log_softmax(logits[n_ctx - 1 : -1].float(), dim=-1)
            target = ids[n_ctx:]
            chosen = lp.gather(1, target[:, None])[:, 0]
            out.append(LoglikResult(float(chosen.sum()), bool((lp.argmax(-1) == target).all()), n_cont))
        return out

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        """One forward pass per batch of prompts when every label is a single token after the
        prompt (option letters); otherwise exact multi-token log-likelihoods."""
        torch = self.torch
        texts = [self.render(p) for p in prompts]
        first: list[int] = []
        for lab in labels:
            _, c = self._pair_ids(texts[0] if texts else "", lab)
            first.append(c[0] if len(c) == 1 else -1)
        single = bool(labels) and all(t >= 0 for t in first) and all(
            len(self._pair_ids(t, lab)[1]) == 1 for t in texts[:3] for lab in labels
        )
        if not single:
            return Model.label_logprobs(self, prompts, labels)
        out: list[dict[str, float] | None] = [None] * len(prompts)
        for idx in self._groups(prompts):
            enc = self._inputs([texts[i] for i in idx], [self._images(prompts[i]) for i in idx])
            with torch.no_grad():
                logits = self.model(**enc, logits_to_keep=1).logits[:, -1]
            lp = torch.log_softmax(logits.float(), dim=-1)
            for r, i in enumerate(idx):
                out[i] = {lab: float(lp[r, t]) for lab, t in zip(labels, first)}
        return out  # type: ignore[return-value]

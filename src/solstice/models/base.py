"""Model interface shared by every backend.

A prompt is either raw text or a list of chat messages. Chat prompts go through the model's chat
template (hf) or the chat endpoint (openai); a final assistant message is a prefill that the model
continues. Requests are batched lists answered in order.

Semantics follow lm-evaluation-harness: in `loglikelihood(context, continuation)` the leading space
belongs to the continuation, and the result is the summed log-probability of the continuation's
tokens given the context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from solstice.errors import CapabilityError
from solstice.models.vision import CAP_VISION, IMAGE_PLACEHOLDER, content_text  # noqa: F401 (CAP_VISION re-exported)

CAP_GENERATE = "generate"
CAP_CHAT = "chat"
CAP_LOGLIKELIHOOD = "loglikelihood"
CAP_LABEL_LOGPROBS = "label_logprobs"
CAP_WHITEBOX = "whitebox"


class Message(TypedDict):
    role: str
    content: str | list[dict[str, Any]]  # text, or text and image parts (see solstice.models.vision)


Prompt = str | Sequence[Message]


@dataclass(frozen=True, slots=True)
class GenParams:
    """Generation settings. temperature 0 means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def replace(self, **kw: Any) -> GenParams:
        from dataclasses import replace

        if "stop" in kw and kw["stop"] is not None:
            kw["stop"] = tuple(kw["stop"])
        return replace(self, **kw)


@dataclass(frozen=True, slots=True)
class Completion:
    """One generated continuation. `token_logprobs` holds the chosen tokens' log-probabilities when
    they were asked for; `finish_reason` is 'stop' (a stop string or EOS) or 'length'."""

    text: str
    n_tokens: int = 0
    finish_reason: str = "stop"
    token_logprobs: tuple[float, ...] | None = None
    tokens: tuple[str, ...] | None = None

    @property
    def mean_logprob(self) -> float:
        if not self.token_logprobs:
            return math.nan
        return sum(self.token_logprobs) / len(self.token_logprobs)

    @property
    def sum_logprob(self) -> float:
        if self.token_logprobs is None:
            return math.nan
        return float(sum(self.token_logprobs))


@dataclass(frozen=True, slots=True)
class LoglikResult:
    logprob: float
    is_greedy: bool
    n_tokens: int


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed model address. `kind` is the backend, `target` its argument, `options` the
    `?key=value&...` suffix."""

    kind: str
    target: str
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    def __str__(self) -> str:
        return self.raw or f"{self.kind}:{self.target}"


def stop_trim(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string. Returns the text and whether a stop was found."""
    cut = len(text)
    for s in stops:
        if not s:
            continue
        i = text.find(s)
        if i != -1 and i < cut:
            cut = i
    return text[:cut], cut < len(text)


def as_messages(prompt: Prompt) -> list[Message]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]  # type: ignore[misc]


class Model:
    """Base of every backend. Subclasses implement the methods of the capabilities they declare.

    `generate` returns, per prompt, a list of `params.n` completions.
    """

    capabilities: frozenset[str] = frozenset()
    spec: ModelSpec
    # Requests a caller may keep in flight at once (an endpoint's connection pool); 1 = call it
    # from one thread at a time (local models). `ctx.map` sizes its continuous feed from this.
    max_in_flight: int = 1

    @property
    def name(self) -> str:
        return str(self.spec)

    def info(self) -> dict[str, Any]:
        """What a run record stores about this model (never a secret)."""
        return {"spec": str(self.spec), "backend": self.spec.kind}

    def require(self, *caps: str, purpose: str = "") -> None:
        missing = [c for c in caps if c not in self.capabilities]
        if missing:
            what = f" for {purpose}" if purpose else ""
            raise CapabilityError(
                f"model '{self.name}' cannot do {', '.join(missing)}{what}; "
                f"it offers {', '.join(sorted(self.capabilities)) or 'nothing'}"
                + ("; use an hf: model for white-box access" if CAP_WHITEBOX in missing else "")
            )

    # -- capabilities --------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        self.require(CAP_GENERATE)
        raise NotImplementedError

    def loglikelihood(self, requests: Sequence[tuple[Prompt | str, str]]) -> list[LoglikResult]:
        self.require(CAP_LOGLIKELIHOOD)
        raise NotImplementedError

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        """Log-probability of each label as the continuation of each prompt.

        The default uses `loglikelihood` over every (prompt, label) pair (exact for multi-token
        labels). Labels are continued directly after the prompt: include a leading space in the label
        when the prompt does not end with one.
        """
        self.require(CAP_LABEL_LOGPROBS)
        reqs = [(p, lab) for p in prompts for lab in labels]
        res = self.loglikelihood(reqs)
        out = []
        for i in range(len(prompts)):
            chunk = res[i * len(labels) : (i + 1) * len(labels)]
            out.append({lab: r.logprob for lab, r in zip(labels, chunk)})
        return out

    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        """The prompt as the text the model reads (chat template applied)."""
        if isinstance(prompt, str):
            return prompt
        return "".join(f"{m['role']}: {content_text(m['content'], IMAGE_PLACEHOLDER)}\n" for m in prompt) + (
            "assistant: " if add_generation_prompt else ""
        )

    def count_tokens(self, text: str) -> int:
        """Number of tokens in `text` for this model (approximate for API models)."""
        return max(1, len(text) // 4)

    @property
    def context_window(self) -> int:
        return int(self.spec.options.get("context_window", 8192))

    @property
    def has_chat_template(self) -> bool:
        """Whether the model brings its own chat format (hf: the tokenizer's template or an explicit
        `?chat_template=chatml`; API backends: the server's). A base model without one reads raw
        text best; chat prompts to it use a stand-in ChatML template."""
        return True

    def generate_text(self, prompts: Sequence[Prompt], params: GenParams | None = None, **kw: Any) -> list[str]:
        """Convenience: the first completion's text for each prompt."""
        p = (params or GenParams()).replace(**kw) if kw else (params or GenParams())
        return [c[0].text for c in self.generate(prompts, p)]

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class ModelWrapper(Model):
    """A model that wraps another (a cache, a shared-prefix scorer): everything it does not override
    goes to `inner`, so the wrapper can stand wherever the wrapped model could."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during unpickling): avoid recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def info(self) -> dict[str, Any]:
        return self.inner.info()

    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        return self.inner.render(prompt, add_generation_prompt)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    @property
    def max_in_flight(self) -> int:  # type: ignore[override]
        return self.inner.max_in_flight

    @property
    def has_chat_template(self) -> bool:
        return self.inner.has_chat_template

    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        return self.inner.generate(prompts, params)

    def loglikelihood(self, requests: Sequence[tuple[Prompt | str, str]]) -> list[LoglikResult]:
        return self.inner.loglikelihood(requests)

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        return self.inner.label_logprobs(prompts, labels)

    def close(self) -> None:
        self.inner.close()


def unwrap(model: Model) -> Model:
    """The innermost model under any wrappers (a cache, a shared-prefix scorer): for code that
    reads a backend's internals (hidden states), which no wrapper serves."""
    while isinstance(model, ModelWrapper):
        model = model.inner
    return model

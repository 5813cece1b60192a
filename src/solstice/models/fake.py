"""A scripted, deterministic model for tests and dry runs.

Scripts (the part after `fake:`):
    echo (or empty)          reply with the last user message / the raw prompt
    const=<text>             always reply <text>
    choice=<a>|<b>|<c>       pick a reply by a hash of (prompt, seed, sample index): greedy calls
                             always get the same reply, sampled calls spread over the choices
    <file.json|file.yaml>    {"rules": [{"match": <regex>, "reply": <text or list>}], "default": <text>}
                             the first rule whose regex matches the rendered prompt answers

`?vision=1` makes the fake a vision model: each image of a prompt is rendered as `<image>`, so
scripts can tell whether they were shown one; without it, a prompt with images is refused
(CapabilityError), as a text-only model would.

`loglikelihood` is consistent with `generate`: a continuation that the script would reply scores
-0.1 per token, any other -5 per token, so label log-probabilities prefer the scripted answer.
Programmatic use: `FakeModel.from_function(fn)` with `fn(prompt_text, sample_index, params) -> str`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError
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
    stop_trim,
)
from solstice.models.vision import CAP_VISION, IMAGE_PLACEHOLDER, check_images, content_text

Responder = Callable[[str, int, GenParams], str]


def _h(*parts: Any) -> int:
    return int(hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12], 16)


def _last_user(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [content_text(m["content"], IMAGE_PLACEHOLDER) for m in prompt if m["role"] == "user"]
    return users[-1] if users else ""


class FakeModel(Model):
    capabilities = frozenset({CAP_GENERATE, CAP_CHAT, CAP_LOGLIKELIHOOD, CAP_LABEL_LOGPROBS})

    def __init__(self, spec: ModelSpec, responder: Responder | None = None) -> None:
        self.spec = spec
        if spec.options.get("vision", "").lower() in ("1", "true", "yes"):
            self.capabilities = self.capabilities | {CAP_VISION}
        self.calls = 0
        self._responder = responder or self._from_script(spec.target)

    @classmethod
    def from_function(cls, fn: Responder, name: str = "fn") -> FakeModel:
        return cls(ModelSpec("fake", name, {}, f"fake:{name}"), fn)

    # -- scripts -----------------------------------------------------------------------------
    def _from_script(self, script: str) -> Responder:
        if script in ("", "echo"):
            self._echo = True
            return lambda text, i, p: text
        self._echo = False
        if script.startswith("const="):
            reply = script[len("const=") :]
            return lambda text, i, p: reply
        if script.startswith("choice="):
            options = script[len("choice=") :].split("|")
            return lambda text, i, p: options[
                _h(text, 0 if p.greedy else (p.seed, i)) % len(options)
            ]
        path = Path(script)
        if path.suffix in (".json", ".yaml", ".yml"):
            if not path.is_file():
                raise ConfigError(f"fake model script '{script}' does not exist")
            raw = path.read_text()
            if path.suffix == ".json":
                cfg = json.loads(raw)
            else:
                import yaml

                cfg = yaml.safe_load(raw)
            rules = [(re.compile(r["match"], re.S), r["reply"]) for r in cfg.get("rules", [])]
            default = cfg.get("default", "")

            def respond(text: str, i: int, p: GenParams) -> str:
                for rx, reply in rules:
                    if rx.search(text):
                        if isinstance(reply, list):
                            return reply[_h(text, 0 if p.greedy else (p.seed, i)) % len(reply)]
                        return reply
                return default

            return respond
        raise ConfigError(
            f"unknown fake script '{script}'; use echo, const=<text>, choice=a|b or a .json/.yaml file"
        )

    # -- Model API ---------------------------------------------------------------------------
    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        check_images(self.name, self.capabilities, [prompt])
        if getattr(self, "_echo", False):
            return _last_user(prompt)
        return super().render(prompt, add_generation_prompt)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        p = params or GenParams()
        out = []
        for prompt in prompts:
            self.calls += 1
            text = self.render(prompt)
            comps = []
            for i in range(p.n):
                reply = self._responder(text, i, p)
                reply, stopped = stop_trim(reply, p.stop)
                words = reply.split()
                if len(words) > p.max_new_tokens:
                    reply = " ".join(words[: p.max_new_tokens])
                    stopped = False
                    words = words[: p.max_new_tokens]
                lps = tuple(-0.1 for _ in words) if p.logprobs else None
                comps.append(
                    Completion(reply, len(words), "stop" if stopped or len(words) < p.max_new_tokens else "length", lps, tuple(words))
                )
            out.append(comps)
        return out

    def loglikelihood(self, requests: Sequence[tuple[Prompt | str, str]]) -> list[LoglikResult]:
        res = []
        for ctx, cont in requests:
            text = self.render(ctx)
            reply = self._responder(text, 0, GenParams())
            n = max(1, len(cont.split()))
            match = cont.strip() != "" and reply.strip().lower().startswith(cont.strip().lower())
            res.append(LoglikResult(-0.1 * n if match else -5.0 * n, match, n))
        return res

"""OpenAI-compatible endpoints (OpenAI, vLLM, llama.cpp server, ...).

    openai:<model>@<base_url>?key_env=OPENAI_API_KEY&timeout=60&retries=5&concurrency=8&mode=chat

`mode=chat` (default) sends every prompt to /chat/completions (a raw string becomes one user
message); `mode=completions` sends raw text to /completions, which also enables exact
log-likelihoods through `echo` where the server supports it (vLLM does). Requests that fail with
429 or 5xx, a timeout or a dropped connection are retried with exponential backoff (honouring
Retry-After). The API key is read from the environment variable named by `key_env` and never
stored in the spec, the run record or the logs.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from solstice.errors import BackendError, ConfigError
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
    as_messages,
    stop_trim,
)
from solstice.models.vision import CAP_VISION, check_images, openai_messages

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
SECRET_OPTIONS = {"api_key", "key", "token"}


class OpenAIModel(Model):
    def __init__(self, spec: ModelSpec, transport: httpx.BaseTransport | None = None) -> None:
        leaked = SECRET_OPTIONS & set(spec.options)
        if leaked:
            raise ConfigError(
                "do not put an API key in a model spec; set it in an environment variable and "
                "name it with ?key_env=VAR"
            )
        model, sep, base = spec.target.partition("@")
        self.model_name = model
        self.base_url = (base if sep else "https://api.openai.com/v1").rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base URL '{self.base_url}' must start with http:// or https://")
        o = spec.options
        self.spec = ModelSpec(spec.kind, spec.target, dict(o), spec.raw)
        self.key_env = o.get("key_env", "OPENAI_API_KEY")
        self.timeout = float(o.get("timeout", 60))
        self.retries = int(o.get("retries", 5))
        self.concurrency = max(1, int(o.get("concurrency", 8)))
        self.backoff = float(o.get("backoff", 1.0))
        self.mode = o.get("mode", "chat")
        if self.mode not in ("chat", "completions"):
            raise ConfigError(f"mode must be chat or completions, not '{self.mode}'")
        caps = {CAP_GENERATE, CAP_CHAT, CAP_LABEL_LOGPROBS}
        if self.mode == "completions":
            caps.add(CAP_LOGLIKELIHOOD)
        if o.get("vision", "1").lower() not in ("0", "false", "no"):
            caps.add(CAP_VISION)
        self.capabilities = frozenset(caps)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=self.timeout, transport=transport
        )

    def info(self) -> dict[str, Any]:
        return {
            "spec": str(self.spec),
            "backend": "openai",
            "model": self.model_name,
            "base_url": self.base_url,
            "key_env": self.key_env,
            "mode": self.mode,
        }

    def close(self) -> None:
        self._client.close()

    # -- transport ---------------------------------------------------------------------------
    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                r = self._client.post(path, json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                wait = self.backoff * (2**attempt)
            else:
                if r.status_code < 400:
                    try:
                        return r.json()
                    except ValueError as exc:
                        raise BackendError(f"{self.base_url}{path} returned invalid JSON") from exc
                body = r.text.strip().replace("\n", " ")[:200]
                last = f"HTTP {r.status_code}: {body}"
                if r.status_code not in RETRY_STATUS:
                    raise BackendError(f"{self.base_url}{path} refused the request ({last})")
                retry_after = r.headers.get("retry-after")
                wait = float(retry_after) if retry_after and retry_after.replace(".", "").isdigit() else self.backoff * (2**attempt)
            if attempt < self.retries:
                wait = min(wait, 60.0) * (1 + 0.1 * random.random())
                log.warning("retrying %s after %s (attempt %d)", path, last, attempt + 1)
                time.sleep(wait)
        raise BackendError(f"could not reach {self.base_url}{path} after {self.retries + 1} tries ({last})")

    def _map(self, fn, items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(fn, items))

    # -- generation --------------------------------------------------------------------------
    def _payload(self, prompt: Prompt, p: GenParams, n: int) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "n": n,
        }
        if p.top_p < 1.0:
            body["top_p"] = p.top_p
        if p.stop:
            body["stop"] = list(p.stop)[:4]
        if p.seed is not None:
            body["seed"] = p.seed
        if self.mode == "completions" and isinstance(prompt, str):
            body["prompt"] = prompt
            if p.logprobs:
                body["logprobs"] = 1
            return "/completions", body
        msgs = as_messages(prompt)
        check_images(self.name, self.capabilities, [msgs])
        body["messages"] = openai_messages(msgs)
        if msgs and msgs[-1]["role"] == "assistant":
            # an assistant prefill: vLLM continues it when asked (other servers ignore the keys)
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        if p.logprobs:
            body["logprobs"] = True
        return "/chat/completions", body

    def _one(self, prompt: Prompt, p: GenParams) -> list[Completion]:
        comps: list[Completion] = []
        while len(comps) < p.n:
            path, body = self._payload(prompt, p, p.n - len(comps))
            data = self._post(path, body)
            choices = data.get("choices") or []
            if not choices:
                raise BackendError(f"{self.base_url}{path} returned no choices")
            for ch in choices:
                comps.append(self._parse_choice(ch, p))
        return comps[: p.n]

    @staticmethod
    def _parse_choice(ch: dict[str, Any], p: GenParams) -> Completion:
        text = ch.get("text")
        if text is None:
            text = (ch.get("message") or {}).get("content") or ""
        text, stopped = stop_trim(text, p.stop)
        lps = None
        toks = None
        lp = ch.get("logprobs")
        if isinstance(lp, dict):
            if lp.get("content"):
                lps = tuple(float(t["logprob"]) for t in lp["content"])
                toks = tuple(t.get("token", "") for t in lp["content"])
            elif lp.get("token_logprobs"):
                lps = tuple(float(x) for x in lp["token_logprobs"] if x is not None)
                toks = tuple(lp.get("tokens") or ())
        finish = "stop" if stopped or ch.get("finish_reason") == "stop" else (ch.get("finish_reason") or "stop")
        n_tok = len(lps) if lps is not None else max(1, len(text) // 4) if text else 0
        return Completion(text, n_tok, finish, lps, toks)

    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        p = params or GenParams()
        return self._map(lambda pr: self._one(pr, p), list(prompts))

    # -- log-probabilities -------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[Prompt | str, str]]) -> list[LoglikResult]:
        self.require(CAP_LOGLIKELIHOOD, purpose="exact log-likelihoods (use ?mode=completions)")

        def one(req: tuple[Prompt | str, str]) -> LoglikResult:
            ctx, cont = req
            ctx_text = self.render(ctx)
            body = {"model": self.model_name, "prompt": ctx_text + cont, "max_tokens": 0,
                    "echo": True, "logprobs": 1, "temperature": 0}
            data = self._post("/completions", body)
            lp = data["choices"][0].get("logprobs") or {}
            offsets = lp.get("text_offset") or []
            toks = lp.get("token_logprobs") or []
            tops = lp.get("top_logprobs") or []
            start = len(ctx_text)
            total, greedy, n = 0.0, True, 0
            for k, off in enumerate(offsets):
                if off >= start and toks[k] is not None:
                    total += float(toks[k])
                    n += 1
                    if k < len(tops) and tops[k]:
                        best = max(tops[k].values())
                        greedy = greedy and float(toks[k]) >= best - 1e-6
            if n == 0:
                raise BackendError(f"{self.base_url} did not return prompt log-probabilities (echo)")
            return LoglikResult(total, greedy, n)

        return self._map(one, list(requests))

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        """Exact (via echo) in completions mode; otherwise read the first generated token's
        top-20 log-probabilities and match each label's first token (approximate: labels outside
        the top 20 get -inf)."""
        if self.mode == "completions":
            return super().label_logprobs(prompts, labels)

        def one(pr: Prompt) -> dict[str, float]:
            check_images(self.name, self.capabilities, [pr])
            body = {"model": self.model_name, "messages": openai_messages(as_messages(pr)), "max_tokens": 1,
                    "temperature": 0, "logprobs": True, "top_logprobs": 20}
            data = self._post("/chat/completions", body)
            content = ((data["choices"][0].get("logprobs") or {}).get("content")) or []
            if not content:
                raise BackendError(f"{self.base_url} returned no logprobs; the server may not offer them")
            top = {t["token"]: float(t["logprob"]) for t in content[0].get("top_logprobs", [])}
            out = {}
            for lab in labels:
                cands = [v for tok, v in top.items() if tok.strip() and lab.strip().lower().startswith(tok.strip().lower())]
                out[lab] = max(cands) if cands else -math.inf
            return out

        return self._map(one, list(prompts))

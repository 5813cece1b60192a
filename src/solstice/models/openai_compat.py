"""OpenAI-compatible endpoints (OpenAI, vLLM, SGLang, llama.cpp server, ...).

    openai:<model>@<base_url>?key_env=OPENAI_API_KEY&timeout=60&retries=5&concurrency=64&mode=chat

`mode=chat` (default) sends every prompt to /chat/completions (a raw string becomes one user
message); `mode=completions` sends raw text to /completions, which also enables exact
log-likelihoods through `echo` where the server supports it (vLLM does).

Transport: one `httpx.Client` (one connection pool) and one set of `concurrency` request workers
per model, shared by every caller thread, so up to `concurrency` requests are in flight however
many `ctx.map` batches call the model at once (the option is recorded in the run record). (An
asyncio `httpx.AsyncClient` was measured 3-10x slower than this pool at 64 in flight on our test
machine: httpcore's async path costs more CPU per request than the requests' own wait.)
The in-flight limit adapts: a 429, a 5xx or a stalled request (no answer within `timeout`
seconds) cuts it by a quarter (at most once per round trip) and each success raises it by 1/2, up
to `concurrency`; the failed request is retried after an exponential back-off (honouring
Retry-After). Token counts come from the server's `usage` field
(estimated as len(text)/4 only where the server sends none, and counted as such); requests/s and
tokens/s go into `info()["throughput"]`, which the run record keeps.

The context window is `?context_window=N`, else the server's own (`/v1/models`: vLLM's
`max_model_len`, or `context_length` / `max_context_length`); an endpoint that reports none and
has no option is a one-line ConfigError when a paper asks for the window (never a silent 8K).
An assistant prefill is continued with vLLM's `continue_final_message` only where the server is
vLLM (`/v1/models` says `owned_by: vllm`, or `?server=vllm`); other servers get the plain messages.
The API key is read from the environment variable named by `key_env` and never stored in the spec,
the run record or the logs.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

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
WINDOW_KEYS = ("max_model_len", "context_length", "max_context_length", "context_window")
PREFILL_SERVERS = {"vllm"}  # servers that continue a final assistant message when asked
T = TypeVar("T")


class _Limiter:
    """Adaptive in-flight limit. A success raises it by 1/2 (so a healthy pool regrows to the
    ceiling within a couple of round trips); an overload signal (429, 5xx, a stall) cuts it by a
    quarter, at most once per round trip (EWMA of the request latency), so one burst of refusals
    counts once and a server that refuses everything brings it down to 1 within a few seconds."""

    def __init__(self, ceiling: int, cooldown: float) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.inflight = 0
        self.cooldown = cooldown
        self.rtt = cooldown
        self._last_cut = -math.inf
        self._cond = threading.Condition()
        self.min_seen = float(ceiling)

    def acquire(self) -> float:
        with self._cond:
            self._cond.wait_for(lambda: self.inflight < max(1, int(self.limit)))
            self.inflight += 1
        return time.monotonic()

    def release(self, ok: bool, started: float) -> None:
        with self._cond:
            self.inflight -= 1
            now = time.monotonic()
            if ok:
                self.rtt = 0.9 * self.rtt + 0.1 * (now - started)
                self.limit = min(float(self.ceiling), self.limit + 0.5)
            elif now - self._last_cut >= max(self.cooldown, self.rtt):
                self.limit = max(1.0, self.limit * 0.75)
                self._last_cut = now
                self.min_seen = min(self.min_seen, self.limit)
            free = max(1, int(self.limit)) - self.inflight
            if free > 0:
                self._cond.notify(free)


class _Stats:
    """Counters of one model's traffic; `active_s` is the time with at least one request in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = self.retries = self.throttled = self.server_errors = self.stalls = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.usage_reported = self.usage_missing = 0
        self.active_s = 0.0
        self._busy = 0
        self._since = 0.0

    def start(self) -> None:
        with self.lock:
            if self._busy == 0:
                self._since = time.perf_counter()
            self._busy += 1

    def stop(self) -> None:
        with self.lock:
            self._busy -= 1
            if self._busy == 0:
                self.active_s += time.perf_counter() - self._since

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def summary(self, limiter: _Limiter) -> dict[str, Any]:
        with self.lock:
            act = self.active_s + (time.perf_counter() - self._since if self._busy else 0.0)
            toks = self.prompt_tokens + self.completion_tokens
            return {
                "requests": self.requests, "retries": self.retries, "throttled_429": self.throttled,
                "server_errors_5xx": self.server_errors, "stalls": self.stalls,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "token_counts": "server usage" if not self.usage_missing else
                f"server usage for {self.usage_reported} requests, estimated (chars/4) for {self.usage_missing}",
                "active_s": round(act, 3),
                "requests_per_s": round(self.requests / act, 2) if act > 0 else None,
                "tokens_per_s": round(toks / act, 1) if act > 0 else None,
                "completion_tokens_per_s": round(self.completion_tokens / act, 1) if act > 0 else None,
                "in_flight_limit_min": int(limiter.min_seen),
            }


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
        try:
            self.timeout = float(o.get("timeout", 60))
            self.retries = int(o.get("retries", 5))
            self.concurrency = int(o.get("concurrency", 64))
            self.backoff = float(o.get("backoff", 1.0))
            self._window_opt = int(o["context_window"]) if "context_window" in o else None
        except ValueError as exc:
            raise ConfigError(f"model spec '{spec}': a numeric option is not a number ({exc})") from None
        if self.concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        self.mode = o.get("mode", "chat")
        if self.mode not in ("chat", "completions"):
            raise ConfigError(f"mode must be chat or completions, not '{self.mode}'")
        self.server = o.get("server", "")  # "" = ask /v1/models when it matters
        caps = {CAP_GENERATE, CAP_CHAT, CAP_LABEL_LOGPROBS}
        if self.mode == "completions":
            caps.add(CAP_LOGLIKELIHOOD)
        if o.get("vision", "1").lower() not in ("0", "false", "no"):
            caps.add(CAP_VISION)
        self.capabilities = frozenset(caps)
        self._headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_env)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._transport = transport
        self._limiter = _Limiter(self.concurrency, cooldown=max(self.backoff, 0.05))
        self._stats = _Stats()
        self._pool: ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None
        self._start_lock = threading.Lock()
        self._models_entry: dict[str, Any] | None = None
        self._warned_prefill = False

    # how many requests callers may usefully keep in flight (ctx.map sizes its feed from this)
    @property
    def max_in_flight(self) -> int:
        return self.concurrency

    def info(self) -> dict[str, Any]:
        return {
            "spec": str(self.spec),
            "backend": "openai",
            "model": self.model_name,
            "base_url": self.base_url,
            "key_env": self.key_env,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "timeout_s": self.timeout,
            "retries": self.retries,
            **({"context_window": self._window_opt} if self._window_opt else {}),
            "throughput": self._stats.summary(self._limiter),
        }

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the model's connection pool and workers -----------------------------------------------------
    def _http(self) -> httpx.Client:
        with self._start_lock:
            if self._client is None:
                limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
                self._client = httpx.Client(base_url=self.base_url, headers=self._headers, limits=limits,
                                            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 30.0), pool=None),
                                            transport=self._transport)
            return self._client

    def _gather(self, calls: list[Callable[[], T]]) -> list[T]:
        """Run the calls on the model's workers (shared by every caller thread); results in order."""
        if not calls:
            return []
        with self._start_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"openai-{self.model_name}")
            pool = self._pool
        futs = [pool.submit(c) for c in calls]
        try:
            return [f.result() for f in futs]
        except BaseException:
            for f in futs:
                f.cancel()
            raise

    # -- transport ---------------------------------------------------------------------------
    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        last = ""
        for attempt in range(self.retries + 1):
            started = self._limiter.acquire()
            self._stats.start()
            ok, wait, fatal = False, self.backoff * (2**attempt), None
            try:
                r = self._http().post(path, json=payload)
            except httpx.TimeoutException as exc:
                last = f"{type(exc).__name__} (stalled past {self.timeout:g}s)"
                self._stats.add(stalls=1)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if r.status_code < 400:
                    ok = True
                else:
                    body = r.text.strip().replace("\n", " ")[:200]
                    last = f"HTTP {r.status_code}: {body}"
                    if r.status_code not in RETRY_STATUS:
                        fatal = BackendError(f"{self.base_url}{path} refused the request ({last})")
                    self._stats.add(throttled=int(r.status_code == 429), server_errors=int(r.status_code >= 500))
                    ra = r.headers.get("retry-after")
                    if ra and ra.replace(".", "", 1).isdigit():
                        wait = float(ra)
            finally:
                self._stats.stop()
            self._limiter.release(ok or fatal is not None, started)
            if fatal is not None:
                raise fatal
            if ok:
                try:
                    data = r.json()
                except ValueError as exc:
                    raise BackendError(f"{self.base_url}{path} returned invalid JSON") from exc
                self._count(data)
                return data
            if attempt < self.retries:
                self._stats.add(retries=1)
                log.debug("retrying %s after %s (attempt %d)", path, last, attempt + 1)
                time.sleep(min(wait, 60.0) * (1 + 0.1 * random.random()))
        raise BackendError(f"could not reach {self.base_url}{path} after {self.retries + 1} tries ({last})")

    def _count(self, data: dict[str, Any]) -> None:
        u = data.get("usage") if isinstance(data, dict) else None
        if isinstance(u, dict) and "completion_tokens" in u:
            self._stats.add(requests=1, usage_reported=1, prompt_tokens=int(u.get("prompt_tokens") or 0),
                            completion_tokens=int(u.get("completion_tokens") or 0))
        else:
            est = sum(len(_choice_text(c)) // 4 for c in (data.get("choices") or []))
            self._stats.add(requests=1, usage_missing=1, completion_tokens=est)

    # -- what the server says about itself -------------------------------------------------------
    def _model_entry(self) -> dict[str, Any]:
        """This model's /v1/models entry ({} when the server lists none); never call it inside the loop."""
        if self._models_entry is None:
            def get() -> dict[str, Any]:
                try:
                    r = self._http().get("/models")
                    data = r.json() if r.status_code < 400 else {}
                except (httpx.HTTPError, ValueError):
                    data = {}
                rows = data.get("data") if isinstance(data, dict) else None
                rows = rows if isinstance(rows, list) else []
                return next((e for e in rows if isinstance(e, dict) and e.get("id") == self.model_name), {})

            self._models_entry = get()
        return self._models_entry

    @property
    def context_window(self) -> int:
        if self._window_opt is None:
            entry = self._model_entry()
            meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
            for k in WINDOW_KEYS:
                v = entry.get(k, meta.get(k))
                if isinstance(v, int) and v > 0:
                    self._window_opt = v
                    break
            else:
                raise ConfigError(
                    f"endpoint {self.base_url} does not report the context window of '{self.model_name}' "
                    "(no max_model_len in /v1/models); add ?context_window=N to the model spec")
        return self._window_opt

    def _server_kind(self) -> str:
        if not self.server:
            self.server = str(self._model_entry().get("owned_by") or "unknown").lower()
        return self.server

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
            if self.server in PREFILL_SERVERS:  # resolved by generate() before any request
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
            elif not self._warned_prefill:
                self._warned_prefill = True
                log.warning("server of %s is not known to continue an assistant prefill (%s); the prefill is sent as "
                            "a finished turn; add ?server=vllm if it is a vLLM server", self.model_name, self.server)
        if p.logprobs:
            body["logprobs"] = True
        return "/chat/completions", body

    def _one(self, prompt: Prompt, p: GenParams) -> list[Completion]:
        comps: list[Completion] = []
        while len(comps) < p.n:
            want = p.n - len(comps)
            path, body = self._payload(prompt, p, want)
            data = self._post(path, body)
            choices = data.get("choices") or []
            if not choices:
                raise BackendError(f"{self.base_url}{path} returned no choices")
            usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            per = usage.get("completion_tokens") if len(choices) == 1 else None
            for ch in choices:
                comps.append(self._parse_choice(ch, p, per))
        return comps[: p.n]

    @staticmethod
    def _parse_choice(ch: dict[str, Any], p: GenParams, usage_tokens: int | None = None) -> Completion:
        text, stopped = stop_trim(_choice_text(ch), p.stop)
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
        if isinstance(usage_tokens, int):
            n_tok = usage_tokens
        elif lps is not None:
            n_tok = len(lps)
        else:
            n_tok = max(1, len(text) // 4) if text else 0
        return Completion(text, n_tok, finish, lps, toks)

    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        p = params or GenParams()
        if not self.server and any(not isinstance(pr, str) and pr and pr[-1]["role"] == "assistant" for pr in prompts):
            self._server_kind()  # ask /v1/models once, from the caller's thread
        return self._gather([lambda pr=pr: self._one(pr, p) for pr in prompts])

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

        return self._gather([lambda r=r: one(r) for r in requests])

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

        return self._gather([lambda pr=pr: one(pr) for pr in prompts])


def _choice_text(ch: dict[str, Any]) -> str:
    text = ch.get("text")
    if text is None:
        text = (ch.get("message") or {}).get("content") or ""
    return text

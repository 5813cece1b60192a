"""transformers backend: batched generation, log-likelihoods and white-box access.

White-box access (`capabilities` includes 'whitebox'):
    hidden_states(prompts)          all L+1 residual streams, embeddings included, per prompt
    capture(names)                  forward hooks on named modules (a context manager)
    forward(texts, **kw)            a plain forward with gradients when asked
    set_attention(fn)               install a custom attention function (AttentionInterface)
    use_sparse_plan(plan)           MoA per-head sparse attention from a plan (models.sparse_attention);
                                    also the spec option `?moa_plan=plan.json[&moa_backend=sdpa|flex]
                                    [&moa_cache=1]` (moa_cache: per-head KV cache in generate)
The underlying objects stay reachable as `.model` and `.tokenizer`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from solstice.errors import BackendError, ConfigError, require
from solstice.models.base import (
    CAP_CHAT,
    CAP_GENERATE,
    CAP_LABEL_LOGPROBS,
    CAP_LOGLIKELIHOOD,
    CAP_WHITEBOX,
    Completion,
    GenParams,
    LoglikResult,
    Model,
    ModelSpec,
    Prompt,
    stop_trim,
)
from solstice.models.vision import check_images, content_text

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


def cache_root() -> Path:
    return Path(os.environ.get("SOLSTICE_CACHE", Path.home() / ".cache" / "solstice"))


def build_once(out: Path, build: Callable[[Path], None], *, marker: str = "config.json") -> Path:
    """Build the cache directory `out` once, safely across processes: the first caller builds
    into a private temporary directory under an exclusive file lock and renames it into place;
    a concurrent caller waits on the lock and then finds the finished directory. A failed
    build leaves no partial directory behind."""
    import shutil
    import tempfile

    from filelock import FileLock

    if (out / marker).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.with_name(out.name + ".lock"))):
        if (out / marker).is_file():
            return out
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=out.name + ".tmp-"))
        try:
            build(tmp)
            if not (tmp / marker).is_file():
                raise BackendError(f"building {out.name}: {marker} was not written")
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def gguf_to_safetensors(directory: Path, gguf_file: str, *, label: str | None = None) -> Path:
    """De-quantise a GGUF checkpoint once into a safetensors directory under the cache, and
    return that directory. Later loads read the safetensors copy (fast). Two processes that
    start on a fresh cache at once convert it once (see `build_once`)."""
    src = directory / gguf_file
    st = src.stat()
    key = hashlib.sha256(f"{src.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:10]
    out = cache_root() / "models" / f"{label or src.stem}-{key}"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out

    def build(tmp: Path) -> None:
        torch = require("torch", "hf", "local models")
        transformers = require("transformers", "hf", "local models")
        require("gguf", "hf", "reading GGUF files")
        log.info("converting %s to safetensors (once) ...", src.name)
        tok = transformers.AutoTokenizer.from_pretrained(str(directory), gguf_file=gguf_file)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(directory), gguf_file=gguf_file, dtype=torch.float32
        )
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if not getattr(tok, "chat_template", None):
            tok.chat_template = CHATML_TEMPLATE
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))

    return build_once(out, build, marker="model.safetensors")


class HFModel(Model):
    capabilities = frozenset(
        {CAP_GENERATE, CAP_CHAT, CAP_LOGLIKELIHOOD, CAP_LABEL_LOGPROBS, CAP_WHITEBOX}
    )

    def __init__(self, spec: ModelSpec, model: Any = None, tokenizer: Any = None) -> None:
        self.spec = spec
        self.torch = require("torch", "hf", "local models")
        self.transformers = require("transformers", "hf", "local models")
        opts = spec.options
        self.batch_size = int(opts.get("batch_size", 8))
        self.max_batch_tokens = int(opts.get("max_batch_tokens", 4096))
        if model is None:
            model, tokenizer = self._load(spec)
        self.model = model
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._native_template = bool(getattr(self.tokenizer, "chat_template", None)) or "chat_template" in opts
        if not getattr(self.tokenizer, "chat_template", None) or opts.get("chat_template") == "chatml":
            self.tokenizer.chat_template = CHATML_TEMPLATE
        self.model.eval()
        self.device = next(self.model.parameters()).device
        self.sparse_cache = opts.get("moa_cache", "0") in ("1", "true", "yes")
        self._sparse = False
        if "moa_plan" in opts:
            self.use_sparse_plan(opts["moa_plan"], backend=opts.get("moa_backend", "sdpa"))
        elif self.sparse_cache:
            raise ConfigError(f"model spec '{spec}': moa_cache needs moa_plan=<plan.json>")

    # -- loading -----------------------------------------------------------------------------
    def _load_options(self, spec: ModelSpec) -> tuple[str, str, dict[str, Any], bool]:
        """(target path or hub id, device, from_pretrained keywords, trust_remote_code) of a spec."""
        torch = self.torch
        opts = spec.options
        target, _, gguf = spec.target.partition("#")
        path = Path(target).expanduser()
        looks_local = target.startswith((".", "/", "~")) or path.exists()
        if looks_local and not path.exists():
            raise BackendError(f"model path '{target}' does not exist")
        if gguf:
            if not (path / gguf).is_file():
                raise BackendError(f"GGUF file '{path / gguf}' does not exist")
            path = gguf_to_safetensors(path, gguf)
            target = str(path)
        device = opts.get("device", "cuda" if torch.cuda.is_available() else "cpu")
        dtype_name = opts.get("dtype", "float32" if device == "cpu" else "bfloat16")
        dtype = getattr(torch, dtype_name, None)
        if dtype is None:
            raise ConfigError(f"unknown dtype '{dtype_name}' in model spec '{spec}'")
        kw: dict[str, Any] = {"dtype": dtype}
        if "attn" in opts:
            kw["attn_implementation"] = opts["attn"]
        if "revision" in opts:
            kw["revision"] = opts["revision"]
        trust = opts.get("trust_remote_code", "0") in ("1", "true", "yes")
        return target, device, kw, trust

    def _load(self, spec: ModelSpec) -> tuple[Any, Any]:
        tf = self.transformers
        target, device, kw, trust = self._load_options(spec)
        t0 = time.perf_counter()
        try:
            tok = tf.AutoTokenizer.from_pretrained(target, trust_remote_code=trust, revision=kw.get("revision"))
            model = tf.AutoModelForCausalLM.from_pretrained(target, trust_remote_code=trust, **kw)
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(
                f"could not load hf model '{target}': {first} (a local directory, or a hub id when online)"
            ) from exc
        model.to(device)
        log.info("loaded %s in %.1fs", target, time.perf_counter() - t0)
        return model, tok

    def _text_config(self) -> Any:
        """The language model's config (the config itself for a text model; `text_config` of a VLM)."""
        cfg = self.model.config
        return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg

    def info(self) -> dict[str, Any]:
        cfg, text = self.model.config, self._text_config()
        return {
            "spec": str(self.spec),
            "backend": "hf",
            "model_type": getattr(cfg, "model_type", None),
            "num_layers": getattr(text, "num_hidden_layers", None),
            "hidden_size": getattr(text, "hidden_size", None),
            "n_params": int(sum(p.numel() for p in self.model.parameters())),
            "dtype": str(next(self.model.parameters()).dtype),
            "device": str(self.device),
        }

    @property
    def has_chat_template(self) -> bool:
        return self._native_template

    # -- text helpers ------------------------------------------------------------------------
    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        if isinstance(prompt, str):
            return prompt
        check_images(self.name, self.capabilities, [prompt])
        msgs = [{**m, "content": content_text(m["content"])} for m in prompt]
        prefill = bool(msgs) and msgs[-1]["role"] == "assistant"
        return self.tokenizer.apply_chat_template(
            msgs,
            tokenize=False,
            add_generation_prompt=add_generation_prompt and not prefill,
            continue_final_message=prefill,
        )

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    @property
    def context_window(self) -> int:
        if "context_window" in self.spec.options:
            return int(self.spec.options["context_window"])
        return int(getattr(self._text_config(), "max_position_embeddings", 2048) or 2048)

    def _batches(self, lengths: Sequence[int], per_item: int = 1) -> Iterator[list[int]]:
        """Index batches, longest first, bounded by batch_size and max_batch_tokens."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batch: list[int] = []
        for i in order:
            width = max([lengths[j] for j in batch] + [lengths[i]])
            if batch and (
                len(batch) + 1 > self.batch_size or width * (len(batch) + 1) * per_item > self.max_batch_tokens
            ):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _pad_left(self, seqs: Sequence[list[int]]) -> tuple[Any, Any]:
        torch = self.torch
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            if s:
                ids[r, width - len(s) :] = torch.tensor(s)
                mask[r, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- generation --------------------------------------------------------------------------
    def generation_config(self, p: GenParams, num_return_sequences: int = 1) -> Any:
        """The transformers GenerationConfig for `p` (greedy or sampled, stops, EOS, scores)."""
        greedy = p.greedy
        return self.transformers.GenerationConfig(
            max_new_tokens=p.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else p.temperature,
            top_p=None if greedy else p.top_p,
            top_k=None if greedy else (p.top_k or None),
            num_return_sequences=num_return_sequences,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._eos_ids(),
            return_dict_in_generate=True,
            output_scores=p.logprobs,
            stop_strings=list(p.stop) or None,
        )

    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        torch = self.torch
        p = params or GenParams()
        enc = [self.encode(self.render(pr)) for pr in prompts]
        out: list[list[Completion] | None] = [None] * len(prompts)
        eos = self._eos_ids()
        gcfg = self.generation_config(p, num_return_sequences=p.n)
        lengths = [len(e) + p.max_new_tokens for e in enc]
        for b, idx in enumerate(self._batches(lengths, per_item=p.n)):
            ids, mask = self._pad_left([enc[i] for i in idx])
            if not p.greedy:
                torch.manual_seed((p.seed if p.seed is not None else 0) * 100003 + b)
            extra = self._sparse_generate_kwargs(max(len(enc[i]) for i in idx) + p.max_new_tokens)
            with torch.no_grad():
                res = self.model.generate(
                    input_ids=ids, attention_mask=mask, generation_config=gcfg, tokenizer=self.tokenizer, **extra
                )
            if self._sparse:
                from solstice.models.sparse_attention import set_total_length

                set_total_length(self.model, self._sparse_total)
            new = res.sequences[:, ids.shape[1] :]
            lps = None
            if p.logprobs:
                lps = self.model.compute_transition_scores(res.sequences, res.scores, normalize_logits=True)
            for r, i in enumerate(idx):
                comps = [self._completion(new[r * p.n + k], None if lps is None else lps[r * p.n + k], p, eos)
                         for k in range(p.n)]
                out[i] = comps
        return out  # type: ignore[return-value]

    def use_sparse_plan(self, plan: Any, *, backend: str = "sdpa", total_length: int | None = None) -> None:
        """Switch to MoA per-head sparse attention. `plan` is a SparsePlan, a path to an upstream
        plan JSON, or None (dense through the same masked-SDPA code path). In `generate`, the span
        rule uses N = longest prompt of the batch + max_new_tokens (the upstream convention)."""
        from solstice.models import sparse_attention as sa

        if plan is not None and not isinstance(plan, sa.SparsePlan):
            plan = sa.SparsePlan.load(plan, **sa.model_shape(self.model))
        sa.apply_plan(self.model, plan, backend=backend, total_length=total_length)
        self._sparse = True
        self._sparse_total = total_length

    def _sparse_generate_kwargs(self, total_length: int) -> dict[str, Any]:
        if not self._sparse:
            return {}
        from solstice.models import sparse_attention as sa

        sa.set_total_length(self.model, total_length)
        if self.sparse_cache and sa.current_plan(self.model) is not None:
            from solstice.models.kv import cache_kwargs
            from solstice.models.sparse_cache import PerHeadCache

            return cache_kwargs(self.model, PerHeadCache(self.model, total_length))
        return {}

    def _eos_ids(self) -> list[int]:
        ids = set()
        gc = getattr(self.model, "generation_config", None)
        e = getattr(gc, "eos_token_id", None) if gc is not None else None
        for v in (e if isinstance(e, list) else [e]):
            if v is not None:
                ids.add(int(v))
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return sorted(ids)

    def _completion(self, toks: Any, lps: Any, p: GenParams, eos: list[int]) -> Completion:
        tok_list = toks.tolist()
        n = len(tok_list)
        finish = "length"
        for k, t in enumerate(tok_list):
            if t in eos:
                n, finish = k, "stop"
                break
        kept = tok_list[:n]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        text, stopped = stop_trim(text, p.stop)
        if stopped:
            # keep the fewest tokens whose text covers the trimmed answer
            finish = "stop"
            m = 0
            while m < len(kept) and len(self.tokenizer.decode(kept[:m], skip_special_tokens=True)) < len(text):
                m += 1
            n = m
        token_lps = None
        tokens = None
        if lps is not None:
            token_lps = tuple(float(x) for x in lps[:n].tolist())
            tokens = tuple(self.tokenizer.convert_ids_to_tokens(kept[:n]))
        return Completion(text, n, finish, token_lps, tokens)

    # -- log-likelihood ----------------------------------------------------------------------
    def _pair_ids(self, ctx: Prompt | str, cont: str) -> tuple[list[int], list[int]]:
        ctx_text = self.render(ctx)
        whole = self.encode(ctx_text + cont)
        ctx_ids = self.encode(ctx_text)
        # lm-eval convention: the continuation is what the whole adds beyond the context's tokens.
        k = len(ctx_ids)
        while k > 0 and whole[:k] != ctx_ids[:k]:
            k -= 1
        cont_ids = whole[k:]
        ctx_ids = whole[:k]
        if not ctx_ids:
            bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
            ctx_ids = [bos]
        return ctx_ids, cont_ids

    def loglikelihood(self, requests: Sequence[tuple[Prompt | str, str]]) -> list[LoglikResult]:
        torch = self.torch
        pairs = [self._pair_ids(c, x) for c, x in requests]
        seqs = [(c + x)[-self.context_window - 1 :] for c, x in pairs]
        out: list[LoglikResult | None] = [None] * len(pairs)
        for idx in self._batches([len(s) for s in seqs]):
            width = max(len(seqs[i]) - 1 for i in idx)
            ids = torch.full((len(idx), width), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                s = seqs[i][:-1]
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            for r, i in enumerate(idx):
                cont = pairs[i][1]
                s = seqs[i]
                n_in = len(s) - 1
                pos = slice(n_in - len(cont), n_in)
                lp = torch.log_softmax(logits[r, pos].float(), dim=-1)
                target = torch.tensor(cont, device=lp.device)
                chosen = lp.gather(1, target[:, None])[:, 0]
                greedy = bool((lp.argmax(-1) == target).all())
                out[i] = LoglikResult(float(chosen.sum()), greedy, len(cont))
        return out  # type: ignore[return-value]

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        """One forward pass per prompt when every label is a single token after the prompt;
        otherwise exact multi-token log-likelihoods."""
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
            return super().label_logprobs(prompts, labels)
        enc = [self.encode(t)[-self.context_window :] for t in texts]
        out: list[dict[str, float] | None] = [None] * len(texts)
        for idx in self._batches([len(e) for e in enc]):
            ids, mask = self._pad_left([enc[i] for i in idx])
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1]
            lp = torch.log_softmax(logits.float(), dim=-1)
            for r, i in enumerate(idx):
                out[i] = {lab: float(lp[r, t]) for lab, t in zip(labels, first)}
        return out  # type: ignore[return-value]

    # -- white box ---------------------------------------------------------------------------
    def hidden_states(self, prompts: Sequence[Prompt | str], *, positions: Sequence[Sequence[int]] | None = None) -> list[Any]:
        """Residual streams of every layer for each prompt: a float32 CPU tensor [L+1, T, d]
        (or [L+1, len(positions[i]), d] when positions are given; negative positions count from
        the end). Prompts are rendered (chat template) and read without special tokens added."""
        torch = self.torch
        enc = [self.encode(self.render(p)) for p in prompts]
        out: list[Any] = [None] * len(enc)
        for idx in self._batches([len(e) for e in enc]):
            ids, mask = self._pad_left([enc[i] for i in idx])
            with torch.no_grad():
                hs = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            stack = torch.stack(hs, dim=1)  # [B, L+1, T, d]
            width = ids.shape[1]
            for r, i in enumerate(idx):
                t = len(enc[i])
                h = stack[r, :, width - t :]
                if positions is not None:
                    h = h[:, list(positions[i])]
                out[i] = h.float().cpu()
        return out

    def hidden_states_of_ids(self, sequences: Sequence[Sequence[int]], positions: Sequence[Sequence[int]]) -> list[Any]:
        """Residual streams of every layer at the given positions of token-id sequences read as
        they are (no template, no special tokens): a float32 CPU tensor [L+1, len(positions[i]), d]
        each, from one left-padded pass per batch with explicit position ids (so a padded row
        reads exactly as it would alone)."""
        torch = self.torch
        out: list[Any] = [None] * len(sequences)
        for idx in self._batches([len(s) for s in sequences]):
            ids, mask = self._pad_left([list(sequences[i]) for i in idx])
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                hs = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True).hidden_states
            stack = torch.stack(hs, dim=1)  # [B, L+1, T, d]
            width = ids.shape[1]
            for r, i in enumerate(idx):
                cols = [width - len(sequences[i]) + p for p in positions[i]]
                out[i] = stack[r, :, cols].float().cpu()
        return out

    def module_names(self) -> list[str]:
        return [n for n, _ in self.model.named_modules() if n]

    @contextlib.contextmanager
    def capture(self, names: Sequence[str], fn: Callable[[str, Any, Any, Any], None] | None = None):
        """Hook the named modules for the duration of the block. Without `fn`, yields a dict
        name -> list of the outputs seen (detached, on CPU); with `fn`, calls fn(name, module,
        inputs, output) on every forward instead."""
        modules = dict(self.model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ConfigError(f"no module named {missing[0]!r} in {self.name}; see module_names()")
        seen: dict[str, list[Any]] = {n: [] for n in names}
        handles = []
        for n in names:
            def hook(mod, inp, outp, _n=n):
                if fn is not None:
                    fn(_n, mod, inp, outp)
                else:
                    o = outp[0] if isinstance(outp, tuple) else outp
                    seen[_n].append(o.detach().cpu())
            handles.append(modules[n].register_forward_hook(hook))
        try:
            yield seen
        finally:
            for h in handles:
                h.remove()

    def forward(self, texts: Sequence[str], *, grad: bool = False, **kw: Any) -> Any:
        """A padded forward pass over raw texts; gradients flow when `grad` is true."""
        torch = self.torch
        ids, mask = self._pad_left([self.encode(t) for t in texts])
        ctx = contextlib.nullcontext() if grad else torch.no_grad()
        with ctx:
            return self.model(input_ids=ids, attention_mask=mask, **kw)

    def set_attention(self, fn: Callable[..., Any] | str, name: str = "solstice_custom") -> None:
        """Install a custom attention function through transformers' AttentionInterface. `fn`
        has the signature of `sdpa_attention_forward(module, query, key, value, attention_mask,
        scaling=..., dropout=..., **kw) -> (attn_output, attn_weights)`; a string selects a
        registered implementation ('eager', 'sdpa')."""
        if callable(fn):
            self.transformers.AttentionInterface.register(name, fn)
            impl = name
        else:
            impl = fn
        self.model.set_attn_implementation(impl)

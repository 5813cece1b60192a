"""vLLM's offline engine (optional extra `vllm`, imported only when a `vllm:` model is loaded).

    vllm:<hub id or local dir>?tensor_parallel_size=2&dtype=bfloat16&gpu_memory_utilization=0.9
        &max_model_len=32768&seed=0&enforce_eager=true&trust_remote_code=false

Same contract as `hf:` for `generate`, `loglikelihood` and `label_logprobs` (lm-eval conventions:
the continuation is what the whole text's tokens add beyond the context's tokens; greedy means every
continuation token has rank 1), without white-box access (no hidden states, hooks or weights): a
paper that needs those runs on `hf:`. Chat prompts go through the model's chat template; a final
assistant message is continued (`continue_final_message`). Engine options in the spec are passed to
`vllm.LLM` with their types converted; unknown ones are vLLM's to refuse.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from solstice.errors import ConfigError, require
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

log = logging.getLogger(__name__)
CAPABILITIES = frozenset({CAP_GENERATE, CAP_CHAT, CAP_LOGLIKELIHOOD, CAP_LABEL_LOGPROBS})
INT_OPTIONS = {"tensor_parallel_size", "pipeline_parallel_size", "max_model_len", "seed", "max_num_seqs",
               "max_num_batched_tokens", "swap_space", "max_logprobs"}
FLOAT_OPTIONS = {"gpu_memory_utilization", "cpu_offload_gb"}
BOOL_OPTIONS = {"enforce_eager", "trust_remote_code", "enable_prefix_caching", "enable_chunked_prefill"}
STR_OPTIONS = {"dtype", "quantization", "tokenizer", "revision", "kv_cache_dtype", "download_dir", "distributed_executor_backend"}
OWN_OPTIONS = {"context_window"}


def engine_args(spec: ModelSpec) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments from a spec (typed; a malformed or unknown option is a ConfigError)."""
    args: dict[str, Any] = {"model": spec.target}
    for k, v in spec.options.items():
        try:
            if k in INT_OPTIONS:
                args[k] = int(v)
            elif k in FLOAT_OPTIONS:
                args[k] = float(v)
            elif k in BOOL_OPTIONS:
                if v.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(v)
                args[k] = v.lower() in ("true", "1")
            elif k in STR_OPTIONS:
                args[k] = v
            elif k not in OWN_OPTIONS:
                raise ConfigError(f"unknown vllm: option '{k}'; known: "
                                  + ", ".join(sorted(INT_OPTIONS | FLOAT_OPTIONS | BOOL_OPTIONS | STR_OPTIONS | OWN_OPTIONS)))
        except ValueError:
            raise ConfigError(f"vllm: option {k}={v!r} is not a valid value") from None
    return args


class VLLMModel(Model):
    capabilities = CAPABILITIES

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._args = engine_args(spec)  # checked before the (heavy) import
        vllm = require("vllm", "vllm", f"the vllm: backend ({spec})")
        self._vllm = vllm
        self.llm = vllm.LLM(**self._args)
        self.tokenizer = self.llm.get_tokenizer()

    def info(self) -> dict[str, Any]:
        return {"spec": str(self.spec), "backend": "vllm", "engine_args": self._args,
                "vllm": getattr(self._vllm, "__version__", "?"), "context_window": self.context_window}

    @property
    def max_in_flight(self) -> int:  # vLLM batches internally; callers send whole batches
        return 1

    @property
    def context_window(self) -> int:
        if "context_window" in self.spec.options:
            return int(self.spec.options["context_window"])
        return int(self.llm.llm_engine.model_config.max_model_len)

    # -- text helpers ------------------------------------------------------------------------
    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        if isinstance(prompt, str):
            return prompt
        msgs = [dict(m) for m in prompt]
        prefill = bool(msgs) and msgs[-1]["role"] == "assistant"
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, continue_final_message=prefill,
                                                  add_generation_prompt=add_generation_prompt and not prefill)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def _prompt(self, ids: list[int]) -> Any:
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=ids)

    # -- generation --------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        p = params or GenParams()
        sp = self._vllm.SamplingParams(
            n=p.n, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k if p.top_k > 0 else -1,
            max_tokens=p.max_new_tokens, stop=list(p.stop) or None, seed=p.seed,
            logprobs=0 if p.logprobs else None)
        ids = [self.encode(self.render(pr)) for pr in prompts]
        outs = self.llm.generate([self._prompt(x) for x in ids], sp, use_tqdm=False)
        result = []
        for o in outs:
            comps = []
            for c in o.outputs:
                lps = toks = None
                if c.logprobs is not None:
                    chosen = [step[t] for t, step in zip(c.token_ids, c.logprobs)]
                    lps = tuple(float(x.logprob) for x in chosen)
                    toks = tuple(self.tokenizer.convert_ids_to_tokens(list(c.token_ids)))
                finish = "length" if c.finish_reason == "length" else "stop"
                comps.append(Completion(c.text, len(c.token_ids), finish, lps, toks))
            result.append(comps)
        return result

    # -- log-likelihood ----------------------------------------------------------------------
    def _pair_ids(self, ctx: Prompt | str, cont: str) -> tuple[list[int], list[int]]:
        ctx_text = self.render(ctx)
        whole, ctx_ids = self.encode(ctx_text + cont), self.encode(ctx_text)
        k = len(ctx_ids)
        while k > 0 and whole[:k] != ctx_ids[:k]:
            k -= 1
        head = whole[:k]
        if not head:
            bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
            head = [bos]
        return head, whole[k:]

    def loglikelihood(self, requests: Sequence[tuple[Prompt | str, str]]) -> list[LoglikResult]:
        pairs = [self._pair_ids(c, x) for c, x in requests]
        if any(not cont for _, cont in pairs):
            raise ConfigError("loglikelihood needs a non-empty continuation")
        sp = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        seqs = [(c + x)[-self.context_window:] for c, x in pairs]
        outs = self.llm.generate([self._prompt(s) for s in seqs], sp, use_tqdm=False)
        res = []
        for (_, cont), seq, o in zip(pairs, seqs, outs):
            plp = o.prompt_logprobs or []
            total, greedy = 0.0, True
            for pos in range(len(seq) - len(cont), len(seq)):
                entry = plp[pos][seq[pos]]
                total += float(entry.logprob)
                greedy = greedy and getattr(entry, "rank", 1) == 1
            res.append(LoglikResult(total, greedy, len(cont)))
        return res

    def close(self) -> None:
        self.llm = None  # the engine frees its GPU memory when collected

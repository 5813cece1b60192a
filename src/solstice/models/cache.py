"""A disk cache for deterministic model calls (sqlite), so re-scoring costs nothing.

`CachedModel(model, path)` answers `generate` (greedy, or sampled with a fixed seed),
`loglikelihood` and `label_logprobs` from the cache when the same (model, request) was seen, and
forwards the rest in one batched call to the wrapped model.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from solstice.models.base import Completion, GenParams, LoglikResult, Model, ModelWrapper, Prompt
from solstice.models.vision import json_default


def _key(*parts: Any) -> str:
    # images in prompts are keyed on their content (sha256), never on a path or an object id
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=json_default).encode()).hexdigest()


class CachedModel(ModelWrapper):
    def __init__(self, model: Model, path: str | Path) -> None:
        super().__init__(model)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS cache (k TEXT PRIMARY KEY, v TEXT)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _get(self, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                q = f"SELECT k, v FROM cache WHERE k IN ({','.join('?' * len(chunk))})"
                for k, v in self._db.execute(q, chunk):
                    found[k] = json.loads(v)
        return found

    def _put(self, items: dict[str, Any]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO cache VALUES (?, ?)", [(k, json.dumps(v)) for k, v in items.items()]
            )
            self._db.commit()

    def _cached(self, method: str, reqs: Sequence[Any], extra: Any, compute, encode, decode) -> list[Any]:
        keys = [_key(str(self.spec), method, r, extra) for r in reqs]
        found = self._get(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(reqs) - len(todo)
        self.misses += len(todo)
        if todo:
            res = compute([reqs[i] for i in todo])
            new = {keys[i]: encode(r) for i, r in zip(todo, res)}
            self._put(new)
            found.update(new)
        return [decode(found[k]) for k in keys]

    def generate(self, prompts: Sequence[Prompt], params: GenParams | None = None) -> list[list[Completion]]:
        p = params or GenParams()
        if not p.greedy and p.seed is None:
            return self.inner.generate(prompts, p)
        return self._cached(
            "generate", list(prompts), asdict(p), lambda xs: self.inner.generate(xs, p),
            lambda comps: [asdict(c) for c in comps],
            lambda v: [Completion(**{**c, "token_logprobs": tuple(c["token_logprobs"]) if c["token_logprobs"] is not None else None,
                                     "tokens": tuple(c["tokens"]) if c["tokens"] is not None else None}) for c in v],
        )

    def loglikelihood(self, requests: Sequence[tuple[Prompt | str, str]]) -> list[LoglikResult]:
        return self._cached(
            "loglikelihood", list(requests), None, self.inner.loglikelihood, asdict, lambda v: LoglikResult(**v)
        )

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        return self._cached(
            "label_logprobs", list(prompts), list(labels),
            lambda xs: self.inner.label_logprobs(xs, labels), lambda d: d, lambda d: d,
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

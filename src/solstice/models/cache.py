"""A disk cache of deterministic model calls (sqlite), keyed on what determines the answer.

A key is the sha256 of (model fingerprint, method, exact request, generation parameters). The
fingerprint (`fingerprint(model)`) names the weights, never the spec string:

    hf / default   the sha256 of every file in the weights directory (config, tokenizer, chat
                   template, weights; files over FULL_HASH_MAX bytes: their size, the safetensors /
                   GGUF header and SAMPLE_BLOCKS blocks spread over the file), and the hub commit
                   when loaded from the hub cache; a model built in memory: a hash of its tensors
    openai         the base URL and the served model's entry from the endpoint's /models (id,
                   root, created, owned_by) plus the spec's `revision` option
    fake           the script (and the script file's content)
    wrappers       the wrapper's class name and its inner model's fingerprint

A model with no fingerprint (an endpoint that does not list its models, an unknown backend) is
not cached: its calls go straight to the model, with one warning. So new weights at the same
path, or another model behind the same URL, are never answered from the cache.

The cache is opt-in per run: `--cache DIR` (shared across runs) or `--cache run` (inside the run
directory). `solstice cache info DIR` / `solstice cache clear DIR` inspect and empty it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from solstice.models.base import Completion, GenParams, LoglikResult, Model, ModelWrapper, Prompt
from solstice.models.vision import json_default

log = logging.getLogger(__name__)
CACHE_FILE = "calls.sqlite"
FULL_HASH_MAX = 2 * 1024**3  # files up to this size are hashed whole
SAMPLE_BLOCKS = 64  # larger files: this many 1 MiB blocks spread over the file, plus head and size
_BLOCK = 1024 * 1024
# spec options that change how calls are made, never what a model answers
_TRANSPORT_OPTIONS = {"timeout", "retries", "concurrency", "backoff", "key_env", "preflight_timeout"}
_FILE_MEMO: dict[tuple[str, int, int, int], str] = {}  # per process only: a file rewritten later is re-read


def _sha(obj: Any) -> str:
    # images in prompts are keyed on their content (sha256), never on a path or an object id
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=json_default).encode()).hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 of a file; for a file over FULL_HASH_MAX bytes, of its size, its first MiB (the
    safetensors / GGUF header and metadata) and SAMPLE_BLOCKS blocks spread over it."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if memo in _FILE_MEMO:
        return _FILE_MEMO[memo]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        if st.st_size <= FULL_HASH_MAX:
            for chunk in iter(lambda: f.read(8 * _BLOCK), b""):
                h.update(chunk)
        else:
            h.update(f"sampled:{st.st_size}".encode())
            step = max(_BLOCK, (st.st_size - _BLOCK) // SAMPLE_BLOCKS)
            for off in range(0, st.st_size, step):
                f.seek(off)
                h.update(f.read(_BLOCK))
    _FILE_MEMO[memo] = h.hexdigest()
    return _FILE_MEMO[memo]


def directory_digest(directory: str | Path) -> dict[str, str]:
    """{file name: file_digest} of every regular file directly in `directory` (dotfiles skipped)."""
    d = Path(directory)
    return {f.name: file_digest(f) for f in sorted(d.iterdir()) if f.is_file() and not f.name.startswith(".")}


def _options(model: Model) -> dict[str, str]:
    return {k: v for k, v in model.spec.options.items() if k not in _TRANSPORT_OPTIONS}


def _hf_fingerprint(model: Any) -> dict[str, Any] | None:
    net = getattr(model, "model", None)
    if net is None:
        return None
    src = str(getattr(getattr(net, "config", None), "_name_or_path", "") or "")
    out: dict[str, Any] = {"backend": "hf", "options": _options(model),
                           "dtype": str(next(net.parameters()).dtype)}
    if src and Path(src).is_dir():
        out["files"] = directory_digest(src)
        return out
    if src:  # a hub id: the cached snapshot (its commit) and its files
        try:
            from huggingface_hub import snapshot_download

            snap = Path(snapshot_download(src, revision=model.spec.options.get("revision"), local_files_only=True))
            out.update(hub_id=src, commit=snap.name, files=directory_digest(snap))
            return out
        except Exception:  # noqa: BLE001 - not in the hub cache: hash the tensors below
            pass
    n = sum(p.numel() for p in net.parameters())
    if n > 50_000_000:
        return None  # no files to hash and too large to hash in memory
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).numpy().tobytes())
    out["tensors"] = h.hexdigest()
    return out


def _openai_fingerprint(model: Any) -> dict[str, Any] | None:
    import httpx

    base, name = getattr(model, "base_url", None), getattr(model, "model_name", None)
    if not base or not name:
        return None
    headers = {}
    key = os.environ.get(getattr(model, "key_env", "OPENAI_API_KEY") or "OPENAI_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        r = httpx.get(base.rstrip("/") + "/models", headers=headers, timeout=10)
        r.raise_for_status()
        entries = r.json().get("data", [])
    except (httpx.HTTPError, ValueError):
        return None
    entry = next((e for e in entries if e.get("id") == name), None)
    if entry is None:
        return None
    served = {k: entry.get(k) for k in ("id", "root", "created", "owned_by", "parent") if entry.get(k) is not None}
    return {"backend": "openai", "base_url": base, "served": served, "options": _options(model)}


def fingerprint(model: Model) -> dict[str, Any] | None:
    """What determines a model's answers (see the module docstring), or None when it cannot be
    known: such a model is never cached."""
    if isinstance(model, ModelWrapper):
        inner = fingerprint(model.inner)
        return None if inner is None else {"wrapper": type(model).__name__, "inner": inner}
    kind = model.spec.kind
    if kind in ("hf", "default", "tiny"):
        fp = _hf_fingerprint(model)
        if fp is not None and kind == "tiny":
            fp["spec"] = str(model.spec)
        return fp
    if kind == "openai":
        return _openai_fingerprint(model)
    if kind == "fake":
        target = Path(model.spec.target)
        return {"backend": "fake", "script": model.spec.target, "options": _options(model),
                **({"file": file_digest(target)} if target.suffix in (".json", ".yaml", ".yml") and target.is_file() else {})}
    return None


def cache_path(where: str | Path) -> Path:
    """The sqlite file of a cache given as a directory (or as the file itself)."""
    p = Path(where).expanduser()
    return p if p.suffix == ".sqlite" else p / CACHE_FILE


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False)
    db.execute("CREATE TABLE IF NOT EXISTS calls (k TEXT PRIMARY KEY, fp TEXT, method TEXT, v TEXT, created REAL)")
    db.execute("CREATE TABLE IF NOT EXISTS models (fp TEXT PRIMARY KEY, spec TEXT, info TEXT, created REAL)")
    return db


class CachedModel(ModelWrapper):
    """Answers `generate` (greedy, or sampled with a fixed seed), `loglikelihood` and
    `label_logprobs` from the cache when the same (fingerprint, request, parameters) was seen, and
    forwards the rest in one batched call to the wrapped model."""

    def __init__(self, model: Model, path: str | Path) -> None:
        super().__init__(model)
        self.path = cache_path(path)
        fp = fingerprint(model)
        self.fingerprint = None if fp is None else _sha(fp)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if self.fingerprint is None:
            log.warning("model '%s' has no fingerprint (weights or served model unknown): its calls are not cached",
                        model.spec)
            return
        self._db = _connect(self.path)
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?)",
                             (self.fingerprint, str(model.spec), json.dumps(fp, sort_keys=True), time.time()))
            self._db.commit()

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "fingerprint": self.fingerprint, "cache": str(self.path)}

    def _get(self, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        assert self._db is not None
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                q = f"SELECT k, v FROM calls WHERE k IN ({','.join('?' * len(chunk))})"
                for k, v in self._db.execute(q, chunk):
                    found[k] = json.loads(v)
        return found

    def _put(self, method: str, items: dict[str, Any]) -> None:
        assert self._db is not None
        now = time.time()
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?)",
                                 [(k, self.fingerprint, method, json.dumps(v), now) for k, v in items.items()])
            self._db.commit()

    def _cached(self, method: str, reqs: Sequence[Any], extra: Any, compute, encode, decode) -> list[Any]:
        if self._db is None:
            return compute(list(reqs))
        keys = [_sha([self.fingerprint, method, r, extra]) for r in reqs]
        found = self._get(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(reqs) - len(todo)
        self.misses += len(todo)
        if todo:
            res = compute([reqs[i] for i in todo])
            new = {keys[i]: encode(r) for i, r in zip(todo, res)}
            self._put(method, new)
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
            if self._db is not None:
                self._db.close()
                self._db = None


def cache_info(where: str | Path) -> dict[str, Any]:
    """Size of a cache and its entries per model fingerprint (spec, when first seen)."""
    path = cache_path(where)
    if not path.is_file():
        return {"path": str(path), "exists": False, "entries": 0, "bytes": 0, "models": []}
    db = _connect(path)
    try:
        rows = db.execute(
            "SELECT m.fp, m.spec, m.created, COUNT(c.k), MAX(c.created) FROM models m LEFT JOIN calls c ON c.fp = m.fp "
            "GROUP BY m.fp ORDER BY m.created").fetchall()
        total = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    finally:
        db.close()
    return {"path": str(path), "exists": True, "entries": int(total), "bytes": path.stat().st_size,
            "models": [{"fingerprint": fp, "spec": spec, "first_seen": t0, "entries": int(n), "last_write": t1}
                       for fp, spec, t0, n, t1 in rows]}


def clear_cache(where: str | Path, fingerprint_prefix: str | None = None) -> int:
    """Delete every entry (or those of the models whose fingerprint starts with the prefix);
    returns how many were deleted."""
    path = cache_path(where)
    if not path.is_file():
        return 0
    db = _connect(path)
    try:
        if fingerprint_prefix:
            like = fingerprint_prefix + "%"
            n = db.execute("DELETE FROM calls WHERE fp LIKE ?", (like,)).rowcount
            db.execute("DELETE FROM models WHERE fp LIKE ?", (like,))
        else:
            n = db.execute("DELETE FROM calls").rowcount
            db.execute("DELETE FROM models")
        db.commit()
        db.execute("VACUUM")
    finally:
        db.close()
    return int(n)

"""`--executor ray`: ctx.map batches run as tasks on Ray actors; the driver records the results.

    solstice run bigcodebench --executor ray --allow-code-exec      # RAY_ADDRESS=... for a cluster

One actor per worker (`SOLSTICE_RAY_WORKERS`, default: the cluster's CPU count), each running one
batch at a time. A batch function is shipped once per map and actor (Ray's cloudpickle), so its closure
state (a lazily created sandbox pool) lives as long as the actor. Models in the closure travel as
their spec and are loaded once per actor process (the loader's cache); a sandbox pool travels as
its config and is created once per actor. Results come back to the driver, which appends them to
samples.jsonl in sample order exactly as the in-process path does. When an actor dies, a new one
replaces it and only the batches it had not returned are run again (at most 3 tries per batch).
Ray is imported only here, i.e. only when `--executor ray` is asked for.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from solstice.errors import BackendError, ConfigError, require

log = logging.getLogger("solstice")
MAX_TRIES = 3
ACTIVE: list[RayExecutor] = []  # the executors of this process (tests kill their workers)
_POOLS: dict[str, Any] = {}


def _load_model(spec: str) -> Any:
    from solstice.models.loader import load_model

    return load_model(spec)


def _sandbox_pool(config: Any) -> Any:
    """One sandbox pool per actor process and config."""
    from solstice.sandbox import SandboxPool

    k = repr(config)
    if k not in _POOLS:
        _POOLS[k] = SandboxPool(config)
    return _POOLS[k]


def _serializers(ray: Any, models: list[Any]) -> None:
    """Ship models as their spec and sandbox pools as their config (never their processes)."""
    from solstice.models.base import ModelWrapper

    seen: set[type] = set()
    for m in models:
        while isinstance(m, ModelWrapper):
            m = m.inner
        if type(m) not in seen:
            seen.add(type(m))
            ray.util.register_serializer(type(m), serializer=lambda x: str(x.spec), deserializer=_load_model)
    if "solstice.sandbox.pool" in sys.modules:
        from solstice.sandbox.pool import SandboxPool

        ray.util.register_serializer(SandboxPool, serializer=lambda p: p.config, deserializer=_sandbox_pool)


class _Worker:
    """The actor body: holds the batch functions of the current maps."""

    def __init__(self) -> None:
        self.fns: dict[int, Callable] = {}

    def pid(self) -> int:
        return os.getpid()

    def load(self, map_id: int, fn: Callable) -> None:
        self.fns = {map_id: fn}

    def warm(self, specs: list[str]) -> float:
        """Load the run's models in this actor before its first batch; seconds it took."""
        t0 = time.perf_counter()
        for s in specs:
            _load_model(s)
        return time.perf_counter() - t0

    def run(self, map_id: int, batch: list[Any]) -> list[dict[str, Any]]:
        return self.fns[map_id](batch)

    def shutdown(self) -> None:
        for p in _POOLS.values():
            p.close()
        _POOLS.clear()


class RayExecutor:
    name = "ray"

    def __init__(self, ray: Any, ctx: Any, workers: int) -> None:
        self.ray, self.ctx, self.width = ray, ctx, workers
        self._actor_cls = ray.remote(num_cpus=float(os.environ.get("SOLSTICE_RAY_CPUS_PER_WORKER", 1)))(_Worker)
        self.actors = [self._actor_cls.remote() for _ in range(workers)]
        self.pids = ray.get([a.pid.remote() for a in self.actors])
        self._maps = 0
        self.replaced = 0
        self._warm: set[str] = set()
        self.warm_s = 0.0
        ACTIVE.append(self)

    @classmethod
    def start(cls, ctx: Any) -> RayExecutor:
        ray = require("ray", "ray", "--executor ray")
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS") or None, logging_level=logging.WARNING,
                     include_dashboard=False)
        env = os.environ.get("SOLSTICE_RAY_WORKERS")
        try:
            n = int(env) if env else int(ray.cluster_resources().get("CPU", 1))
        except ValueError:
            raise ConfigError(f"SOLSTICE_RAY_WORKERS must be a number, not '{env}'") from None
        if n < 1:
            raise ConfigError("SOLSTICE_RAY_WORKERS must be >= 1")
        ex = cls(ray, ctx, n)
        log.info("ray executor: %d workers (pids %s)", n, ex.pids)
        return ex

    def prepare(self) -> None:
        """Load the models the run has loaded so far in every actor (once per model and actor), so
        that a map's time is the batches' time."""
        from solstice.models.base import ModelWrapper

        specs = []
        for m in self.ctx._models.values():
            while isinstance(m, ModelWrapper):
                m = m.inner
            if str(m.spec) not in self._warm:
                specs.append(str(m.spec))
        if specs:
            t0 = time.perf_counter()
            self.ray.get([a.warm.remote(specs) for a in self.actors])
            self.warm_s += time.perf_counter() - t0
            self._warm.update(specs)
            log.info("ray workers loaded %s in %.1fs", ", ".join(specs), time.perf_counter() - t0)

    def _replace(self, k: int) -> None:
        try:
            self.ray.kill(self.actors[k])
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.actors[k] = self._actor_cls.remote()
        self.pids[k] = self.ray.get(self.actors[k].pid.remote())
        self.replaced += 1
        if self._warm:
            self.ray.get(self.actors[k].warm.remote(sorted(self._warm)))

    def map_batches(self, fn: Callable, batches: list[list[Any]]) -> Iterator[tuple[list[Any], list[dict[str, Any]]]]:
        ray = self.ray
        _serializers(ray, list(self.ctx._models.values()))
        self._maps += 1
        map_id = self._maps
        blob = ray.put(fn)  # serialized once, with the model / sandbox reducers above
        loaded: set[int] = set()
        idle = list(range(len(self.actors)))
        pending: dict[Any, tuple[int, int]] = {}  # ref -> (batch index, actor slot)
        tries = [0] * len(batches)
        queue = list(range(len(batches)))
        ready: dict[int, list[dict[str, Any]]] = {}
        head = 0
        while head < len(batches):
            while idle and queue:
                k, i = idle.pop(0), queue.pop(0)
                if k not in loaded:
                    ray.get(self.actors[k].load.remote(map_id, blob))
                    loaded.add(k)
                tries[i] += 1
                pending[self.actors[k].run.remote(map_id, batches[i])] = (i, k)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i, k = pending.pop(ref)
                try:
                    ready[i] = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                    if tries[i] >= MAX_TRIES:
                        raise BackendError(f"a Ray worker died {MAX_TRIES} times on one batch ({type(exc).__name__})") from None
                    log.warning("ray worker %d died (%s); replacing it and re-running its batch", k, type(exc).__name__)
                    self._replace(k)
                    loaded.discard(k)
                    queue.insert(0, i)
                except ray.exceptions.RayTaskError as exc:
                    raise exc.as_instanceof_cause() from None
                idle.append(k)
            while head in ready:
                yield batches[head], ready.pop(head)
                head += 1

    def close(self) -> None:
        t0 = time.perf_counter()
        for a in self.actors:
            try:
                self.ray.get(a.shutdown.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - a dead actor has nothing to close
                pass
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []
        if self in ACTIVE:
            ACTIVE.remove(self)
        log.debug("ray executor closed in %.1fs", time.perf_counter() - t0)

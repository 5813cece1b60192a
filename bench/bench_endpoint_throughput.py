"""The `openai:` backend at serving speed: the shared connection pool fed continuously by `ctx.map` against
the previous backend (a thread pool per `generate` call, one batch at a time), on the test stub
server (tests/stub_openai.py) with a fixed latency per request, sides alternated in one run.

    python bench/bench_endpoint_throughput.py [--n 512] [--latency 0.2] [--in-flight 64] [--rounds 2]
        [--baseline-rev f92d39c]

Sample mix: n chat prompts "wordI", one completion each (max 8 tokens); ctx.map batch_size 8 (the
ctx.map default most papers use). Sides:
  previous   the backend of --baseline-rev (read from git), ?concurrency=IN_FLIGHT; ctx.map sends
             one batch at a time, so at most 8 requests are in flight
  previous64 the same with batch_size=IN_FLIGHT (what a user could tune before): batch barriers only
  new        this backend, ?concurrency=IN_FLIGHT, ctx.map feeding batches continuously
Then a fault run: 256 in flight, every 7th answer a 429, every 11th a 503, every 13th stalls past
the client's timeout; every sample must be recorded exactly once.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def _baseline_class(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:src/solstice/models/openai_compat.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    (ROOT / "runs").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="bench-endpoint-", dir=ROOT / "runs")) / "openai_previous.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("openai_previous", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.OpenAIModel


class _Stub:
    """tests/stub_openai.py in its own process (a server is not in the client's process)."""

    def __init__(self, *args: float) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "stub_openai.py"), *map(str, args)],
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def stats(self) -> dict:
        import httpx

        return httpx.get(self.url + "/stats", timeout=30).json()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def _ctx(tmp: Path, model):
    from solstice.core.context import RunContext
    from solstice.core.records import RunRecord

    rec = RunRecord(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(record=rec, paper_id="bench", scale="bench", seed=0, limit=None, model_specs={"target": "x"})
    ctx._models["target"] = model
    return ctx


def _run(model, n: int, batch_size: int, tmp: Path) -> tuple[float, list[dict]]:
    from solstice.core.types import Sample

    ctx = _ctx(tmp, model)
    samples = [Sample(f"s{i:04d}", f"word{i}") for i in range(n)]

    def fn(batch):
        outs = model.generate_text([s.input for s in batch], max_new_tokens=8)
        return [{"output": o} for o in outs]

    t0 = time.perf_counter()
    rows = ctx.map(samples, fn, batch_size=batch_size)
    wall = time.perf_counter() - t0
    ctx.record.close()
    return wall, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline-rev", default="f92d39c")
    args = ap.parse_args()

    from solstice.core.records import RunRecord
    from solstice.models.base import ModelSpec
    from solstice.models.openai_compat import OpenAIModel

    Previous = _baseline_class(args.baseline_rev)
    (ROOT / "runs").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-endpoint-", dir=ROOT / "runs"))
    walls: dict[str, list[float]] = {"previous": [], "previous64": [], "new": []}
    with _Stub(args.latency) as stub:
        q = f"concurrency={args.in_flight}&timeout=30&retries=3&backoff=0.05"
        raw = f"openai:stub@{stub.url}?{q}"
        ms = ModelSpec("openai", f"stub@{stub.url}", dict(x.split("=") for x in q.split("&")), raw)
        ref = None
        for r in range(args.rounds):
            for side in ("previous", "previous64", "new"):
                model = (OpenAIModel if side == "new" else Previous)(ms)
                bs = args.in_flight if side == "previous64" else 8
                stub.stats()
                wall, rows = _run(model, args.n, bs, work / f"{side}-{r}")
                model.close()
                outs = [x["output"] for x in rows]
                ref = ref or outs
                assert outs == ref, f"{side}: outputs differ"
                walls[side].append(wall)
                print(f"round {r} {side:10s}: {wall:6.2f}s  {args.n / wall:7.1f} req/s  max in flight at the server "
                      f"{stub.stats()['max_in_flight']}")
    best = {k: min(v) for k, v in walls.items()}
    print(f"\n{args.n} requests, {args.latency * 1000:.0f} ms latency, in-flight option {args.in_flight} "
          f"(best of {args.rounds}, sides alternated)")
    for k, v in best.items():
        print(f"  {k:10s} {v:6.2f}s  {args.n / v:7.1f} req/s   speed-up of new x{v / best['new']:.1f}")

    with _Stub(0.05, 7, 11, 13, 2.0) as stub:
        spec = f"stub@{stub.url}"
        opts = {"concurrency": "256", "timeout": "1", "retries": "8", "backoff": "0.05"}
        model = OpenAIModel(ModelSpec("openai", spec, opts, f"openai:{spec}?faults"))
        wall, rows = _run(model, 1024, 4, work / "faults")
        ids = [x["sample_id"] for x in RunRecord(work / "faults").load_samples()]
        tp = model.info()["throughput"]
        model.close()
        st = stub.stats()
        ok = len(ids) == len(set(ids)) == 1024 and st["answered"] == 1024
        print(f"\nfaults: 1024 samples at 256 in flight, every 7th 429 / 11th 503 / 13th stalls: {wall:.1f}s; "
              f"recorded once each: {ok}; server answered {st['answered']}; peak in flight {st['max_in_flight']}")
        print(f"  client: {tp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""BigCodeBench evaluation: our sandboxed harness vs the official evaluator, on the same samples
file, in one run on this machine, with the same number of workers.

Sample mix (`--mix`): `canonical-heavy` (the default) is every selected task's canonical solution
plus `--broken` extra samples spread systematically over the tasks, cycling through a `pass`
stub, a one-line mutation (the last statement dropped), a syntax error, a sleeper (the canonical
solution that sleeps 0.5 s per call: it passes slowly), a raised exception and the body without
the prompt's imports (which calibration repairs); `broken-heavy` is the earlier mix, per task the
canonical solution plus two broken variants. All scored calibrated as the leaderboard does. The
harnesses alternate chunk by chunk (each chunk a systematic sample of the tasks). Prints the
wall-time ratio, samples/second, the peak memory of each harness's whole process tree (sum of
PSS, and of RSS) and the per-sample verdict agreement (pass vs not pass).

    python bench/bench_bigcodebench_eval.py --official-venv DIR [--tasks 400 --broken 150 --chunks 4]

DIR is a virtualenv holding the official `bigcodebench` package and the few packages its
evaluator imports (pip install --no-deps bigcodebench==0.2.5; pip install termcolor tqdm appdirs
wget tempdir pqdm tree-sitter tree-sitter-python) that sees the same task libraries as ours (e.g.
a .pth file pointing at our site-packages); it may also come from $BCB_OFFICIAL_VENV. Without it
the benchmark says so and exits 0. The official evaluator runs the samples unsandboxed, as the
current user: only run it on these benign samples. Needs SOLSTICE_DATA.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

VARIANTS = ("stub", "raise", "drop_last", "syntax", "bare")
EXTRA_KINDS = ("stub", "drop_last", "syntax", "sleep", "raise", "bare")


def variant(task, kind: str) -> str:
    sig = task.code_prompt.rstrip().splitlines()[-1]
    if kind == "stub":
        return task.code_prompt + "    pass\n"
    if kind == "raise":
        return task.code_prompt + "    raise NotImplementedError('broken on purpose')\n"
    if kind == "drop_last":
        body = [ln for ln in task.canonical_solution.rstrip().splitlines()]
        while body and not body[-1].strip():
            body.pop()
        body = body[:-1] or ["    pass"]
        return task.complete_prompt + "\n".join(body) + "\n"
    if kind == "syntax":
        return task.complete_prompt + task.canonical_solution + "\n    )(\n"
    if kind == "bare":  # signature + body, without the prompt's imports and constants
        return sig + "\n" + task.canonical_solution
    if kind == "sleep":  # passes, slowly: 0.5 s per call of the entry point
        return task.complete_prompt + "    __import__('time').sleep(0.5)\n" + task.canonical_solution
    raise ValueError(kind)


def build_canonical_heavy(tasks, extra: int) -> list[dict]:
    """Every task's canonical solution, plus `extra` broken or slow samples on every
    (len(tasks) / extra)-th task, cycling through EXTRA_KINDS."""
    rows = [{"task_id": t.task_id, "solution": t.complete_prompt + t.canonical_solution, "variant": "canonical"}
            for t in tasks]
    step = len(tasks) / extra if extra else 0
    for j in range(min(extra, len(tasks)) if extra else 0):
        t = tasks[int(j * step)]
        kind = EXTRA_KINDS[j % len(EXTRA_KINDS)]
        rows.append({"task_id": t.task_id, "solution": variant(t, kind), "variant": kind})
    order = {t.task_id: i for i, t in enumerate(tasks)}
    return sorted(rows, key=lambda r: order[r["task_id"]])  # stable: canonical first within a task


def build_samples(tasks) -> list[dict]:
    rows = []
    for t in tasks:
        n = t.number
        kinds = ("canonical", VARIANTS[n % 5], VARIANTS[(n + 2) % 5])
        for k in kinds:
            sol = t.complete_prompt + t.canonical_solution if k == "canonical" else variant(t, k)
            rows.append({"task_id": t.task_id, "solution": sol, "variant": k})
    return rows


class TreeMemory:
    """Peak total PSS and RSS (MiB) of a process and all its descendants, sampled."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid, self.every = pid, every
        self.peak_pss = self.peak_rss = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self) -> None:
        from solstice.sandbox.linux import descendants

        while not self._stop.is_set():
            pss = rss = 0.0
            for p in [self.pid, *descendants(self.pid)]:
                try:
                    with open(f"/proc/{p}/smaps_rollup") as f:
                        for line in f:
                            if line.startswith("Pss:"):
                                pss += int(line.split()[1]) / 1024
                            elif line.startswith("Rss:"):
                                rss += int(line.split()[1]) / 1024
                except OSError:
                    pass
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self._stop.wait(self.every)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._t.join()
        return self.peak_pss, self.peak_rss


def timed(cmd: list[str], env: dict, log: Path) -> tuple[float, float, float, int]:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        mem = TreeMemory(proc.pid)
        code = proc.wait()
    wall = time.perf_counter() - t0
    pss, rss = mem.stop()
    return wall, pss, rss, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official-venv", default=os.environ.get("BCB_OFFICIAL_VENV", ""))
    ap.add_argument("--tasks", type=int, default=400, help="stratified slice of supported tasks (0 = all)")
    ap.add_argument("--mix", choices=("canonical-heavy", "broken-heavy"), default="canonical-heavy")
    ap.add_argument("--broken", type=int, default=150, help="canonical-heavy: extra broken / slow samples")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=240.0, help="per sample, both harnesses (official: 240 s + 1)")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "bigcodebench" / "bench_eval.json"))
    ap.add_argument("--only", choices=("both", "ours", "official"), default="both")
    ap.add_argument("--chunks", type=int, default=4,
                    help="split the tasks into chunks and alternate the harnesses chunk by chunk (shared-machine noise)")
    ap.add_argument("--max-chunks", type=int, default=0,
                    help="run only the first N chunks (each is a systematic sample: every `chunks`-th task)")
    ap.add_argument("--work", default="", help="work directory; finished chunks found there are reused (resume)")
    args = ap.parse_args()
    py = Path(args.official_venv) / "bin" / "python"
    if args.only != "ours" and not py.is_file():
        print("official evaluator virtualenv not given (--official-venv or BCB_OFFICIAL_VENV); skipping")
        return 0
    if not os.environ.get("SOLSTICE_DATA"):
        print("SOLSTICE_DATA is not set; skipping")
        return 0
    from solstice.papers.bigcodebench.tasks import load_tasks, select

    data = Path(os.environ["SOLSTICE_DATA"]) / "bigcodebench" / "BigCodeBench-v0.1.0_hf.jsonl.gz"
    tasks = select(load_tasks(data), pool="supported", size=args.tasks, seed=0)
    rows = build_samples(tasks) if args.mix == "broken-heavy" else build_canonical_heavy(tasks, args.broken)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bcb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    plain = work / "tasks.jsonl"
    with gzip.open(data, "rt") as f:
        plain.write_text(f.read())
    chunks = max(1, min(args.chunks, len(tasks)))
    run_chunks = min(chunks, args.max_chunks) if args.max_chunks else chunks
    parts = [tasks[c::chunks] for c in range(run_chunks)]  # chunk c: every `chunks`-th task, a systematic sample
    tasks = sorted((t for p in parts for t in p), key=lambda t: t.number)
    keep = {t.task_id for t in tasks}
    rows = [r for r in rows if r["task_id"] in keep]
    mix = dict(sorted(Counter(r["variant"] for r in rows).items()))
    print(f"sample mix: {mix}")
    print(f"{len(tasks)} tasks, {len(rows)} samples, {args.workers} workers, timeout {args.timeout:g}s, "
          f"{run_chunks} of {chunks} interleaved chunks; work dir {work}")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    env_off = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "BIGCODEBENCH_TIMEOUT_PER_TASK")}
    report: dict = {"n_tasks": len(tasks), "n_samples": len(rows), "mix": args.mix, "sample_mix": mix,
                    "load_average_start": os.getloadavg(), "workers": args.workers, "timeout": args.timeout,
                    "chunks": f"{run_chunks} of {chunks}", "machine": f"{os.cpu_count()} CPUs", "date": time.strftime("%Y-%m-%d %H:%M"),
                    "command": " ".join(sys.argv)}
    ours_status: dict = {}
    off_status: dict = {}
    tot = {"ours": [0.0, 0.0, 0.0], "official": [0.0, 0.0, 0.0]}  # wall, peak pss, peak rss
    for c in range(run_chunks):
        done = work / f"chunk-{c}.json"
        if done.is_file():  # resume: a chunk both harnesses finished earlier
            saved = json.loads(done.read_text())
            for name in ("ours", "official"):
                if saved.get(name):
                    _acc(tot[name], *saved[name]["acc"])
                    target = ours_status if name == "ours" else off_status
                    target.update({(k.rsplit("#", 1)[0], int(k.rsplit("#", 1)[1])): v for k, v in saved[name]["status"].items()})
            print(f"  chunk {c}: reused {done}", flush=True)
            continue
        saved = {}
        ids = {t.task_id for t in parts[c]}
        samples = work / f"samples-{c}.jsonl"
        samples.write_text("".join(json.dumps({"task_id": r["task_id"], "solution": r["solution"]}) + "\n"
                                   for r in rows if r["task_id"] in ids))

        def run_ours(c=c, ids=ids, samples=samples, saved=saved) -> bool:
            out = work / f"runs-{c}"
            cmd = [sys.executable, "-m", "solstice", "run", "bigcodebench", "--allow-code-exec", "--out", str(out),
                   "--set", f"samples={samples}", "--set", "partial=true", "--set", "check_gt=false",
                   "--set", "calibration=calibrated", "--set", f"workers={args.workers}", "--set", f"timeout={args.timeout}"]
            wall, pss, rss, code = timed(cmd, env, work / f"ours-{c}.log")
            run_dir = next(out.glob("bigcodebench/*"), None)
            if code != 0 or run_dir is None:
                print(f"our harness failed (exit {code}); see {work / f'ours-{c}.log'}")
                return False
            for x in (run_dir / "samples.jsonl").read_text().splitlines():
                x = json.loads(x)
                if x.get("key") == "exec":
                    ours_status[(x["task_id"], x["sample_index"])] = x["status"]
            _acc(tot["ours"], wall, pss, rss)
            saved["ours"] = {"acc": [wall, pss, rss], "load": os.getloadavg()[0],
                             "status": {f"{k[0]}#{k[1]}": v for k, v in ours_status.items() if k[0] in ids}}
            print(f"  chunk {c}: ours {wall:7.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
            return True

        def run_official(c=c, ids=ids, samples=samples, saved=saved) -> bool:
            cmd = [str(py), str(ROOT / "bench" / "bigcodebench_official_driver.py"), "--tasks", str(plain),
                   "--samples", str(samples), "--parallel", str(args.workers), "--ids", ",".join(sorted(ids)), "--no-gt"]
            wall, pss, rss, code = timed(cmd, env_off, work / f"official-{c}.log")
            res_path = Path(str(samples).replace(".jsonl", "_eval_results.json"))
            if code != 0 or not res_path.is_file():
                print(f"official evaluator failed (exit {code}); see {work / f'official-{c}.log'}")
                return False
            for tid, rs in json.loads(res_path.read_text())["eval"].items():
                for i, r in enumerate(rs):
                    off_status[(tid, i)] = r["status"]
            _acc(tot["official"], wall, pss, rss)
            saved["official"] = {"acc": [wall, pss, rss], "load": os.getloadavg()[0],
                                 "status": {f"{k[0]}#{k[1]}": v for k, v in off_status.items() if k[0] in ids}}
            print(f"  chunk {c}: official {wall:7.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
            return True

        sides = [("ours", run_ours), ("official", run_official)]
        if c % 2:  # alternate which harness goes first (ABBA), so drift in the machine's load cancels
            sides.reverse()
        for name, fn in sides:
            if args.only in ("both", name) and not fn():
                return 1
        done.write_text(json.dumps(saved))
    for name in ("ours", "official"):
        wall, pss, rss = tot[name]
        if wall:
            report[name] = {"wall_s": round(wall, 1), "samples_per_s": round(len(rows) / wall, 2),
                            "peak_pss_mb": round(pss), "peak_rss_mb": round(rss)}
            print(f"{name:9s} {wall:8.1f} s  {len(rows) / wall:6.2f} samples/s  peak PSS {pss:6.0f} MiB (RSS {rss:6.0f})")
    if ours_status and off_status:
        ratio = tot["official"][0] / tot["ours"][0]
        report["speedup"] = round(ratio, 2)
        report["chunk_walls"] = []
        for c in range(run_chunks):
            saved = json.loads((work / f"chunk-{c}.json").read_text())
            ow, fw = saved["ours"]["acc"][0], saved["official"]["acc"][0]
            report["chunk_walls"].append({"chunk": c, "ours_s": round(ow, 1), "official_s": round(fw, 1),
                                          "ratio": round(fw / ow, 2), "load": [saved["ours"].get("load"),
                                                                               saved["official"].get("load")]})
        keys = [(r["task_id"], i) for r, i in _indexed(rows)]
        kinds = {(r["task_id"], i): r["variant"] for r, i in _indexed(rows)}
        agree = [(ours_status[k] == "pass") == (off_status.get(k) == "pass") for k in keys]
        dis = [{"sample": f"{k[0]}#{k[1]}", "variant": kinds[k], "ours": ours_status[k], "official": off_status.get(k)}
               for k, a in zip(keys, agree) if not a]
        task_ids = sorted({k[0] for k in keys}, key=lambda x: int(x.split("/")[1]))
        task_agree = sum(all(a for k, a in zip(keys, agree) if k[0] == tid) for tid in task_ids)
        by_kind: dict = {}
        for k, a in zip(keys, agree):
            by_kind.setdefault(kinds[k], []).append(a)
        report["agreement_by_variant"] = {v: f"{sum(a)}/{len(a)}" for v, a in sorted(by_kind.items())}
        report.update(sample_agreement=round(sum(agree) / len(agree), 4), task_agreement=round(task_agree / len(task_ids), 4),
                      disagreements=dis,
                      ours_pass=sum(v == "pass" for v in ours_status.values()),
                      official_pass=sum(v == "pass" for v in off_status.values()))
        print(f"speed-up (official wall / ours): {ratio:.2f}x")
        print(f"verdict agreement: {report['sample_agreement']:.2%} of samples, {report['task_agreement']:.2%} of tasks "
              f"({len(dis)} samples differ)")
        for d in dis[:25]:
            print("  ", d)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"written {args.out}")
    return 0


def _acc(acc: list[float], wall: float, pss: float, rss: float) -> None:
    acc[0] += wall
    acc[1] = max(acc[1], pss)
    acc[2] = max(acc[2], rss)


def _indexed(rows: list[dict]):
    seen: dict[str, int] = {}
    for r in rows:
        i = seen.get(r["task_id"], 0)
        seen[r["task_id"]] = i + 1
        yield r, i


if __name__ == "__main__":
    sys.exit(main())

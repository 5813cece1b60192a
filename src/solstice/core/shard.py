"""Sharded runs and merging them: `solstice run P --shard i/n` and `solstice merge DIR...`.

A shard runs the paper as usual, but every `ctx.map` computes only the samples whose stable hash
(sha256 of `key/sample_id`) falls in slice i of n. The first map that still lacks other shards'
samples ends the shard (status `shard_done`): what comes after needs every slice. Whole stages met
before that point run in every shard (they are the same computation on the same inputs).

`merge` checks that the shards belong together (same paper, paper version, config hash, code
revision, models, seed, limit, shard count; each index exactly once; no sample recorded twice),
then creates a new run directory and runs the paper there with the shards' records in hand:
`ctx.map` appends each recorded row in sample order instead of computing it, stages are taken from
shard 1, and the paper's own code computes the metrics. The merged run's records and metrics are
those of the unsharded run. Maps that no shard reached (a paper whose second map needs the first
map's full output) are computed by the merge itself and counted in run.json `merge.computed_here`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, ResumeError

log = logging.getLogger("solstice")
SHARD_DONE = "shard_done"


class ShardDone(BaseException):  # noqa: N818 - a control-flow signal like KeyboardInterrupt, not an error
    """Raised by `ctx.map` in a shard once its slice of a map is recorded and other slices are needed."""

    def __init__(self, key: str, missing: int) -> None:
        super().__init__(f"map '{key}': this shard's slice is recorded; {missing} samples belong to other shards")
        self.key, self.missing = key, missing


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' (1-based) -> (i, n); one-line ConfigError otherwise."""
    i, sep, n = str(text).partition("/")
    try:
        a, b = int(i), int(n)
    except ValueError:
        a = b = 0
    if not sep or b < 1 or not 1 <= a <= b:
        raise ConfigError(f"--shard must be i/n with 1 <= i <= n (e.g. 1/4), not '{text}'")
    return a, b


def shard_of(done_key: str, n: int) -> int:
    """The 1-based shard that computes a sample (stable across machines and Python versions)."""
    return int(hashlib.sha256(done_key.encode()).hexdigest()[:12], 16) % n + 1


def done_key(row: dict[str, Any]) -> str:
    return f"{row['key']}/{row['sample_id']}" if row.get("key") else str(row["sample_id"])


def code_revision(meta: dict[str, Any]) -> str:
    """The code revision(s) a run was computed with (from its environment segments)."""
    from solstice.core.records import provenance

    return ",".join(provenance(meta)["revisions"])


MATCH = (("paper id", lambda m: (m.get("paper") or {}).get("id")),
         ("paper version", lambda m: (m.get("paper") or {}).get("version")),
         ("config hash", lambda m: m.get("config_hash")),
         ("code revision", code_revision),
         ("models", lambda m: m.get("model_specs")),
         ("seed", lambda m: m.get("seed")),
         ("limit", lambda m: m.get("limit")),
         ("shard count", lambda m: (m.get("shard") or {}).get("count")))


def check_shards(dirs: Sequence[str | Path]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """The shards' run.json and records, in shard order; a one-line ConfigError when they do not
    form exactly one complete, consistent set."""
    from solstice.core.records import RunRecord

    if not dirs:
        raise ConfigError("merge needs the shard run directories")
    metas, rows = [], []
    for d in dirs:
        try:
            meta = RunRecord(Path(d)).read()
        except ResumeError as exc:
            raise ConfigError(str(exc)) from None
        sh = meta.get("shard")
        if not isinstance(sh, dict) or "index" not in sh:
            raise ConfigError(f"'{d}' is not a shard run (it was not started with --shard i/n)")
        if meta.get("status") != SHARD_DONE:
            raise ConfigError(f"shard {sh['index']}/{sh.get('count')} in '{d}' did not finish (status "
                              f"{meta.get('status')}); continue it with solstice run {(meta.get('paper') or {}).get('id')} "
                              f"--resume {d}")
        metas.append(meta)
    for what, get in MATCH:
        seen = {json.dumps(get(m), sort_keys=True, default=str) for m in metas}
        if len(seen) > 1:
            vals = ", ".join(f"{Path(d).name}: {get(m)}" for d, m in zip(dirs, metas))
            raise ConfigError(f"these shards do not belong together: different {what} ({vals})")
    n = int(metas[0]["shard"]["count"])
    by_index: dict[int, str] = {}
    for d, m in zip(dirs, metas):
        i = int(m["shard"]["index"])
        if i in by_index:
            raise ConfigError(f"overlapping shards: shard {i}/{n} is given twice ({by_index[i]} and {d})")
        by_index[i] = str(d)
    missing = [i for i in range(1, n + 1) if i not in by_index]
    if missing:
        raise ConfigError(f"incomplete shard set: shard {missing[0]}/{n} is missing ({len(missing)} of {n} missing)")
    order = sorted(range(len(metas)), key=lambda k: int(metas[k]["shard"]["index"]))
    metas = [metas[k] for k in order]
    dirs = [dirs[k] for k in order]
    owner: dict[str, int] = {}
    for d, m in zip(dirs, metas):
        recs = RunRecord(Path(d)).load_samples()
        i = int(m["shard"]["index"])
        for r in recs:
            k = done_key(r)
            if k in owner and owner[k] != i:
                raise ConfigError(f"overlapping shards: sample '{k}' is recorded by shard {owner[k]}/{n} and shard {i}/{n}")
            owner[k] = i
        rows.append(recs)
    return [dict(m, _dir=str(d)) for d, m in zip(dirs, metas)], rows


def merge(dirs: Sequence[str | Path], out: str | Path = "runs", argv: Sequence[str] | None = None):
    """Join shard directories into one new run (see the module docstring). Returns the RunResult."""
    from solstice.core.records import RunRecord, new_run_dir
    from solstice.core.runner import run_paper

    metas, rows = check_shards(dirs)
    first = metas[0]
    paper_id = first["paper"]["id"]
    prior: dict[str, dict[str, Any]] = {}
    for recs in rows:
        for r in recs:
            prior[done_key(r)] = r
    target = new_run_dir(Path(out), paper_id, str(first.get("scale", "merged")), str(first["config_hash"]))
    record = RunRecord(target)
    src_stages = Path(first["_dir"]) / "stages"
    if src_stages.is_dir():
        common = set.intersection(*[{p.name for p in (Path(m["_dir"]) / "stages").glob("*.json")} for m in metas])
        (target / "stages").mkdir(exist_ok=True)
        for name in sorted(common):
            shutil.copy2(src_stages / name, target / "stages" / name)
    drop = ("_dir", "shard", "claims", "timings", "error", "started_at", "finished_at", "argv", "resume_argv",
            "resumed", "maps", "run_id", "environments", "env")
    seed_meta = {k: v for k, v in first.items() if k not in drop}
    record.write({**seed_meta, "status": "running", "warnings": [], "plots": []})
    merge_info = {"from": [m["_dir"] for m in metas], "shard_run_ids": [m.get("run_id") for m in metas],
                  "shards": len(metas), "recorded_by_shards": len(prior), "code_revision": code_revision(first)}
    log.info("merging %d shards of %s (%d recorded samples) into %s", len(metas), paper_id, len(prior), target)
    return run_paper(paper_id, resume=target, out=out, argv=argv, allow_code_exec=True, prior=prior,
                     extra_meta={"resumed": False, "resumed_from_samples": 0, "merge": merge_info})

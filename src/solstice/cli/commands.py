"""The CLI verbs. Each imports what it needs inside the function."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from solstice.cli.main import cli


def _echo_table(headers: list[str], rows: list[list[str]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*[str(c) for c in r])
    Console(width=max(100, Console().width)).print(t)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(as_json: bool) -> None:
    """List the papers and whether each is implemented."""
    from solstice.core.registry import get_paper, is_implemented, table

    rows = []
    for pid in table():
        if is_implemented(pid):
            p = get_paper(pid)
            rows.append({"id": pid, "arxiv": p.arxiv, "title": p.title, "kind": p.kind, "status": "ready", "scales": list(p.scales)})
        else:
            rows.append({"id": pid, "arxiv": "", "title": "", "kind": "", "status": "planned", "scales": []})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    _echo_table(["id", "arXiv", "title", "kind", "status"], [[r["id"], r["arxiv"], r["title"], r["kind"], r["status"]] for r in rows])


@cli.command("show")
@click.argument("paper")
def show_cmd(paper: str) -> None:
    """Show a paper: its claims, model roles, scales and config keys with defaults."""
    from solstice.core.config import config_schema_rows
    from solstice.core.registry import get_paper

    p = get_paper(paper)
    click.echo(f"{p.id}: {p.title} (arXiv {p.arxiv}) — {p.kind}, version {p.version}")
    if p.summary:
        click.echo(p.summary)
    _echo_table(["role", "default", "needs", "backends", "what"],
                [[r, x.default or "(optional)", ",".join(sorted(x.requires)), backends_for(x.requires), x.description] for r, x in p.roles.items()],
                "Model roles (--model role=spec)")
    wb = any("whitebox" in x.requires for x in p.roles.values())
    click.echo("White-box access: " + ("needed (hidden states / weights): hf, default or tiny models only" if wb else
                                       "not needed: runs on any backend (hf, vllm, openai endpoints)"))
    _echo_table(["scale", "what", "limit", "≈ minutes"], [[k, v.description, v.limit or "", v.minutes] for k, v in p.scales.items()], "Scales (--scale)")
    _echo_table(["claim", "kind", "source", "paper", "metric / check", "not run here"],
                [[c.description, c.kind, c.source, "" if c.paper_value is None else c.paper_value, c.check or c.metric or "", c.not_run] for c in p.claims], "Claims (kind: claim = the paper's effect on model outputs; harness = golden value, parity or data fact)")
    _echo_table(["key", "type", "default", "description"], [list(r) for r in config_schema_rows(p.config_cls)], "Config (--set key=value)")


def backends_for(requires) -> str:
    """Which backends can serve a role that needs `requires` (from the backends' declared capabilities)."""
    from solstice.models.loader import BACKEND_CAPABILITIES

    ok = [k for k, caps in BACKEND_CAPABILITIES.items() if set(requires) <= caps]
    return ", ".join(ok)


@cli.command("run")
@click.argument("paper")
@click.option("--scale", default="smoke", show_default=True, help="Preset: smoke (minutes) or small (the spec's small-scale plan).")
@click.option("-c", "--config", "config_files", multiple=True, type=click.Path(), help="YAML config file(s).")
@click.option("-s", "--set", "sets", multiple=True, help="Override a config key: key=value (repeatable).")
@click.option("-m", "--model", "models", multiple=True, help="Model for a role: role=spec, or a bare spec for every role.")
@click.option("--limit", type=int, default=None, help="At most N samples.")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--out", default="runs", show_default=True, type=click.Path(), help="Where run directories go.")
@click.option("--resume", type=click.Path(), default=None, help="Continue a killed run in this directory.")
@click.option("--allow-code-exec", is_flag=True, help="Allow running model-written code (sandboxed).")
@click.option("--cache", "cache", default=None, help="Cache model calls: a directory shared across runs, or 'run' for one inside the run directory (keyed on the model's weights fingerprint; off by default).")
@click.option("--shard", default=None, metavar="I/N", help="Compute only slice I of N of every map (join with `solstice merge`).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where ctx.map batches run: in this process, or as tasks on a Ray cluster (extra 'ray').")
@click.option("--dist-backend", type=click.Choice(["auto", "nccl", "gloo"]), default="auto", show_default=True,
              help="torch.distributed backend under torchrun / accelerate launch (auto: nccl with GPUs, gloo without).")
def run_cmd(paper, scale, config_files, sets, models, limit, seed, out, resume, allow_code_exec, cache, shard, executor,
            dist_backend) -> int:
    """Run one paper and write a run directory. Under `torchrun --nproc_per_node N -m solstice run ...`
    the ranks train data-parallel and rank 0 writes the run."""
    from solstice.core.runner import run_paper

    res = run_paper(paper, scale=scale, config_files=config_files, sets=sets, models=models, limit=limit,
                    seed=seed, out=out, resume=resume, argv=sys.argv, allow_code_exec=allow_code_exec,
                    cache=cache, shard=shard, executor=executor, dist_backend=dist_backend)
    return _finish(paper, res)


def _finish(paper: str, res) -> int:
    from solstice.core.distributed import launch_env

    env = launch_env()
    if env is not None and env[0] != 0 and res.status == "completed":  # rank 0 reports the run
        return res.exit_code
    if res.metrics:
        _echo_table(["metric", "value (95% CI)", "n"], [[k, v.fmt(), v.n] for k, v in res.metrics.items()], f"{paper} ({res.status})")
    click.echo(str(res.path))
    if res.status == "shard_done":
        click.echo("solstice: shard done; join all shards with: solstice merge DIR...", err=True)
    elif res.status != "completed":
        click.echo(f"solstice: {res.status}: {res.error}", err=True)
    return res.exit_code


@cli.command("merge")
@click.argument("dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", default="runs", show_default=True, type=click.Path(), help="Where the merged run directory goes.")
def merge_cmd(dirs, out) -> int:
    """Join the run directories of `run --shard i/n` (every i once) into one run."""
    from solstice.core.shard import merge

    res = merge(list(dirs), out=out, argv=sys.argv)
    return _finish(res.path.parent.name, res)


@cli.command("rescore")
@click.argument("run", type=click.Path())
@click.option("-m", "--model", "models", multiple=True, required=True, help="New model for a role: role=spec (e.g. judge=hf:...).")
@click.option("--out", default=None, type=click.Path(), help="Where the new run directory goes (default: beside the old run's paper folder).")
@click.option("--allow-code-exec", is_flag=True, help="Allow running model-written code (sandboxed).")
@click.option("--cache", "cache", default=None, help="Cache model calls: a directory shared across runs, or 'run' for one inside the run directory (keyed on the model's weights fingerprint; off by default).")
def rescore_cmd(run, models, out, allow_code_exec, cache) -> int:
    """Re-score a finished run's recorded outputs with another model for a role, into a NEW run
    directory: records that do not depend on the changed role are reused, the rest recomputed."""
    from solstice.core.rescore import rescore

    res = rescore(run, models, out, argv=sys.argv, allow_code_exec=allow_code_exec, cache=cache)
    if res.metrics:
        _echo_table(["metric", "value (95% CI)", "n"], [[k, v.fmt(), v.n] for k, v in res.metrics.items()], f"rescored ({res.status})")
    click.echo(str(res.path))
    if res.status != "completed":
        click.echo(f"solstice: {res.status}: {res.error}", err=True)
    return res.exit_code


@cli.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["markdown", "json", "table"]), default="markdown", show_default=True)
@click.option("--out", type=click.Path(), default=None, help="Also write report.md and index.html here.")
@click.option("--write-readme", is_flag=True, help="Update the results table in each paper's README.")
def report_cmd(runs, fmt, out, write_readme) -> None:
    """Report one or more run directories against the papers' claims."""
    from solstice.errors import ConfigError
    from solstice.report.build import load_run, markdown_report, update_readme, write_report

    for r in runs:
        if not (Path(r) / "run.json").is_file():
            raise ConfigError(f"'{r}' is not a run directory (no run.json)")
    summaries = [load_run(r) for r in runs]
    if fmt == "markdown":
        click.echo(markdown_report(summaries))
    elif fmt == "json":
        click.echo(json.dumps([{"path": str(s.path), "paper": s.paper_id, "status": s.run.get("status"),
                                "scale": s.scale, "provenance": s.provenance,
                                "metrics": {k: v.to_json() for k, v in s.metrics.items()},
                                "claims": [c["assessment"].to_json() | {"claim": c["claim"], "source": c["source"]}
                                           for c in s.claims]}
                               for s in summaries], indent=2))
    else:
        for s in summaries:
            _echo_table(["claim", "kind", "paper", "ours", "verdict"], [[c["claim"], c["kind"], c["paper"], c["ours"], c["label"]] for c in s.claims], f"{s.paper_id} ({s.run.get('status')}, {s.scale})")
    if out:
        md, html = write_report(summaries, out)
        click.echo(f"wrote {md} and {html}", err=True)
    if write_readme:
        import importlib

        by_paper: dict[str, list] = {}
        for s in summaries:
            by_paper.setdefault(s.paper_id, []).append(s)
        for pid, ss in by_paper.items():
            mod = importlib.import_module(f"solstice.papers.{pid}")
            readme = Path(mod.__file__).parent / "README.md"
            update_readme(readme, ss)
            click.echo(f"updated {readme}", err=True)


@cli.command("reproduce")
@click.option("--scale", default="smoke", show_default=True)
@click.option("--only", default="", help="Comma-separated paper ids.")
@click.option("--out", default="runs", show_default=True, type=click.Path())
@click.option("--report", "report_dir", default="report", show_default=True, type=click.Path())
@click.option("--fresh", is_flag=True, help="Do not reuse or resume earlier runs with the same config.")
@click.option("-m", "--model", "models", multiple=True, help="Model for every paper: role=spec or a bare spec.")
@click.option("--cache", "cache", default=None, help="Cache model calls: a directory shared across runs, or 'run' for one inside the run directory (keyed on the model's weights fingerprint; off by default).")
def reproduce_cmd(scale, only, out, report_dir, fresh, models, cache) -> int:
    """Run every implemented paper's reproduction at a scale and write report/index.html and report/report.md."""
    from solstice.core.reproduce import reproduce

    def on_paper(pid: str, line: str) -> None:
        click.echo(f"{pid:<26} {line}" if pid else f"summary: {line}")
        sys.stdout.flush()  # as each paper finishes, also when stdout is a file or a pipe

    code, md, html = reproduce(scale=scale, only=[s for s in only.split(",") if s], out=Path(out),
                               report_dir=Path(report_dir), fresh=fresh, models=models, argv=sys.argv,
                               cache=cache, on_paper=on_paper)
    click.echo(f"report: {html}")
    click.echo(f"report: {md}")
    return code


@cli.group("cache")
def cache_group() -> None:
    """Inspect or empty a model-call cache (a --cache directory)."""


@cache_group.command("info")
@click.argument("directory", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cache_info_cmd(directory, as_json) -> None:
    """Entries and size of a cache, per model fingerprint."""
    from solstice.models.cache import cache_info

    info = cache_info(directory)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    if not info["exists"]:
        click.echo(f"{info['path']}: no cache")
        return
    click.echo(f"{info['path']}: {info['entries']} entries, {info['bytes'] / 1e6:.1f} MB")
    _echo_table(["fingerprint", "model spec (first seen)", "entries"],
                [[m["fingerprint"][:16], m["spec"], m["entries"]] for m in info["models"]])


@cache_group.command("clear")
@click.argument("directory", type=click.Path())
@click.option("--fingerprint", "prefix", default=None, help="Only the entries of the model(s) whose fingerprint starts with this.")
def cache_clear_cmd(directory, prefix) -> None:
    """Delete a cache's entries (all, or one model's)."""
    from solstice.models.cache import clear_cache

    n = clear_cache(directory, prefix)
    click.echo(f"deleted {n} entries")


@cli.group("bigcodebench")
def bigcodebench_group() -> None:
    """BigCodeBench tools: the pinned evaluation environment."""


@bigcodebench_group.command("env")
@click.option("--python", "python", default=sys.executable, show_default=True,
              help="Base interpreter (the official pins target Python 3.10).")
@click.option("--dir", "target", type=click.Path(), default=None,
              help="Where the virtualenv goes (default: the solstice cache, per Python version).")
@click.option("--requirements", type=click.Path(), default=None, help="Install these pins instead of the official ones.")
@click.option("--no-harness", is_flag=True, help="Leave out the sandbox's own layer (pyseccomp).")
@click.option("--force", is_flag=True, help="Rebuild an existing directory.")
@click.option("--pip-arg", "pip_args", multiple=True, help="Extra argument for pip install (repeatable).")
def bigcodebench_env_cmd(python, target, requirements, no_harness, force, pip_args) -> None:
    """Build a virtualenv with the official evaluation requirements pinned; run samples in it with
    `solstice run bigcodebench --set python=DIR/bin/python`."""
    from solstice.papers.bigcodebench import env

    reqs = env.read_requirements(requirements) if requirements else None
    m = env.build(python, Path(target) if target else None, reqs, harness=not no_harness, force=force,
                  pip_args=tuple(pip_args))
    click.echo(f"built {m['python']} (Python {m['python_version']}, {len(m['freeze'])} packages, {m['built_s']} s)")
    click.echo(f"use it with: solstice run bigcodebench --allow-code-exec --set python={m['python']}")


@cli.group("video")
def video_group() -> None:
    """Video library question answering (video_rag): ingest subtitle files, ask with timestamped citations."""


@video_group.command("ingest")
@click.argument("store", type=click.Path())
@click.argument("folder", type=click.Path())
@click.option("--segment", type=click.Choice(["cues", "window", "shots"]), default="cues", show_default=True,
              help="Moments from subtitle cues, fixed 30 s windows, or cut detection on the video file beside each subtitle.")
def video_ingest_cmd(store, folder, segment) -> None:
    """Add the subtitle files under FOLDER to the moment store STORE (incremental)."""
    from solstice.papers.video_rag.app import ingest_folder

    for vid, n in ingest_folder(store, folder, segment=segment).items():
        click.echo(f"{vid}: {n} moments added" if n else f"{vid}: already in the store")


@video_group.command("ask")
@click.argument("store", type=click.Path())
@click.argument("question")
@click.option("-m", "--model", "model", default="default", show_default=True, help="Model spec for queries and answers.")
@click.option("--no-model-queries", is_flag=True, help="Keyword queries without the model.")
@click.option("--clips", type=click.Choice(["json", "csv"]), default=None, help="Print the clip list in this format.")
def video_ask_cmd(store, question, model, no_model_queries, clips) -> None:
    """Answer QUESTION from the library in STORE, citing [video start–end]."""
    from solstice.papers.video_rag.app import ask
    from solstice.papers.video_rag.grounding import export_clips

    res = ask(store, question, model=model, use_model_queries=not no_model_queries)
    click.echo(res.answer.strip())
    for c in res.citations:
        click.echo(f"  {c.status:8s} {c.video_id} {c.start:g}-{c.end:g}s  {c.link()}")
    if clips:
        click.echo(export_clips(res.clips, clips))

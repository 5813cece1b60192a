"""Loong run: build each instance's prompt within the token budget (whole documents skipped,
seeded shuffles), generate the candidate answer (failures become flagged empty answers), rate it
with the judge prompt (and, as probes, the gold answer and an empty answer), then aggregate Avg
Score and Perfect Rate per task, set, set×task, type and overall."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.data.sources import DataSource, cache_dir, data_root, path_sha256
from solstice.errors import BackendError, DataError
from solstice.judge.base import Judge
from solstice.metrics import mean_metric, proportion_metric
from solstice.models.base import GenParams, Model
from solstice.models.tokens import TokenCounter, get_counter, prompt_tokens
from solstice.papers.loong import data as D
from solstice.papers.loong import scoring as S
from solstice.papers.loong.config import Config
from solstice.papers.loong.prompts import build_prompt, fill_template, judge_prompt

log = logging.getLogger(__name__)
LOONG_REV = "494f5fb8362440e03323572c2b18e762e7f2b1da"  # the release commit of loong.jsonl
LOONG_SHA256 = "cd640d3ca0e41d3638153506e3caee109850b30de0a4e829862232a2b6302da8"


def datasets(cfg: Config) -> list[DataSource]:
    if cfg.collection == "synthetic":
        return []
    default = cfg.questions == "loong/loong.jsonl"
    q = DataSource("loong", cfg.questions, license="Apache-2.0 (MozerWang/Loong)",
                   url=f"https://raw.githubusercontent.com/MozerWang/Loong/{LOONG_REV}/data/loong.jsonl" if default else None,
                   sha256=LOONG_SHA256 if default else None, revision=LOONG_REV if default else None,
                   description="Loong questions, answers and document keys")
    doc_folder(cfg)  # fails early, with the download hint, when the documents are absent
    return [q]


def doc_folder(cfg: Config) -> Path:
    """The document folder: `doc_dir`, else `doc` next to the question file (SOLSTICE_DATA, cache)."""
    doc = cfg.doc_dir or str(Path(cfg.questions).parent / "doc")
    for base in (data_root(), cache_dir()):
        if (base / doc).is_dir():
            return base / doc
    raise DataError(f"the Loong documents are not at {data_root() / doc}; {D.DOCS_HINT}")


def folder_fingerprint(path: Path) -> dict[str, Any]:
    """A cheap record of a document folder: file count, bytes and a hash of the names and sizes."""
    import hashlib

    h, n, size = hashlib.sha256(), 0, 0
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path).as_posix()}\t{st.st_size}\n".encode())
        n, size = n + 1, size + st.st_size
    return {"path": str(path), "files": n, "bytes": size, "listing_sha256": h.hexdigest()}


def exact_judge_model() -> Model:
    from solstice.models.fake import FakeModel

    return FakeModel.from_function(lambda text, i, p: S.exact_judge_reply(text), name="loong-exact-judge")


PREFILL = "Rating: [["


def make_judge(cfg: Config, model: Model, cache: Path | None = None) -> Judge:
    """The judge: the paper's prompt as one user turn (with 'prefill', the judge's turn starts with
    'Rating: [[' and only the number is generated)."""
    def parse(text: str):
        return S.parse_rating(text, cfg.judge_parser, cfg.out_of_range)

    if cfg.judge_mode == "prefill":
        return Judge(model, lambda it: [{"role": "user", "content": it["prompt"]},
                                        {"role": "assistant", "content": PREFILL}],
                     lambda t: parse(PREFILL + t.split("]]")[0] + "]]"),
                     params=GenParams(max_new_tokens=8, temperature=0.0, stop=("]]",)), cache=cache)
    return Judge(model, lambda it: [{"role": "user", "content": it["prompt"]}], parse,
                 params=GenParams(max_new_tokens=cfg.judge_max_new_tokens, temperature=0.0), cache=cache)


def per_level(items: Sequence[D.LoongItem], n: int | None) -> list[D.LoongItem]:
    """Up to n instances per task level, taken round-robin over the types in file order (level k
    starts with the k-th type, so a one-per-level selection spreads over the types)."""
    if n is None:
        return list(items)
    out = []
    for level in sorted({i.level for i in items}):
        start = (level - 1) % len(D.TYPES)
        types = D.TYPES[start:] + D.TYPES[:start]
        queues = [[i for i in items if i.level == level and i.type == t] for t in types]
        picked: list[D.LoongItem] = []
        while len(picked) < n and any(queues):
            for q in queues:
                if q and len(picked) < n:
                    picked.append(q.pop(0))
        out += picked
    return out


def load_collection(cfg: Config, ctx: Any) -> tuple[list[D.LoongItem], D.DocStore, dict[str, Any]]:
    if cfg.collection == "synthetic":
        from solstice.papers.loong.synthetic import write_collection

        root = ctx.artifact("synthetic")
        qpath = root / "loong.jsonl"
        if not qpath.is_file():
            write_collection(root, cfg.synthetic_seed)
        docdir = root / "doc"
        info = {"collection": "synthetic", "seed": cfg.synthetic_seed, "sha256": path_sha256(root)}
    else:
        qpath, docdir = ctx.dataset(datasets(cfg)[0]), doc_folder(cfg)
        info = {"collection": "release", "questions": cfg.questions, "docs": folder_fingerprint(docdir)}
    items = D.select(D.load_items(qpath), types=cfg.types, levels=cfg.levels, sets=cfg.sets)
    items = ctx.limited(per_level(items, cfg.n_per_level))
    store = D.DocStore(docdir)
    missing = D.check_docs(store, items, cfg.allow_missing_docs)
    if missing:
        ctx.warn(f"{len(missing)} documents are missing; they are left out of the prompts and counted per item")
    return items, store, {**info, "n_items": len(items), "missing_docs": len(missing)}


class PromptBuilder:
    """Prompts within min(max_length, window − answer budget − chat overhead) tokens of documents."""

    def __init__(self, cfg: Config, model: Model, counter: TokenCounter, store: D.DocStore) -> None:
        self.cfg, self.model, self.counter, self.store = cfg, model, counter, store
        self.window = cfg.context_window or model.context_window
        self.limit = self.window - cfg.max_new_tokens

    def __call__(self, item: D.LoongItem) -> tuple[str, dict[str, Any]]:
        cfg = self.cfg
        docs = [self.store.load(item, k, i, faithful_labels=cfg.mode == "faithful")
                if self.store.exists(item, k) else None for i, k in enumerate(item.doc)]
        bare = fill_template(item, cfg.mode).replace("{docs}", "")
        ref_budget = cfg.max_length - self.counter.count(bare)
        win_budget = self.limit - prompt_tokens(self.model, [{"role": "user", "content": bare}], self.counter)
        budget = min(ref_budget, win_budget)
        for _ in range(6):  # per-document counts do not add up exactly: tighten until the prompt fits
            bp = build_prompt(item, docs, self.counter.count, max(0, budget), mode=cfg.mode, seed=cfg.shuffle_seed)
            n = prompt_tokens(self.model, [{"role": "user", "content": bp.text}], self.counter)
            if n <= self.limit or not bp.kept:
                break
            budget -= n - self.limit
        info = {**{k: v for k, v in bp.to_json().items() if k != "text"}, "prompt_tokens": n,
                "bound": "max_length" if ref_budget <= win_budget else "window", "over_window": n > self.limit}
        return bp.text, info


def _generate(model: Model, prompts: list[str], params: GenParams) -> list[tuple[str, str]]:
    """(text, error) per prompt; a backend failure leaves an empty answer with its error."""
    msgs = [[{"role": "user", "content": p}] for p in prompts]
    try:
        return [(c[0].text, "") for c in model.generate(msgs, params)]
    except BackendError:
        out = []
        for m in msgs:
            try:
                out.append((model.generate([m], params)[0][0].text, ""))
            except BackendError as exc:
                out.append(("", str(exc)[:200]))
        return out


def load_predictions(source: str, ids: Sequence[str]) -> dict[str, str]:
    """Candidate answers to judge instead of generating: a JSONL file of {"id", "prediction"} (or
    the reference's "generate_response"), e.g. released outputs. To re-judge a Loong run, use
    `solstice rescore RUN --model judge=...` (a new run directory; answers reused)."""
    from solstice.data.io import read_jsonl

    p = Path(source).expanduser()
    if p.is_dir():
        raise DataError(f"predictions_from '{source}' is a directory; re-judge a run with "
                        "`solstice rescore <run> --model judge=<spec>`")
    if not p.is_file():
        raise DataError(f"predictions_from '{source}' is not a JSONL file")
    rows = [{"id": str(r.get("id")), "prediction": r.get("prediction", r.get("generate_response"))} for r in read_jsonl(p)]
    got = {r["id"]: r["prediction"] for r in rows if isinstance(r["prediction"], str)}
    missing = [i for i in ids if i not in got]
    if missing:
        raise DataError(f"predictions_from '{source}' has no answer for {len(missing)} of the {len(ids)} selected "
                        f"instances (e.g. {missing[0]})")
    return got


def oracle_text(answer: Any) -> str:
    return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)


def run(cfg: Config, ctx: Any) -> dict[str, MetricValue]:
    items, store, info = load_collection(cfg, ctx)
    reused = load_predictions(cfg.predictions_from, [i.id for i in items]) if cfg.predictions_from else {}
    model = ctx.model("target")
    counter = get_counter(cfg.token_counter, model)
    builder = PromptBuilder(cfg, model, counter, store)
    ctx.record.update(token_counting={**counter.info(), "window": builder.window},
                      loong={**info, "mode": cfg.mode, "max_length": cfg.max_length})
    by_id = {i.id: i for i in items}
    samples = [Sample(i.id, i.id) for i in items]
    params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0)


    def candidate(batch: list[Sample]) -> list[dict[str, Any]]:
        built = [builder(by_id[s.id]) for s in batch]
        if reused:
            outs = [(reused[s.id], "") for s in batch]
        else:
            outs = _generate(model, [b[0] for b in built], params)
        return [{"prediction": text, "gen_failed": bool(err), "gen_error": err, "reused": bool(reused), **b[1]}
                for (text, err), b in zip(outs, built)]

    gen = {r["sample_id"]: r for r in ctx.map(samples, candidate, batch_size=cfg.batch_size, key="generate",
                                              roles=("target",),
                                              description="loong candidate")}
    if store.ambiguous:
        ctx.warn(f"{len(store.ambiguous)} financial document keys match several files (the first in sorted "
                 "order is used; the reference takes an arbitrary one)")
    jmode = resolve_judge_mode(cfg, ctx)
    cfg = cfg.model_copy(update={"judge_mode": jmode})
    jmodel = exact_judge_model() if jmode == "exact" else ctx.model("judge")
    judge = make_judge(cfg, jmodel, None)  # judge calls are cached only with --cache (ctx.model)
    preds = {"candidate": {k: r["prediction"] for k, r in gen.items()},
             "oracle": {i.id: oracle_text(i.answer) for i in items},
             "empty": {i.id: "" for i in items}}
    variants = ["candidate", *[p for p in cfg.judge_probes if p != "candidate"]]
    scored: dict[str, list[dict[str, Any]]] = {}
    for v in variants:
        def rate(batch: list[Sample], v: str = v) -> list[dict[str, Any]]:
            its = [{"prompt": judge_prompt(by_id[s.id], preds[v][s.id], cfg.mode)} for s in batch]
            verdicts = judge.judge(its)
            return [{"judge_raw": vd.raw, "score": vd.value if vd.parsed else None, "parsed": vd.parsed,
                     "out_of_range": S.out_of_range(vd.raw, vd)} for vd in verdicts]

        rows = ctx.map(samples, rate, batch_size=cfg.batch_size, key=f"judge-{v}", description=f"loong judge {v}")
        scored[v] = [{**r, "level": by_id[r["sample_id"]].level, "set": by_id[r["sample_id"]].set,
                      "type": by_id[r["sample_id"]].type,
                      "exact": S.answers_match(by_id[r["sample_id"]].answer, preds[v][r["sample_id"]])}
                     for r in rows]
    metrics = summarize(scored, list(gen.values()))
    over = [r for r in gen.values() if r["skipped"] and r["bound"] == "window"]
    if over:
        ctx.warn(f"{len(over)} of {len(gen)} items left whole documents out because the candidate's window "
                 f"({builder.window} tokens) is below max_length={cfg.max_length}; their scores are not "
                 "comparable with the paper's (set the model's context_window if it is larger)")
    metrics["judge_rule_based"] = MetricValue(float(jmode == "exact"), len(gen), None, None,
                                              "1 = ratings from the rule-based exact-match judge, not an LLM judge")
    _write_cells(ctx, scored)
    return metrics


def resolve_judge_mode(cfg: Config, ctx: Any) -> str:
    """'auto' → 'model' when a judge was chosen (or judges itself as target, the smoke/small protocol),
    else the rule-based judge with a warning: the default 135M judge never gives a parsable rating."""
    if cfg.judge_mode != "auto":
        return cfg.judge_mode
    judge, target = ctx.model_specs.get("judge"), ctx.model_specs.get("target")
    if judge != "default" or judge == target:
        return "model"
    ctx.warn(f"no judge model was given for target '{target}': rated by the RULE-BASED exact-match judge "
             "(100 if the normalised answer matches, else 0), not the paper's LLM judge; give one with "
             "--model judge=SPEC (GPT-4-Turbo in the paper) or set judge_mode")
    ctx.record.update(loong_judge={"mode": "exact", "requested": "auto", "fallback": True})
    return "exact"


def summarize(scored: dict[str, list[dict[str, Any]]], gen_rows: list[dict[str, Any]]) -> dict[str, MetricValue]:
    cand = scored["candidate"]
    m: dict[str, MetricValue] = dict(S.cell_metrics(cand))
    m["exact_match"] = proportion_metric([r["exact"] for r in cand], note="rule-based, no judge")
    for v, rows in scored.items():
        if v == "candidate":
            continue
        pm = S.cell_metrics(rows, prefix=f"{v}/")
        m.update({k: x for k, x in pm.items() if k.count("/") == 1})
        m[f"{v}/exact_match"] = proportion_metric([r["exact"] for r in rows])
    m["judge_out_of_range"] = MetricValue(float(sum(r["out_of_range"] for r in cand)), len(cand), None, None,
                                          "ratings outside [0, 100] (unparsed or clipped)")
    m["gen_failed"] = MetricValue(float(sum(r["gen_failed"] for r in gen_rows)), len(gen_rows), None, False,
                                  "candidate calls that failed (judged as empty answers)")
    m["docs_kept"] = mean_metric([len(r["kept"]) / max(1, len(r["kept"]) + len(r["skipped"]) + len(r["missing"]))
                                  for r in gen_rows], note="share of an item's documents in its prompt")
    m["items_with_skipped_docs"] = MetricValue(float(sum(bool(r["skipped"]) for r in gen_rows)), len(gen_rows),
                                               None, None, "items where the budget left whole documents out")
    m["prompt_tokens"] = mean_metric([r["prompt_tokens"] for r in gen_rows], higher_is_better=None)
    return m


def _write_cells(ctx: Any, scored: dict[str, list[dict[str, Any]]]) -> None:
    path = ctx.artifact("cells.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["answers", "cell", "n", "parsed", "scoring_success", "avg_score", "perfect_rate"])
        for v, rows in scored.items():
            agg = S.aggregate(rows)
            for c in S.cell_order(agg):
                a = agg[c]
                w.writerow([v, c, a["n"], a["parsed"], round(a["success"], 4),
                            "" if a["avg"] != a["avg"] else round(a["avg"], 2),
                            "" if a["perfect"] != a["perfect"] else round(a["perfect"], 4)])

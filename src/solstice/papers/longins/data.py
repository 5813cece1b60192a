"""LongIns data: the released files, their items, subsets, and the synthetic settings.

Released layout (the Google Drive `data.zip` of the official README): `<SETTING>/<L>.json`, SETTING in
{GIST, LIST}, L in {256, 512, ..., 16384}; some copies name them `<SETTING>_<L>.json`, and the
LIST files were also committed upstream as raw byte parts `<L>.json_part_<k>`. Each file is one JSON
object keyed by task name (the sample id) with `Categories`, `Domains`, `Lenth` (sic), `task_prompt`,
`Data`, `error` (indices of the wrongly answered items = gold) and `true_list`.

LIMT (local instructions, mixed tasks) was never released; `synthesize_limt` builds it as the paper
describes from the GIST items of several tasks, each item with its own task's instruction, and
`listify` turns a GIST sample into the LIST format (the instruction repeated per item). Both are
labelled synthetic wherever they are reported.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from solstice.data.sources import DataSource, data_root
from solstice.errors import DataError

SETTINGS = ("GIST", "LIST", "LIMT")
LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384)
RELEASE = "the LongIns data.zip (Google Drive link in the README of github.com/Ins-Bench/LongIns-Bench)"

_GIST_HEAD = re.compile(r"(?:^|\n)\[(\d+):")
_LIST_HEAD = re.compile(r"(?:^|\n)\[Question (\d+) ")


@dataclass(frozen=True)
class Item:
    index: int
    input: str
    answer: str
    wrong: bool
    task: str = ""
    instruction: str = ""


@dataclass(frozen=True)
class ExamSample:
    id: str
    setting: str
    length: int
    task_prompt: str
    data: str
    error: tuple[int, ...]
    true_list: tuple[int, ...]
    categories: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    stated_length: int = 0
    synthetic: bool = False
    meta: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def n_items(self) -> int:
        return len(self.error) + len(self.true_list)

    @property
    def empty(self) -> bool:
        return self.n_items == 0

    @property
    def bucket(self) -> str:
        return f"{self.setting}{'syn' if self.synthetic else ''}-{self.length}"

    @property
    def category(self) -> str:
        return self.categories[0] if self.categories else "mixed"


# -- files ----------------------------------------------------------------------------------------
def candidate_paths(setting: str, length: int) -> list[str]:
    return [f"longins/{setting}_{length}.json", f"longins/{setting}/{length}.json"]


def source(setting: str, length: int) -> DataSource:
    """The DataSource of a released file: whichever naming is present under SOLSTICE_DATA."""
    paths = candidate_paths(setting, length)
    root = data_root()
    chosen = next((p for p in paths if (root / p).exists()), None)
    if chosen is None:
        parts = sorted((root / f"longins/{setting}").glob(f"{length}.json_part_*"))
        chosen = f"longins/{setting}" if parts else paths[0]
    return DataSource(
        f"longins-{setting}-{length}", chosen,
        license="none declared (built from Super-NaturalInstructions, Apache-2.0): local use only",
        description=f"LongIns {setting} setting, {length}-token bucket; get it from {RELEASE}",
    )


def is_available(setting: str, length: int) -> bool:
    root = data_root()
    return any((root / p).is_file() for p in candidate_paths(setting, length)) or any(
        (root / f"longins/{setting}").glob(f"{length}.json_part_*")
    )


def read_release(path: Path, setting: str, length: int) -> dict:
    """The JSON object of a released file (joining `<L>.json_part_<k>` parts when given a folder)."""
    if path.is_dir():
        parts = sorted(path.glob(f"{length}.json_part_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
        if not parts:
            raise DataError(f"no LongIns {setting}-{length} file in {path}; get it from {RELEASE}")
        raw = b"".join(p.read_bytes() for p in parts)
    else:
        raw = path.read_bytes()
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"LongIns file {path.name} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"LongIns file {path.name} must hold one JSON object keyed by task name")
    return obj


def load_samples(path: Path, setting: str, length: int) -> list[ExamSample]:
    """Every sample of a released file, in file order, validated."""
    out = []
    for key, v in read_release(path, setting, length).items():
        try:
            s = ExamSample(
                id=key, setting=setting, length=length, task_prompt=v.get("task_prompt", ""),
                data=v["Data"], error=tuple(int(i) for i in v["error"]),
                true_list=tuple(int(i) for i in v["true_list"]),
                categories=tuple(v.get("Categories", ())), domains=tuple(v.get("Domains", ())),
                stated_length=int(v.get("Lenth", v.get("Length", 0)) or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"LongIns {setting}-{length}: sample '{key}' lacks a valid field ({exc})") from None
        if set(s.error) & set(s.true_list) or sorted(s.error + s.true_list) != list(range(s.n_items)):
            raise DataError(f"LongIns {setting}-{length}: sample '{key}' has item indices that are not 0..n-1")
        out.append(s)
    if not out:
        raise DataError(f"LongIns {setting}-{length} holds no samples")
    return out


# -- items ------------------------------------------------------------------------------------------
def item_headers(data: str, setting: str) -> list[int]:
    pat = _GIST_HEAD if setting == "GIST" else _LIST_HEAD
    return [int(m.group(1)) for m in pat.finditer(data)]


def split_items(sample: ExamSample) -> list[Item]:
    """The items of a GIST sample: `[i:<input> Answer: <answer>]` blocks."""
    if sample.setting != "GIST":
        raise DataError("items can be split from GIST samples only")
    heads = list(_GIST_HEAD.finditer(sample.data))
    wrong = set(sample.error)
    items = []
    for j, m in enumerate(heads):
        end = heads[j + 1].start() if j + 1 < len(heads) else len(sample.data)
        body = sample.data[m.end() : end].strip()
        body = body[:-1] if body.endswith("]") else body
        inp, sep, ans = body.rpartition("Answer:")
        if not sep:
            inp, ans = body, ""
        i = int(m.group(1))
        items.append(Item(i, inp.strip(), ans.strip(), i in wrong, sample.id, sample.task_prompt))
    if [it.index for it in items] != list(range(sample.n_items)):
        raise DataError(f"LongIns sample '{sample.id}': item headers are not 0..{sample.n_items - 1}")
    return items


def gist_item(i: int, it: Item) -> str:
    return f"[{i}:{it.input} Answer: {it.answer}]"


def list_item(i: int, it: Item) -> str:
    return f"[Question {i} Instruction:{it.instruction} Input:{it.input} Output: {it.answer}]"


def listify(sample: ExamSample) -> ExamSample:
    """A GIST sample in the LIST format (the task's instruction repeated in every item)."""
    items = split_items(sample) if not sample.empty else []
    data = "".join(list_item(it.index, it) + "\n\n" for it in items)
    return replace(sample, setting="LIST", data=data, synthetic=True)


def item_pool(samples: Iterable[ExamSample]) -> dict[str, list[Item]]:
    """Task -> its distinct items over the given GIST samples (deduplicated by input)."""
    pool: dict[str, dict[str, Item]] = defaultdict(dict)
    for s in samples:
        if s.setting != "GIST" or s.empty:
            continue
        for it in split_items(s):
            pool[s.id].setdefault(it.input, it)
    return {k: list(v.values()) for k, v in pool.items()}


def synthesize_limt(pool: dict[str, list[Item]], length: int, n: int, count: Callable[[str], int],
                    seed: int = 0, min_fill: float = 0.75) -> list[ExamSample]:
    """`n` LIMT samples of at most `length` tokens of data: items drawn from distinct tasks in a
    seeded order, each in the LIST item format with its own task's instruction, renumbered from 0,
    added while they fit; each sample keeps at least one wrong item."""
    rng = random.Random(f"limt:{seed}:{length}")
    tasks = sorted(pool)
    out = []
    for k in range(n):
        order = tasks[:]
        rng.shuffle(order)
        chosen: list[Item] = []
        used = 0
        for t in order:
            it = rng.choice(pool[t])
            cost = count(list_item(len(chosen), it) + "\n\n")
            if used + cost > length:
                if used >= min_fill * length:
                    break
                continue
            chosen.append(it)
            used += cost
        if chosen and not any(it.wrong for it in chosen):
            wrong_tasks = [t for t in order if any(x.wrong for x in pool[t])]
            for t in wrong_tasks:
                it = next(x for x in pool[t] if x.wrong)
                trial = [*chosen[:-1], it]
                if sum(count(list_item(i, x) + "\n\n") for i, x in enumerate(trial)) <= length:
                    chosen = trial
                    break
        rng.shuffle(chosen)
        data = "".join(list_item(i, it) + "\n\n" for i, it in enumerate(chosen))
        err = tuple(i for i, it in enumerate(chosen) if it.wrong)
        ok = tuple(i for i, it in enumerate(chosen) if not it.wrong)
        out.append(ExamSample(
            id=f"limt-{length}-{k:04d}", setting="LIMT", length=length, task_prompt="", data=data,
            error=err, true_list=ok, categories=("mixed",), stated_length=count(data), synthetic=True,
            meta={"tasks": [it.task for it in chosen]},
        ))
    return out


# -- subsets --------------------------------------------------------------------------------------
def stratified(samples: Sequence[ExamSample], n: int | None, seed: int = 0) -> list[ExamSample]:
    """A category-stratified subset of `n` samples (largest-remainder allocation), in a seeded random
    order; all samples (shuffled) when n is None or at least their number."""
    rng = random.Random(f"stratified:{seed}")
    if n is None or n >= len(samples):
        out = list(samples)
        rng.shuffle(out)
        return out
    groups: dict[str, list[ExamSample]] = defaultdict(list)
    for s in samples:
        groups[s.category].append(s)
    total = len(samples)
    quota = {c: n * len(g) / total for c, g in groups.items()}
    alloc = {c: int(q) for c, q in quota.items()}
    for c in sorted(groups, key=lambda c: (-(quota[c] - alloc[c]), c))[: n - sum(alloc.values())]:
        alloc[c] += 1
    picked = []
    for c in sorted(groups):
        g = list(groups[c])
        rng.shuffle(g)
        picked += g[: alloc[c]]
    rng.shuffle(picked)
    return picked

"""BigCodeBench tasks: sources (local v0.1.0_hf, later versions and the Hard subset online, or a
user file), parsing, dependency tiers, domains and slices."""

from __future__ import annotations

import ast
import gzip
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from solstice.data import DataSource
from solstice.errors import ConfigError, DataError
from solstice.sandbox.deps import imported_modules, is_available, is_stdlib

VERSIONS = ("v0.1.0_hf", "v0.1.1", "v0.1.2", "v0.1.3", "v0.1.4")
SUBSETS = ("full", "hard")
LOCAL_SHA256 = {("v0.1.0_hf", "full"): "58142744edaf6036387f8761701f1b353432b0ed33f2edec1de8a59e7431ef7a"}
_RELEASES = "https://github.com/bigcode-project/bigcodebench-annotation/releases/download"
REQUIRED = ("task_id", "complete_prompt", "instruct_prompt", "code_prompt", "canonical_solution", "test",
            "entry_point")

# Our classification of the 139 libraries into the paper's seven domains (§2.4, Table 1).
DOMAINS = ("Computation", "General", "Visualization", "System", "Time", "Network", "Cryptography")
_DOMAIN_LIBS = {
    "Computation": "numpy pandas scipy sklearn statsmodels math cmath statistics sympy decimal tensorflow "
                   "keras gensim nltk textblob regex Levenshtein wordninja librosa soundfile skimage cv2 "
                   "shapely geopandas",
    "General": "random collections itertools string re operator functools heapq bisect typing types enum "
               "inspect ast copy difflib unicodedata textwrap fnmatch array warnings importlib pkgutil "
               "faker natsort queue uuid secrets",
    "Visualization": "matplotlib seaborn folium wordcloud PIL turtle mpl_toolkits texttable prettytable "
                     "pytesseract",
    "System": "os sys shutil glob pathlib subprocess csv io json zipfile tarfile gzip pickle sqlite3 logging "
              "struct platform ctypes threading multiprocessing psutil signal select errno shlex "
              "configparser getpass yaml xlwt openpyxl docx xmltodict xml",
    "Time": "datetime time pytz dateutil holidays calendar",
    "Network": "requests urllib socket http smtplib ssl email cgi mimetypes ftplib ipaddress bs4 lxml "
               "pyquery mechanize django flask flask_mail flask_restful flask_login flask_wtf wtforms "
               "werkzeug geopy wikipedia sendgrid python_http_client html chardet",
    "Cryptography": "hashlib base64 binascii hmac codecs zlib rsa cryptography Crypto blake3",
}
LIB_DOMAIN = {lib: dom for dom, libs in _DOMAIN_LIBS.items() for lib in libs.split()}
# Rarest first: a task's primary domain (its stratum) is its rarest domain.
_PRIMARY_ORDER = ("Cryptography", "Network", "Time", "Visualization", "System", "Computation", "General")


def data_source(version: str, subset: str) -> DataSource:
    if version not in VERSIONS:
        raise ConfigError(f"unknown BigCodeBench version '{version}'; choose one of {', '.join(VERSIONS)}")
    if subset not in SUBSETS:
        raise ConfigError(f"unknown subset '{subset}'; choose 'full' or 'hard'")
    extra = "-Hard" if subset == "hard" else ""
    name = f"BigCodeBench{extra}-{version}.jsonl.gz"
    tag = version  # a release tag of bigcode-project/bigcodebench-annotation pins the revision
    return DataSource(
        name=f"bigcodebench-{subset}-{version}",
        path=f"bigcodebench/{name}",
        url=f"{_RELEASES}/{tag}/BigCodeBench{extra}.jsonl.gz",
        sha256=LOCAL_SHA256.get((version, subset)),
        revision=tag,
        license="Apache-2.0",
        description=f"BigCodeBench {subset} tasks, release {version} (bigcode-project/bigcodebench-annotation)",
    )


@dataclass(frozen=True)
class Task:
    task_id: str
    complete_prompt: str
    instruct_prompt: str
    code_prompt: str
    canonical_solution: str
    test: str
    entry_point: str
    libs: tuple[str, ...] = ()
    doc_struct: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return int(self.task_id.rsplit("/", 1)[-1])

    @cached_property
    def modules(self) -> frozenset[str]:
        """Modules imported by the prompt, the canonical solution or the tests (AST scan)."""
        test = self._test_tree if self._test_tree is not None else self.test
        return frozenset(imported_modules(self.complete_prompt + "\n" + self.canonical_solution, test))

    @cached_property
    def _test_tree(self) -> ast.Module | None:
        try:
            return ast.parse(self.test)
        except (SyntaxError, ValueError):
            return None

    @cached_property
    def third_party(self) -> frozenset[str]:
        return frozenset(m for m in self.modules if not is_stdlib(m))

    @property
    def missing(self) -> list[str]:
        return sorted(m for m in self.modules if not is_available(m))

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted({LIB_DOMAIN.get(lib, "General") for lib in self.libs}))

    @property
    def primary_domain(self) -> str:
        doms = set(self.domains) or {"General"}
        return next(d for d in _PRIMARY_ORDER if d in doms)

    @property
    def n_tests(self) -> int:
        tree = self._test_tree
        if tree is None:
            return 0
        return sum(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")
                   for cls in tree.body if isinstance(cls, ast.ClassDef) for n in cls.body)

    @property
    def hard_candidate(self) -> bool:
        """The two recomputable parts of the Hard filter: > 2 libraries and a canonical solution
        longer than 426 characters (the other two need model results and Stack Exchange)."""
        return len(self.libs) > 2 and len(self.canonical_solution) > 426


def _parse_libs(raw: Any, task_id: str) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        return tuple(str(x) for x in raw)
    try:
        val = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise DataError(f"task {task_id}: 'libs' is not a Python list literal: {raw!r:.60}") from exc
    return tuple(str(x) for x in val)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            import pandas as pd

            return pd.read_parquet(path).to_dict("records")
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read BigCodeBench tasks from {path}: {exc}") from None


def parse_tasks(rows: list[dict[str, Any]], where: str = "") -> list[Task]:
    tasks = []
    for i, row in enumerate(rows):
        miss = [k for k in REQUIRED if k not in row]
        if miss:
            raise DataError(f"{where or 'tasks'} row {i}: missing field(s) {', '.join(miss)}; is this a BigCodeBench file?")
        doc = row.get("doc_struct") or {}
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except ValueError:
                doc = {}
        extra = {k: row[k] for k in ("q_idx", "question", "score", "_id") if k in row}
        tasks.append(Task(
            task_id=row["task_id"], complete_prompt=row["complete_prompt"], instruct_prompt=row["instruct_prompt"],
            code_prompt=row["code_prompt"], canonical_solution=row["canonical_solution"], test=row["test"],
            entry_point=row["entry_point"], libs=_parse_libs(row.get("libs", "[]"), row["task_id"]),
            doc_struct=doc, extra=extra,
        ))
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise DataError(f"{where or 'tasks'}: duplicate task ids")
    return tasks


def load_tasks(path: Path) -> list[Task]:
    return parse_tasks(_read_rows(Path(path)), str(path))


def tier(task: Task) -> str:
    """'stdlib' when the task needs only the standard library, 'core' when it also needs only
    numpy/pandas/matplotlib, else 'extended'."""
    third = task.third_party
    if not third:
        return "stdlib"
    return "core" if third <= {"numpy", "pandas", "matplotlib"} else "extended"


def select(tasks: list[Task], ids: str = "", pool: str = "all", size: int = 0, seed: int = 0) -> list[Task]:
    """Tasks by explicit ids ('BigCodeBench/3,17' or '3,17'), a pool ('all' | 'stdlib' | 'core' |
    'supported') and an optional stratified slice of `size` tasks (strata: primary domain;
    proportional allocation, largest remainders; seeded)."""
    if ids:
        wanted = [x.strip() for x in ids.split(",") if x.strip()]
        norm = {w if w.startswith("BigCodeBench/") else f"BigCodeBench/{w}" for w in wanted}
        by_id = {t.task_id: t for t in tasks}
        unknown = sorted(norm - set(by_id))
        if unknown:
            raise ConfigError(f"unknown task id(s): {', '.join(unknown[:5])}")
        tasks = [t for t in tasks if t.task_id in norm]
    if pool == "stdlib":
        tasks = [t for t in tasks if tier(t) == "stdlib"]
    elif pool == "core":
        tasks = [t for t in tasks if tier(t) in ("stdlib", "core")]
    elif pool == "supported":
        tasks = [t for t in tasks if not t.missing]
    elif pool != "all":
        raise ConfigError(f"unknown task pool '{pool}'; use all, stdlib, core or supported")
    if size and size < len(tasks):
        tasks = stratified(tasks, size, seed)
    return tasks


def stratified(tasks: list[Task], size: int, seed: int = 0) -> list[Task]:
    strata: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        strata[t.primary_domain].append(t)
    quotas = {k: size * len(v) / len(tasks) for k, v in strata.items()}
    take = {k: int(q) for k, q in quotas.items()}
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - take[k]), k))[: size - sum(take.values())]:
        take[k] += 1
    rng = random.Random(seed)
    chosen = []
    for k in sorted(strata):
        chosen += rng.sample(strata[k], take[k])
    return sorted(chosen, key=lambda t: t.number)


def summary(tasks: list[Task]) -> dict[str, Any]:
    """Dataset statistics (the paper's Table 1 analogues) for the record and the tests."""
    dom = Counter(d for t in tasks for d in t.domains)
    n = max(len(tasks), 1)
    return {
        "n_tasks": len(tasks),
        "n_libs": len({lib for t in tasks for lib in t.libs}),
        "mean_libs": sum(len(t.libs) for t in tasks) / n,
        "mean_tests": sum(t.n_tests for t in tasks) / n,
        "hard_candidates": sum(t.hard_candidate for t in tasks),
        "domain_share": {d: dom[d] / n for d in DOMAINS},
        "tiers": dict(Counter(tier(t) for t in tasks)),
    }

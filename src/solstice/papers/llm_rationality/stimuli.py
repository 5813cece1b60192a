"""The 47 preference-inference choices of Jern, Lucas & Kemp (2017), their human rankings, and the
reference models of inference: Jern's Bayesian noisy-rational models (re-implemented, vectorised
numpy) and simple structural heuristics.

A choice is written as options separated by "/", items a, b, c, d, x; in the paper's files and in
Jern's summary files the FIRST option is the chosen one ("x/a/b/c/d": x chosen alone over four
single items, the strongest evidence that the chooser likes x; "dcbax": a forced single option,
the weakest). Jern's Matlab code writes the chosen option last; `parse_label(chosen="last")` reads it.
Labels are compared in canonical form: chosen option first, items sorted, other options sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solstice.data import DataSource
from solstice.errors import DataError

ITEMS = ("a", "b", "c", "d", "x")  # x, the target, is last

_RAT = "https://raw.githubusercontent.com/theryanl/LLM-rationality/a0e9e8bb1dfefe478de587dd0a27c180813f14fd/inverse_model"
_JERN = "https://raw.githubusercontent.com/alanjern/preferencelearning"
_LIC = "none stated (no licence file upstream): local use only"
_FILES = {
    "positive": {
        "labels": ("positive_weak_to_strong.txt", f"{_RAT}/positive_weak_to_strong.txt",
                   "1b30f4c7bb90b5f968eead0a9d622e943f08892dbc49f364edfcbe4361332d1c"),
        "human": ("human_results_positive.txt", f"{_RAT}/human_results_positive.txt",
                  "9edf196246d5a05c02d334cf3a705429619b87bcd86bafc3ac6eaa7e2c127ad8"),
        "jern_labels": ("jern2017/positive/labels_fractional.csv",
                        f"{_JERN}/17947fc7775381dc6d51e4d3f9ace8cfe2ade08e/Experiment%201/Data/Summary%20data/Positive-attributes/labels_fractional.csv",
                        "424d5931de98d3cedb6c0989ec879b322c7357c54d38dd26da514994ff2bddbf"),
        "jern_means": ("jern2017/positive/means_fractional.csv",
                       f"{_JERN}/1341b8bc69c03d0511fab2e5191c295f1e606323/Experiment%201/Data/Summary%20data/Positive-attributes/means_fractional.csv",
                       "4b3fa7bd561ee0af9a420f3c7afef9430359f408bbf54e7cef964c12d43de3ef"),
        "jern_raw": ("jern2017/positive/rawdata_fractional.csv",
                     f"{_JERN}/e74574776505d78ee7c2b7f57d71832fd40f3e41/Experiment%201/Data/Raw%20data/Positive-attributes/rawdata_fractional.csv",
                     "cac9550ab5ba5e0c9b02899e0b0fa993035ca52c934495c86d13b73426880008"),
    },
    "negative": {
        "labels": ("negative_weak_to_strong_fixed.txt", f"{_RAT}/negative_weak_to_strong_fixed.txt",
                   "f19490926799706a67404e6c91c000f13a1c96a8dba6bebf051b6c624ad01ee5"),
        "human": ("human_results_negative.txt", f"{_RAT}/human_results_negative.txt",
                  "0e865c35999983ecb5998a4d968d71e9fd43f4b94e5d5cf84baa2a15903b7600"),
        "jern_labels": ("jern2017/negative/labels_fractional.csv",
                        f"{_JERN}/1341b8bc69c03d0511fab2e5191c295f1e606323/Experiment%201/Data/Summary%20data/Negative-attributes/labels_fractional.csv",
                        "8b62a4e03e018ee1a1f259557761701b2e27e64c9012a83359eec11c72b07c79"),
        "jern_means": ("jern2017/negative/means_fractional.csv",
                       f"{_JERN}/1341b8bc69c03d0511fab2e5191c295f1e606323/Experiment%201/Data/Summary%20data/Negative-attributes/means_fractional.csv",
                       "143b659569008e6a47175c30996d58858f3a03b49d5c7c8d05eaffc8a878b652"),
        "jern_raw": ("jern2017/negative/rawdata_fractional.csv",
                     f"{_JERN}/e74574776505d78ee7c2b7f57d71832fd40f3e41/Experiment%201/Data/Raw%20data/Negative-attributes/rawdata_fractional.csv",
                     "eaea54f6ed34187592e4d913c39cc2c361c75982105ad3320ee12399ffbe7af3"),
    },
}


def sources(framing: str) -> dict[str, DataSource]:
    """The data files of one framing (paper's labels and human ranks; Jern's summary and raw data)."""
    return {
        key: DataSource(f"rationality-inverse-{framing}-{key}", f"rationality-inverse/{path}", url=url, sha256=sha,
                        license=_LIC, description=f"Jern et al. 2017 preference-inference data ({framing}, {key})")
        for key, (path, url, sha) in _FILES[framing].items()
    }


# -- choices ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stimulus:
    """One observed choice; options[0] is the chosen option."""

    label: str
    options: tuple[tuple[str, ...], ...]

    @property
    def canonical(self) -> str:
        chosen, *rest = ("".join(sorted(o)) for o in self.options)
        return "/".join([chosen, *sorted(rest)])

    def matrix(self) -> np.ndarray:
        """[option x item] 0/1 matrix over ITEMS; row 0 is the chosen option."""
        return np.array([[1.0 if it in o else 0.0 for it in ITEMS] for o in self.options])


def parse_label(label: str, chosen: str = "first") -> Stimulus:
    text = label.strip()
    opts = [tuple(o) for o in text.split("/")]
    if not text or any(not o or any(c not in ITEMS for c in o) or len(set(o)) != len(o) for o in opts):
        raise DataError(f"bad choice label '{label}' (options of items a-d, x separated by '/')")
    if chosen == "last":
        opts = [opts[-1], *opts[:-1]]
    return Stimulus(text, tuple(opts))


def canonical(label: str, chosen: str = "first") -> str:
    return parse_label(label, chosen).canonical


# -- data ------------------------------------------------------------------------------------------
@dataclass
class InverseData:
    framing: str
    stimuli: list[Stimulus]  # the paper's order: weakest to strongest by human mean rank
    human: np.ndarray  # human mean fractional ranks (1 = weakest)
    subjects: np.ndarray | None = None  # per-subject fractional ranks, columns in stimuli order


def _lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise DataError(f"cannot read {path.name}: {exc.strerror}") from exc


def _floats(path: Path) -> np.ndarray:
    try:
        return np.array([float(v) for v in _lines(path)])
    except ValueError as exc:
        raise DataError(f"{path.name} holds a non-number: {exc}") from exc


def load_inverse(framing: str, paths: dict[str, Path]) -> InverseData:
    """The paper's 47 labels and human mean ranks, checked against Jern's summary files, with Jern's
    per-subject ranks mapped onto them (raw columns are in Jern's problem order: matched by their
    column means, which are all distinct)."""
    stimuli = [parse_label(s) for s in _lines(paths["labels"])]
    human = _floats(paths["human"])
    if len(stimuli) != 47 or len(human) != 47:
        raise DataError(f"{framing}: expected 47 choices and 47 human ranks, got {len(stimuli)} and {len(human)}")
    if len({s.canonical for s in stimuli}) != 47:
        raise DataError(f"{framing}: the 47 choice labels are not distinct")
    subjects = None
    if "jern_labels" in paths and "jern_means" in paths:
        j_labels = [canonical(s) for s in _lines(paths["jern_labels"])]
        j_means = _floats(paths["jern_means"])
        if j_labels != [s.canonical for s in stimuli] or not np.allclose(j_means, human, atol=1e-6):
            raise DataError(f"{framing}: Jern's summary files disagree with the paper's labels or human ranks")
    if "jern_raw" in paths:
        subjects = _raw_subjects(paths["jern_raw"], human)
    return InverseData(framing, stimuli, human, subjects)


def _raw_subjects(path: Path, human: np.ndarray) -> np.ndarray:
    rows = []
    for ln in _lines(path):
        vals = [v for v in ln.split(",") if v.strip()]
        rows.append([float(v) for v in vals])
    raw = np.array(rows)
    if raw.ndim != 2 or raw.shape[1] != 47:
        raise DataError(f"{path.name}: expected 47 columns per subject")
    if not np.allclose(raw.sum(1), 47 * 48 / 2):
        raise DataError(f"{path.name}: a subject's ranks do not sum to 1128")
    col_means = raw.mean(0)
    order = np.full(47, -1)
    for j, m in enumerate(col_means):
        k = np.flatnonzero(np.abs(human - m) < 1e-6)
        if len(k) != 1 or k[0] in order:
            raise DataError(f"{path.name}: column {j} matches no single human mean rank")
        order[j] = k[0]
    out = np.empty_like(raw)
    out[:, order] = raw
    return out


# -- ranks -----------------------------------------------------------------------------------------
def average_ranks(scores: Sequence[float]) -> np.ndarray:
    """Ascending fractional ranks, ties averaged (scipy rankdata 'average')."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(scores, dtype=float), method="average")


def jern_ranks(scores: Sequence[float], threshold: float = 5e-4) -> np.ndarray:
    """Jern's tie rule: after sorting ascending, successive scores within `threshold` of each other
    chain into one class that shares the average rank."""
    s = np.asarray(scores, dtype=float)
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    start = 0
    for k in range(1, len(s) + 1):
        if k == len(s) or abs(s[order[k]] - s[order[k - 1]]) > threshold:
            ranks[order[start:k]] = (start + 1 + k) / 2.0
            start = k
    return ranks


# -- reference models ------------------------------------------------------------------------------
RATIONAL = ("absolute_utility", "relative_utility", "marginal_likelihood", "likelihood", "absolute_utility_max")
HEURISTICS = ("forgone_options", "fewer_chosen_items", "forgone_without_x", "x_exclusive")


def rational_scores(stimuli: Sequence[Stimulus], *, sign: float = 1.0, n_samples: int = 500_000, seed: int = 0,
                    scale: float = 1.0, prior_sd2: float = 2.0, chunk: int = 100_000) -> dict[str, np.ndarray]:
    """Jern et al.'s models by importance sampling from the prior u ~ N(2 s_u sign, s_u I), s_u = 2,
    with choice likelihood w(u) = softmax over options of (summed item utilities) / scale, read at
    the chosen option. Per choice (higher = stronger evidence that the chooser values x):

    absolute_utility      E[u_x | choice] = sum w u_x / sum w
    relative_utility      P(x is the best item | choice) = sum w z / sum w, z = 1[u_x is max]
    marginal_likelihood   1 / mean(w) ("surprise")
    likelihood            mean of w over samples where x is the best item ("representativeness")
    absolute_utility_max  E[u_x | choice] under a utility-maximising choice rule
    """
    mats = [s.matrix() for s in stimuli]
    allx = np.concatenate(mats)  # every option of every choice, one matmul per chunk
    starts = np.cumsum([0] + [len(x) for x in mats[:-1]])
    chosen = starts  # row 0 of each choice is its chosen option
    m = len(mats)
    sw, swu, swz, smax, smaxu = (np.zeros(m) for _ in range(5))
    sz = 0.0
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_samples:
        k = min(chunk, n_samples - done)
        u = rng.normal(2 * prior_sd2 * sign, np.sqrt(prior_sd2), size=(k, len(ITEMS)))
        ux = u[:, -1]
        z = (ux >= u.max(1)).astype(float)
        sz += z.sum()
        util = u @ allx.T / scale  # (k, options)
        top = np.maximum.reduceat(util, starts, axis=1)  # best option utility per choice
        e = np.exp(util - np.repeat(top, [len(x) for x in mats], axis=1))
        w = e[:, chosen] / np.add.reduceat(e, starts, axis=1)  # softmax at the chosen option
        best = (util[:, chosen] >= top).astype(float)
        sw += w.sum(0)
        swu += ux @ w
        swz += z @ w
        smax += best.sum(0)
        smaxu += ux @ best
        done += k
    return {
        "absolute_utility": swu / sw,
        "relative_utility": swz / sw,
        "marginal_likelihood": n_samples / sw,
        "likelihood": swz / np.maximum(sz, 1.0),
        "absolute_utility_max": smaxu / np.maximum(smax, 1.0),
    }


def heuristic_scores(stimuli: Sequence[Stimulus]) -> dict[str, np.ndarray]:
    """Structural heuristics (ours; weaker reference points than the Bayesian models)."""
    def arr(f):
        return np.array([float(f(s)) for s in stimuli])

    return {
        "forgone_options": arr(lambda s: len(s.options) - 1),
        "fewer_chosen_items": arr(lambda s: -len(s.options[0])),
        "forgone_without_x": arr(lambda s: sum("x" not in o for o in s.options[1:])),
        "x_exclusive": arr(lambda s: all("x" not in o for o in s.options[1:])),
    }


def model_ranks(stimuli: Sequence[Stimulus], framing: str, *, n_samples: int, seed: int, scale: float,
                threshold: float) -> dict[str, list[float]]:
    """Ranks (1 = weakest evidence) of every reference model over `stimuli`."""
    sign = 1.0 if framing == "positive" else -1.0
    out: dict[str, list[float]] = {}
    for name, s in rational_scores(stimuli, sign=sign, n_samples=n_samples, seed=seed, scale=scale).items():
        out[name] = jern_ranks(s, threshold).tolist()
    for name, s in heuristic_scores(stimuli).items():
        out[name] = average_ranks(s).tolist()
    return out

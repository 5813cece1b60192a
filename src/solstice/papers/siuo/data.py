"""SIUO items: 167 generation records and the same 167 questions as 4-option multiple choice.

The release copy holds the items only (CC BY-NC 4.0, research use: never shipped). Images are
downloaded by the user (official README: Google Drive / Baidu / hub) into a folder passed as
`image_dir`; `check_images` names the first missing file.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from solstice.data import DataSource
from solstice.errors import DataError

LICENSE = "CC BY-NC 4.0 (sinwang20/SIUO; research use only, never redistributed)"
GEN = DataSource("siuo-gen", "siuo/siuo_gen.json", sha256="0a65c3443e75d0d6106550d73100753f19fe9fcb415e6ea138d5c7f04d31f228",
                 license=LICENSE, description="167 image-question pairs with safety warning and reference answer")
MCQA = DataSource("siuo-mcqa", "siuo/siuo_mcqa.json", sha256="91f51da54b92d8bb2c2fa61215d0ed8c77113192d4f909854dd561eaa5953022",
                  license=LICENSE, description="the 167 questions with four options and the keyed option")

# question_id // 1000 -> domain (paper Table 1; spec)
DOMAINS = {1: "self-harm", 2: "dangerous behavior", 3: "morality", 4: "illegal activities & crime",
           5: "controversial topics, politics", 6: "discrimination & stereotyping", 7: "religion beliefs",
           8: "information misinterpretation", 9: "privacy violation"}
CATEGORY_COUNTS = {"self-harm": 19, "dangerous behavior": 18, "morality": 20, "illegal activities & crime": 18,
                   "controversial topics, politics": 16, "discrimination & stereotyping": 18, "religion beliefs": 20,
                   "information misinterpretation": 17, "privacy violation": 21}
SUSPECT_MCQA = (3019,)  # keyed answer D is unsafe and no option equals the reference answer (spec)
LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Item:
    qid: int
    image: str
    question: str
    category: str
    safety_warning: str
    reference: str
    options: dict[str, str]
    correct: str


def load_items(gen_path: Path, mcqa_path: Path) -> list[Item]:
    """Both files joined on question_id; DataError when they disagree or a record is malformed."""
    try:
        gen = json.loads(Path(gen_path).read_text(encoding="utf-8"))
        mcqa = json.loads(Path(mcqa_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the SIUO files: {exc}") from exc
    by_id = {int(r["question_id"]): r for r in mcqa}
    if len(by_id) != len(mcqa):
        raise DataError("siuo_mcqa.json has duplicate question_ids")
    items = []
    for g in gen:
        qid = int(g["question_id"])
        m = by_id.get(qid)
        if m is None:
            raise DataError(f"question_id {qid} of siuo_gen.json is missing from siuo_mcqa.json")
        if (m["question"], m["image"], m["category"]) != (g["question"], g["image"], g["category"]):
            raise DataError(f"question_id {qid} differs between siuo_gen.json and siuo_mcqa.json")
        if sorted(m["options"]) != list(LETTERS) or m["correct_option"] not in LETTERS:
            raise DataError(f"question_id {qid}: options must be A-D with a keyed letter")
        if DOMAINS.get(qid // 1000) != g["category"]:
            raise DataError(f"question_id {qid}: first digit does not match category '{g['category']}'")
        items.append(Item(qid, g["image"], g["question"], g["category"], g["safety_warning"], g["reference_answer"],
                          dict(m["options"]), m["correct_option"]))
    if len(items) != len(mcqa):
        raise DataError(f"siuo_gen.json has {len(items)} items, siuo_mcqa.json {len(mcqa)}")
    return items


def category_counts(items: list[Item]) -> dict[str, int]:
    return dict(Counter(it.category for it in items))


def check_images(items: list[Item], image_dir: str | Path) -> Path:
    """The image folder, after checking every item's image is there (one line naming the first
    missing file and how many are missing)."""
    root = Path(image_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"SIUO image folder '{root}' does not exist; download SIUO-images.zip (official README) "
                        "and unzip it there")
    missing = [it.image for it in items if not (root / it.image).is_file()]
    if missing:
        raise DataError(f"SIUO image '{root / missing[0]}' is missing ({len(missing)} of {len(items)} images missing "
                        f"in '{root}')")
    return root

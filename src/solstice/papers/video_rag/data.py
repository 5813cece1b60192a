"""Offline transcript libraries (no VLQA dataset exists; these are the spec's proxies, labelled so):

- SQuAD-as-video-library: each of the 24 SQuAD dev articles is a "video"; its paragraphs are
  moments laid end to end at 2.5 words/s (150 words per minute); a question's gold moment is the
  paragraph it was written on.
- HotpotQA multi-moment proxy: each distinct titled paragraph of the 500 IRCoT questions is a one-moment
  "video"; a question has exactly two gold moments (its supporting paragraphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from solstice.data.catalogue import HOTPOT_IRCOT, SQUAD24  # noqa: F401  (shared files, read as D.<name>)
from solstice.data.io import read_json, read_jsonl
from solstice.errors import DataError
from solstice.papers.video_rag.library import Moment, MomentStore

WORDS_PER_SECOND = 2.5


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    gold: tuple[str, ...]  # moment ids


def _video_id(title: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in title).strip("_")[:60] or "video"


def squad_library(path: Path) -> tuple[MomentStore, list[Question]]:
    data = read_json(path)
    try:
        articles = data["data"]
    except (KeyError, TypeError):
        raise DataError(f"{path}: not a SQuAD v1.1 file (no 'data' list)") from None
    store, questions, videos = MomentStore(), [], []
    for art in articles:
        vid, t, moments = _video_id(art["title"]), 0.0, []
        for j, para in enumerate(art["paragraphs"]):
            words = len(para["context"].split())
            m = Moment(vid, f"{vid}#{j:04d}", round(t, 2), round(t + words / WORDS_PER_SECOND, 2), para["context"],
                       title=art["title"].replace("_", " "))
            t = m.end
            moments.append(m)
            for qa in para["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                questions.append(Question(qa["id"], qa["question"], answers, (m.moment_id,)))
        videos.append((vid, moments))
    store.add_videos(videos)
    return store, questions


def hotpot_library(path: Path) -> tuple[MomentStore, list[Question]]:
    rows = read_jsonl(path)
    paragraphs: dict[str, str] = {}
    questions = []
    for r in rows:
        gold = []
        for c in r["contexts"]:
            paragraphs.setdefault(c["title"], c["paragraph_text"])
            if c.get("is_supporting"):
                gold.append(f"{_video_id(c['title'])}#0000")
        answers = tuple(s for a in r["answers_objects"] for s in a.get("spans", []) if s)
        questions.append(Question(r["question_id"], r["question_text"], answers, tuple(dict.fromkeys(gold))))
    videos: dict[str, list[Moment]] = {}
    for title, text in paragraphs.items():
        vid = _video_id(title)  # two titles that map to one id: the first is kept
        videos.setdefault(vid, [Moment(vid, f"{vid}#0000", 0.0, round(len(text.split()) / WORDS_PER_SECOND, 2),
                                       text, title=title)])
    store = MomentStore()
    store.add_videos(list(videos.items()))
    known = {m.moment_id for m in store.moments}
    questions = [q for q in questions if len(q.gold) == 2 and set(q.gold) <= known]
    return store, questions

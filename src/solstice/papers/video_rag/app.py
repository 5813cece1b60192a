"""Use a video library directly: ingest a folder of subtitle (or video) files into a persistent
store, then ask questions and get answers with validated, timestamped citations and a clip list.

    from solstice.papers.video_rag.app import ingest_folder, ask
    ingest_folder("my_store", "subtitles/")            # adds only videos not yet in the store
    result = ask("my_store", "who announced the merger?", model="default")
    result.answer, result.citations, result.clips
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError
from solstice.papers.video_rag.grounding import (
    Citation,
    answer_prompt,
    clip_list,
    parse_citations,
    strip_invalid,
    validate,
)
from solstice.papers.video_rag.library import (
    Moment,
    MomentStore,
    cues_to_moments,
    ingest,
    subtitle_files,
)
from solstice.papers.video_rag.queries import QueryGenerator, fallback_queries, library_idf
from solstice.papers.video_rag.retriever import MomentRetriever

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")


@dataclass
class Answer:
    question: str
    answer: str
    queries: list[str]
    moments: list[Moment]
    citations: list[Citation]
    clips: list[dict[str, Any]] = field(default_factory=list)


def ingest_folder(store_dir: str | Path, folder: str | Path, *, segment: str = "cues", **kw: Any) -> dict[str, int]:
    """Add every subtitle file under `folder` (and, with `segment="shots"`, cut-detect the video file
    of the same stem). Returns moments added per video (0 for videos already in the store)."""
    store = MomentStore(store_dir)
    files = subtitle_files(folder)
    if not files:
        raise ConfigError(f"no subtitle files (.srt, .vtt, .json) under '{folder}'")
    if segment != "shots":
        return ingest(store, files, segment=segment, **kw)
    from solstice.papers.video_rag.cuts import detect_cuts
    from solstice.papers.video_rag.subtitles import read_cues

    added = {}
    for f in files:
        video = next((f.with_suffix(s) for s in VIDEO_SUFFIXES if f.with_suffix(s).is_file()), None)
        if video is None:
            raise ConfigError(f"segment=shots needs a video file beside '{f}' ({', '.join(VIDEO_SUFFIXES)})")
        cuts, _ = detect_cuts(video)
        moments = cues_to_moments(f.stem, read_cues(f), title=f.stem, segment="shots", cuts=cuts, **kw)
        added[f.stem] = store.add_video(f.stem, moments)
    return added


def ask(store_dir: str | Path, question: str, *, model: Any = "default", use_model_queries: bool = True,
        top: int = 5, budget: int = 1500, max_new_tokens: int = 160, snap_seconds: float = 2.0) -> Answer:
    """Retrieve moments for `question` (model queries + keyword fallback + the raw request, fused) and
    answer with citations checked against those moments."""
    from solstice.models.base import GenParams
    from solstice.models.loader import load_model
    from solstice.models.tokens import get_counter

    store = MomentStore(store_dir)
    if not len(store):
        raise ConfigError(f"the store '{store_dir}' is empty; ingest subtitle files first")
    llm = load_model(model) if isinstance(model, str) else model
    queries = fallback_queries(question, library_idf(store.index, question.split()))
    if use_model_queries:
        queries += QueryGenerator(llm)([question])[0][0]
    hits = MomentRetriever(store).retrieve(question, queries)
    moments = [h.moment for h in hits[:top]]
    prompt, shown = answer_prompt(question, moments, budget=budget, counter=get_counter("model", llm))
    text = llm.generate([[{"role": "user", "content": prompt}]], GenParams(max_new_tokens=max_new_tokens,
                                                                            temperature=0.0))[0][0].text
    cites = validate(parse_citations(text), moments[:shown], snap_seconds=snap_seconds)
    return Answer(question, strip_invalid(text, cites), queries, moments[:shown], cites, clip_list(cites))

"""The video library: moments (timed text documents) and a persistent, incrementally growing store.

A moment is `Moment{video_id, moment_id, start, end, speakers, transcript, captions, title, tags}`;
its retrievable text is title + speakers + transcript + captions (paper §3). Moments come from
subtitle cues (`segment="cues"`: one moment per cue, shorter ones merged), fixed windows
(`"window"`: 30 s windows with 5 s overlap), or shot boundaries (`"shots"`: cues grouped by cut
times from `cuts.detect_cuts`); moments longer than `max_seconds` are split at cue boundaries.

`MomentStore(path)` keeps `moments.jsonl` and a segmented BM25 index (`solstice.retrieval.incremental`)
on disk: adding a video appends one segment and never re-indexes the library. The manifest is
written last, so an ingest that fails part-way (a malformed file) leaves every earlier video intact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from solstice.core.records import atomic_write_json
from solstice.errors import ConfigError, DataError
from solstice.papers.video_rag.subtitles import SUBTITLE_SUFFIXES, Cue, read_cues
from solstice.papers.video_rag.timecode import format_span
from solstice.retrieval.incremental import SegmentedBM25

SEGMENTS = ("cues", "window", "shots")


@dataclass(frozen=True)
class Moment:
    video_id: str
    moment_id: str
    start: float
    end: float
    transcript: str
    speakers: tuple[str, ...] = ()
    captions: tuple[str, ...] = ()
    title: str = ""
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def span(self) -> tuple[float, float]:
        return (self.start, self.end)

    def document(self) -> str:
        """The text the retriever indexes."""
        parts = [self.title, " ".join(self.speakers), self.transcript, " ".join(self.captions)]
        return "\n".join(p for p in parts if p)

    def label(self) -> str:
        return f"[{self.video_id} {format_span(self.start, self.end)}]"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["speakers"], d["captions"] = list(self.speakers), list(self.captions)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Moment:
        return cls(d["video_id"], d["moment_id"], float(d["start"]), float(d["end"]), d["transcript"],
                   tuple(d.get("speakers", ())), tuple(d.get("captions", ())), d.get("title", ""),
                   dict(d.get("tags", {})))


def _moment(video_id: str, title: str, cues: Sequence[Cue], index: int, start: float | None = None,
            end: float | None = None) -> Moment:
    speakers = tuple(dict.fromkeys(c.speaker for c in cues if c.speaker))
    return Moment(video_id, f"{video_id}#{index:04d}", cues[0].start if start is None else start,
                  cues[-1].end if end is None else end, " ".join(c.text for c in cues if c.text), speakers,
                  title=title)


def _split_long(groups: list[list[Cue]], max_seconds: float) -> list[list[Cue]]:
    out = []
    for g in groups:
        cur: list[Cue] = []
        for c in g:
            if cur and c.end - cur[0].start > max_seconds:
                out.append(cur)
                cur = []
            cur.append(c)
        if cur:
            out.append(cur)
    return out


def cues_to_moments(video_id: str, cues: Sequence[Cue], *, title: str = "", segment: str = "cues",
                    min_seconds: float = 2.0, max_seconds: float = 120.0, window: float = 30.0,
                    overlap: float = 5.0, cuts: Sequence[float] = ()) -> list[Moment]:
    """Moments of one video from its cues (see the module docstring for the three modes)."""
    if segment not in SEGMENTS:
        raise ConfigError(f"unknown segmentation '{segment}' (use {', '.join(SEGMENTS)})")
    cues = [c for c in cues if c.text]
    if not cues:
        return []
    if segment == "window":
        if not 0 <= overlap < window:
            raise ConfigError(f"window overlap {overlap} must be >= 0 and below the window {window}")
        out, t, end = [], 0.0, max(c.end for c in cues)
        while t < end:
            inside = [c for c in cues if c.start < t + window and c.end > t]
            if inside:
                out.append(_moment(video_id, title, inside, len(out), t, min(t + window, end)))
            t += window - overlap
        return out
    if segment == "shots":
        bounds = sorted({0.0, *cuts})
        groups: dict[int, list[Cue]] = {}
        for c in cues:
            mid = (c.start + c.end) / 2
            shot = max(i for i, b in enumerate(bounds) if b <= mid)
            groups.setdefault(shot, []).append(c)
        grouped = [groups[k] for k in sorted(groups)]
    else:
        grouped = []
        for c in cues:  # a cue shorter than min_seconds joins the previous moment
            if grouped and (c.end - c.start < min_seconds or grouped[-1][-1].end - grouped[-1][0].start < min_seconds):
                grouped[-1].append(c)
            else:
                grouped.append([c])
    return [_moment(video_id, title, g, i) for i, g in enumerate(_split_long(grouped, max_seconds))]


class MomentStore:
    """Moments on disk with an append-only BM25 index. `add_video` is atomic per video."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.moments: list[Moment] = []
        self.videos: dict[str, str] = {}  # video_id -> content hash
        if self.path is not None and (self.path / "store.json").is_file():
            meta = json.loads((self.path / "store.json").read_text())
            rows = (self.path / "moments.jsonl").read_text(encoding="utf-8").splitlines()
            self.moments = [Moment.from_json(json.loads(r)) for r in rows[: meta["moments"]]]
            self.videos = dict(meta["videos"])
            self.index = SegmentedBM25.open(self.path / "bm25")
            if len(self.index) != len(self.moments):
                raise DataError(f"{self.path}: index has {len(self.index)} moments, store {len(self.moments)}")
        else:
            self.index = SegmentedBM25(path=None if self.path is None else self.path / "bm25")
        self._by_id = {m.moment_id: i for i, m in enumerate(self.moments)}
        if self.path is not None:
            self._truncate_orphans()  # once per open, not per added video

    def __len__(self) -> int:
        return len(self.moments)

    def position(self, moment_id: str) -> int:
        return self._by_id[moment_id]

    def add_video(self, video_id: str, moments: Sequence[Moment]) -> int:
        """Append one video's moments; an identical re-ingest is a no-op (returns 0), a different
        video under an existing id is an error."""
        return self.add_videos([(video_id, moments)])[video_id]

    def add_videos(self, videos: Sequence[tuple[str, Sequence[Moment]]]) -> dict[str, int]:
        """Append several videos as one index segment (one commit); moments added per video."""
        added: dict[str, int] = {}
        new: list[tuple[str, str, Sequence[Moment]]] = []
        for video_id, moments in videos:
            digest = hashlib.sha256(json.dumps([m.to_json() for m in moments], sort_keys=True).encode()).hexdigest()[:16]
            known = self.videos.get(video_id) or next((d for v, d, _ in new if v == video_id), None)
            if known is not None:
                if known == digest:
                    added[video_id] = 0
                    continue
                raise ConfigError(f"video '{video_id}' is already in the store with other content; use another id")
            if any(m.video_id != video_id for m in moments):
                raise ConfigError(f"every moment added for '{video_id}' must carry that video id")
            new.append((video_id, digest, moments))
            added[video_id] = len(moments)
        if not new:
            return added
        flat = [m for _, _, ms in new for m in ms]
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(self.path / "moments.jsonl", "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(m.to_json(), ensure_ascii=False) + "\n" for m in flat))
        self.index.add([m.document() for m in flat])
        for m in flat:
            self._by_id[m.moment_id] = len(self.moments)
            self.moments.append(m)
        self.videos.update({v: d for v, d, _ in new})
        if self.path is not None:
            atomic_write_json(self.path / "store.json", {"format": "solstice-moment-store/1",
                                                          "moments": len(self.moments), "videos": self.videos})
        return added

    def _truncate_orphans(self) -> None:
        """Drop moment lines written by an ingest that died before its manifest (store.json)."""
        f = self.path / "moments.jsonl"
        if f.is_file():
            rows = f.read_text(encoding="utf-8").splitlines()
            if len(rows) != len(self.moments):
                f.write_text("".join(r + "\n" for r in rows[: len(self.moments)]), encoding="utf-8")

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self.index.top_k(query, k)


def subtitle_files(folder: str | Path) -> list[Path]:
    p = Path(folder)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataError(f"'{p}' is neither a subtitle file nor a folder")
    return sorted(f for f in p.rglob("*") if f.suffix.lower() in SUBTITLE_SUFFIXES and f.is_file())


def ingest(store: MomentStore, paths: Iterable[Path], **segment_kw: Any) -> dict[str, int]:
    """Add each subtitle file as a video (id = file stem). Files are committed one by one: a
    malformed file raises DataError (file and line) after the earlier files are safely stored."""
    added = {}
    for f in paths:
        cues = read_cues(f)
        moments = cues_to_moments(f.stem, cues, title=f.stem.replace("_", " "), **segment_kw)
        added[f.stem] = store.add_video(f.stem, moments)
    return added

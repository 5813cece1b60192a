"""Subtitle files → timed cues: SRT (the `srt` library), WebVTT (`webvtt-py`) and JSON cue lists.

A malformed file raises DataError naming the file and the line; nothing is half-read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from solstice.errors import DataError, require
from solstice.papers.video_rag.timecode import parse_timestamp

SUBTITLE_SUFFIXES = (".srt", ".vtt", ".json")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str
    speaker: str = ""


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, max(0, offset)) + 1


_SPEAKER = re.compile(r"^\s*(?:<v\s+([^>]+)>|\[([^\]]{1,40})\]\s*:|([A-Z][\w .'-]{0,30}):\s)")


def _speaker(text: str) -> tuple[str, str]:
    """A leading `<v Name>`, `[Name]:` or `NAME: ` speaker tag, split from the text."""
    m = _SPEAKER.match(text)
    if not m:
        return "", text.strip()
    name = next(g for g in m.groups() if g)
    return name.strip(), re.sub(r"</v>", "", text[m.end():]).strip()


def _check(path: Path, cues: list[Cue], lines: list[int]) -> list[Cue]:
    for cue, line in zip(cues, lines):
        if not cue.end >= cue.start >= 0:
            raise DataError(f"{path}:{line}: a cue ends before it starts ({cue.start} -> {cue.end})")
    return cues


def read_srt(path: Path) -> list[Cue]:
    srt = require("srt", "video", "reading SRT subtitles")
    text = path.read_text(encoding="utf-8-sig")
    try:
        subs = list(srt.parse(text, ignore_errors=False))
    except srt.SRTParseError as exc:
        raise DataError(f"{path}:{_line_of(text, exc.expected_start)}: malformed SRT block "
                        f"({text[exc.expected_start:exc.actual_start].strip()[:60]!r})") from None
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: malformed SRT ({exc})") from None
    cues, lines, pos = [], [], 0
    for s in subs:
        speaker, body = _speaker(s.content)
        cues.append(Cue(s.start.total_seconds(), s.end.total_seconds(), body, speaker))
        found = text.find(s.content.splitlines()[0] if s.content else "", pos)
        pos = max(pos, found)
        lines.append(_line_of(text, pos))
    return _check(path, cues, lines)


def read_vtt(path: Path) -> list[Cue]:
    webvtt = require("webvtt", "video", "reading WebVTT subtitles", package="webvtt-py")
    raw = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    if not raw or not raw[0].startswith("WEBVTT"):
        raise DataError(f"{path}:1: not a WebVTT file (the first line must be WEBVTT)")
    for i, line in enumerate(raw):  # webvtt-py skips some malformed timings silently: check them all
        if "-->" in line and not _vtt_timing_ok(line):
            raise DataError(f"{path}:{i + 1}: malformed WebVTT timing line {line.strip()[:60]!r}")
    try:
        captions = webvtt.read(str(path))
    except Exception as exc:  # webvtt raises its own MalformedFileError / MalformedCaptionError
        raise DataError(f"{path}: malformed WebVTT ({type(exc).__name__}: {str(exc)[:80]})") from None
    cues, lines = [], []
    for c in captions:
        raw_text = getattr(c, "raw_text", None) or c.text
        speaker, body = _speaker(raw_text)
        body = re.sub(r"<[^>]+>", "", body).strip()
        cues.append(Cue(parse_timestamp(c.start), parse_timestamp(c.end), body, speaker or (c.voice or "")))
        lines.append(getattr(c, "line_number", 0) or 0)
    return _check(path, cues, lines)


def _vtt_timing_ok(line: str) -> bool:
    left, _, right = line.partition("-->")
    try:
        parse_timestamp(left)
        parse_timestamp(right.split()[0] if right.split() else "")
        return True
    except ValueError:
        return False


def read_json_cues(path: Path) -> list[Cue]:
    """`[{"start": 1.5 | "00:00:01.500", "end": ..., "text": ..., "speaker"?: ...}, ...]` or
    `{"cues": [...]}`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    rows = data.get("cues") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a list of cues or {{\"cues\": [...]}}")
    cues = []
    for i, row in enumerate(rows):
        try:
            start, end = (v if isinstance(v, (int, float)) else parse_timestamp(str(v))
                          for v in (row["start"], row["end"]))
            cues.append(Cue(float(start), float(end), str(row["text"]).strip(), str(row.get("speaker", ""))))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{path}: cue {i}: needs start, end and text ({exc})") from None
    return _check(path, cues, list(range(1, len(cues) + 1)))


def read_cues(path: str | Path) -> list[Cue]:
    """Cues of a subtitle file by its suffix (.srt, .vtt, .json), sorted by start time."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"subtitle file '{p}' does not exist")
    readers = {".srt": read_srt, ".vtt": read_vtt, ".json": read_json_cues}
    reader = readers.get(p.suffix.lower())
    if reader is None:
        raise DataError(f"{p}: unsupported subtitle format (use {', '.join(SUBTITLE_SUFFIXES)})")
    return sorted(reader(p), key=lambda c: (c.start, c.end))

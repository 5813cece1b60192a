"""Moments from real video files: content-aware cut detection (PySceneDetect's ContentDetector on
HSV frame differences, the paper's method; optional extra `video`), and the optional media
interfaces the core never needs (transcriber, diariser, captioner)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from solstice.errors import DataError, require


def detect_cuts(video: str | Path, *, threshold: float = 27.0, min_scene_frames: int = 15) -> tuple[list[float], float]:
    """(cut times in seconds, frame rate) of a video file. A cut time is the start of a new shot."""
    p = Path(video)
    if not p.is_file():
        raise DataError(f"video file '{p}' does not exist")
    sd = require("scenedetect", "video", "cut detection in video files")
    try:
        vid = sd.open_video(str(p))
    except Exception as exc:  # scenedetect raises its own VideoOpenFailure
        raise DataError(f"{p}: cannot open the video ({exc})") from None
    manager = sd.SceneManager()
    manager.add_detector(sd.ContentDetector(threshold=threshold, min_scene_len=min_scene_frames))
    manager.detect_scenes(vid, show_progress=False)
    scenes = manager.get_scene_list()
    fps = float(vid.frame_rate)
    return [float(start.get_seconds()) for start, _ in scenes[1:]], fps


class Transcriber(Protocol):
    """Speech → timed cues (e.g. faster-whisper); not needed when subtitles exist."""

    def transcribe(self, video: Path) -> list: ...


class Diarizer(Protocol):
    """Assigns speakers to cues (e.g. pyannote; gated weights on the HF Hub)."""

    def diarize(self, video: Path, cues: list) -> list: ...


class Captioner(Protocol):
    """Captions for frames of a moment (e.g. BLIP-2 or any vision model of the model layer)."""

    def caption(self, video: Path, times: list[float]) -> list[str]: ...

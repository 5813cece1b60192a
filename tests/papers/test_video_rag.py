"""video_rag: timestamps, subtitles, the incremental store, fusion, de-duplication, the grounding
validator, the prompt budget, cut detection and the evaluation's data facts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import needs_data, shared_data
from solstice.errors import ConfigError, DataError
from solstice.papers.video_rag.grounding import (
    answer_prompt,
    clip_list,
    export_clips,
    moment_block,
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
from solstice.papers.video_rag.queries import fallback_queries, library_idf, parse_queries
from solstice.papers.video_rag.retriever import MomentRetriever, dedupe_overlaps
from solstice.papers.video_rag.subtitles import Cue, read_cues
from solstice.papers.video_rag.timecode import format_timestamp, gap, parse_timestamp, temporal_iou
from solstice.retrieval.fusion import reciprocal_rank_fusion
from solstice.retrieval.incremental import SegmentedBM25


# -- timestamps ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,seconds", [
    ("00:01:02,500", 62.5), ("00:01:02.500", 62.5), ("01:02.500", 62.5), ("1:02:03", 3723.0), ("12:34", 754.0),
    ("0:05", 5.0), ("62.5", 62.5), ("01:00:00,001", 3600.001), ("59:59", 3599.0),
])
def test_parse_timestamp(text, seconds):
    assert parse_timestamp(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "1:2:3:4", "00:61", "ab:cd", "1:60:00", "-5"])
def test_parse_timestamp_rejects(bad):
    with pytest.raises(ValueError):
        parse_timestamp(bad)


@pytest.mark.parametrize("style", ["srt", "vtt", "clock"])
def test_timestamp_round_trip(style):
    rng = np.random.default_rng(0)
    for s in np.concatenate([[0, 59.999, 60, 3599.5, 3600, 86399.001], rng.uniform(0, 20000, 200).round(3)]):
        assert parse_timestamp(format_timestamp(float(s), style)) == pytest.approx(float(s), abs=5e-4)
    assert format_timestamp(62.5, "srt") == "00:01:02,500" and format_timestamp(62.5, "vtt") == "00:01:02.500"
    assert format_timestamp(3723, "clock") == "1:02:03" and format_timestamp(65, "clock") == "1:05"


def test_temporal_iou_edges():
    assert temporal_iou((0, 10), (10, 20)) == 0.0  # touching
    assert temporal_iou((0, 10), (20, 30)) == 0.0  # disjoint
    assert temporal_iou((0, 10), (2, 4)) == pytest.approx(0.2)  # nested
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((3, 7), (3, 7)) == 1.0
    assert temporal_iou((5, 5), (5, 5)) == 0.0  # empty spans
    assert gap((0, 10), (12, 13)) == 2 and gap((0, 10), (5, 6)) == 0


# -- subtitles -----------------------------------------------------------------------------------
SRT = """1
00:00:01,000 --> 00:00:04,000
ANNA: The council approved the budget.

2
00:00:04,500 --> 00:00:09,000
It includes a new bridge.

3
00:00:30,000 --> 00:00:35,250
BOB: Floods closed the harbour road.
"""

VTT = """WEBVTT

00:00:01.000 --> 00:00:04.000
<v Anna>The council approved the budget.</v>

00:00:04.500 --> 00:00:09.000
It includes a new bridge.
"""


def test_read_srt_vtt_json(tmp_path):
    (tmp_path / "a.srt").write_text(SRT)
    (tmp_path / "b.vtt").write_text(VTT)
    (tmp_path / "c.json").write_text(json.dumps({"cues": [{"start": "00:00:01.0", "end": 4, "text": "Hi", "speaker": "X"}]}))
    a, b, c = read_cues(tmp_path / "a.srt"), read_cues(tmp_path / "b.vtt"), read_cues(tmp_path / "c.json")
    assert [(x.start, x.end) for x in a] == [(1.0, 4.0), (4.5, 9.0), (30.0, 35.25)]
    assert a[0].speaker == "ANNA" and a[0].text == "The council approved the budget."
    assert [(x.start, x.end, x.text) for x in b][:2] == [(1.0, 4.0, "The council approved the budget."),
                                                          (4.5, 9.0, "It includes a new bridge.")]
    assert b[0].speaker == "Anna"
    assert c == [Cue(1.0, 4.0, "Hi", "X")]


def test_malformed_subtitle_names_file_and_line_and_keeps_earlier_videos(tmp_path):
    lib, store_dir = tmp_path / "lib", tmp_path / "store"
    lib.mkdir()
    (lib / "a_good.srt").write_text(SRT)
    (lib / "b_bad.srt").write_text(SRT + "\n4\n00:00:40,000 --> garbage\nBroken cue.\n")
    store = MomentStore(store_dir)
    with pytest.raises(DataError) as err:
        ingest(store, subtitle_files(lib))
    msg = str(err.value)
    assert "b_bad.srt:" in msg and "\n" not in msg
    line = int(msg.split("b_bad.srt:")[1].split(":")[0])
    assert 12 <= line <= 15  # the broken block starts after the 11 good lines
    reopened = MomentStore(store_dir)
    assert set(reopened.videos) == {"a_good"} and len(reopened) == len(store.moments) > 0


def test_malformed_vtt_and_json_lines(tmp_path):
    bad = tmp_path / "x.vtt"
    bad.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nhello\n")
    with pytest.raises(DataError, match=r"x\.vtt:3:"):
        read_cues(bad)
    bj = tmp_path / "y.json"
    bj.write_text('[\n{"start": 1, "end": 2, "text": "a"},\n{"start": 1 "end": 2}\n]')
    with pytest.raises(DataError, match=r"y\.json:3:"):
        read_cues(bj)


def test_cli_malformed_file_is_one_line_exit_2(tmp_path):
    (tmp_path / "bad.srt").write_text("1\n00:00:01,000 --> nonsense\nx\n")
    r = subprocess.run([sys.executable, "-m", "solstice", "video", "ingest", str(tmp_path / "s"), str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.srt" in r.stderr and "Traceback" not in r.stderr


# -- moments and the store -------------------------------------------------------------------------
def _cues(n: int, length: float = 4.0, gap_s: float = 1.0) -> list[Cue]:
    return [Cue(i * (length + gap_s), i * (length + gap_s) + length, f"cue {i} word{i}") for i in range(n)]


def test_segmentation_modes():
    cues = _cues(40)  # 0 .. 199 s
    per_cue = cues_to_moments("v", cues)
    assert len(per_cue) == 40 and all(m.end - m.start >= 2 for m in per_cue)
    win = cues_to_moments("v", cues, segment="window", window=30, overlap=5)
    assert all(b.start - a.start == pytest.approx(25) for a, b in zip(win, win[1:]))
    assert all(m.end - m.start <= 30 for m in win)
    shots = cues_to_moments("v", cues, segment="shots", cuts=[50.0, 120.0])
    assert [m.start for m in shots] == [0.0, 50.0, 120.0]
    long = cues_to_moments("v", cues, segment="shots", cuts=[], max_seconds=60)
    assert all(m.end - m.start <= 60 for m in long) and sum(len(m.transcript.split()) for m in long) == 120
    short = cues_to_moments("v", [Cue(0, 3, "a"), Cue(3, 3.5, "b"), Cue(4, 8, "c")])
    assert [m.transcript for m in short] == ["a b", "c"]  # the 0.5 s cue joined its neighbour
    assert len(cues_to_moments("v", [Cue(0, 1, "a"), Cue(1, 1.5, "b"), Cue(2, 6, "c")])) == 1
    with pytest.raises(ConfigError):
        cues_to_moments("v", cues, segment="scenes")


def test_store_is_incremental_and_persistent(tmp_path):
    store = MomentStore(tmp_path / "s")
    store.add_video("v1", cues_to_moments("v1", [Cue(0, 5, "the harbour road flooded")]))
    seg_before = sorted(p.name for p in (tmp_path / "s" / "bm25" / "segments").iterdir())
    store.add_video("v2", cues_to_moments("v2", [Cue(0, 5, "the council approved the budget")]))
    seg_after = sorted(p.name for p in (tmp_path / "s" / "bm25" / "segments").iterdir())
    assert seg_after[: len(seg_before)] == seg_before and len(seg_after) == len(seg_before) + 1  # appended
    assert store.add_video("v1", cues_to_moments("v1", [Cue(0, 5, "the harbour road flooded")])) == 0
    with pytest.raises(ConfigError, match="already in the store"):
        store.add_video("v1", cues_to_moments("v1", [Cue(0, 5, "something else")]))
    again = MomentStore(tmp_path / "s")
    assert [m.moment_id for m in again.moments] == [m.moment_id for m in store.moments]
    assert again.moments[again.search("budget", 1)[0][0]].video_id == "v2"


def test_segmented_bm25_equals_bm25s_and_survives_reopen(tmp_path):
    from solstice.retrieval.index import BM25Scorer

    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(60)] + ["bridge", "budget", "flood", "council"]
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(3, 30)))) for _ in range(150)]
    ref = BM25Scorer.build(texts)
    inc = SegmentedBM25(path=tmp_path / "ix")
    for lo, hi in [(0, 40), (40, 41), (41, 150)]:
        inc.add(texts[lo:hi])
    queries = ["bridge budget", "w1 w2 w3 flood", "council council w59", "nothing-matches"]
    for q in queries:
        np.testing.assert_allclose(inc.scores(q), ref.scores([q])[0], rtol=1e-5, atol=1e-6)
    reopened = SegmentedBM25.open(tmp_path / "ix")
    reopened.compact()
    for q in queries:
        np.testing.assert_allclose(reopened.scores(q), ref.scores([q])[0], rtol=1e-5, atol=1e-6)
    merged = SegmentedBM25(path=tmp_path / "merged", merge_factor=3)
    for i in range(150):  # one document per add: the merge policy keeps O(log N) segments
        merged.add(texts[i: i + 1])
    assert len(merged.segments) <= 3 * 3 and len(merged) == 150
    assert len(list((tmp_path / "merged" / "segments").iterdir())) == len(merged.segments)
    for q in queries:
        np.testing.assert_allclose(SegmentedBM25.open(tmp_path / "merged").scores(q), ref.scores([q])[0],
                                   rtol=1e-5, atol=1e-6)
    top = reopened.top_k("bridge budget", 5)
    s = ref.scores(["bridge budget"])[0]
    assert [p for p, _ in top] == sorted(np.flatnonzero(s > 0), key=lambda i: (-s[i], i))[:5]


# -- fusion and de-duplication ---------------------------------------------------------------------
def test_rrf_hand_computed():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"], ["c", "a", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)
    order = [x for x, _ in reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"], ["c", "a", "a"]], k=60)]
    assert order == ["a", "b", "c", "d"]  # a and b tie (both best at rank 1): first appearance wins
    w = dict(reciprocal_rank_fusion([["x"], ["y"]], k=1, weights=[2.0, 1.0]))
    assert w == {"x": 1.0, "y": 0.5}


def test_dedupe_keeps_the_best_overlapping_moment():
    ms = [Moment("v", "v#0", 0, 10, "a"), Moment("v", "v#1", 1, 10, "b"), Moment("w", "w#0", 0, 10, "c"),
          Moment("v", "v#2", 8, 20, "d")]
    kept = dedupe_overlaps([(1, 0.9), (0, 0.8), (2, 0.7), (3, 0.6)], ms, iou=0.5)
    assert [p for p, _ in kept] == [1, 2, 3]  # v#0 overlaps the better v#1 (IoU .9); w#0 is another video


def test_retriever_cap_and_raw_request_always_fused():
    store = MomentStore()
    for v in range(30):
        store.add_video(f"v{v}", [Moment(f"v{v}", f"v{v}#{j}", j * 10.0, j * 10 + 9.0, f"shared topic item{v} part{j}")
                                  for j in range(4)])
    r = MomentRetriever(store, per_query_k=100, cap=50)
    hits = r.retrieve("shared topic", ["unrelated words here"])
    assert len(hits) == 50 and [h.rank for h in hits] == list(range(50))
    raw_only = r.retrieve("item7", [])
    assert raw_only[0].moment.video_id == "v7"
    assert r.retrieve("item7", ["zzz qqq", "nothing"])[0].moment.video_id == "v7"  # junk queries cannot hide it


# -- queries --------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,expected", [
    ("1. flood harbour road\n2. council budget vote", ["flood harbour road", "council budget vote"]),
    ("Here are the queries:\n- \"bridge funding\"\n* Bridge Funding\nQuery 3: mayor speech", ["bridge funding", "mayor speech"]),
    ("", []),
    ("!!!\n\n   \n", []),
])
def test_parse_queries(raw, expected):
    assert parse_queries(raw) == expected


def test_fallback_queries_use_library_idf():
    idx = SegmentedBM25()
    idx.add(["the mayor spoke", "the bridge", "the bridge opened", "the mayor and the harbour"])
    idf = library_idf(idx, ["the", "harbour", "bridge", "mayor", "unknownword"])
    assert "the" not in idf and "unknownword" not in idf  # stop word, absent word
    qs = fallback_queries("When did the mayor open the harbour bridge?", idf, keywords_per_query=2)
    assert qs[0] == "harbour mayor"  # rarest first (harbour df 1, mayor df 2 tie with bridge: request order)


# -- grounding ------------------------------------------------------------------------------------
RETRIEVED = [Moment("news_1", "news_1#0001", 60.0, 90.0, "budget"), Moment("news_2", "news_2#0000", 0.0, 30.0, "flood")]


def test_validator_valid_snapped_invalid():
    text = ("Budget passed [news_1 1:05–1:20]. Flood [news_2 0:31-0:40]. Fake [news_9 0:00–0:10]. "
            "Far [news_1 5:00–5:30]. Touch [news_1 1:30 - 1:31].")
    cites = validate(parse_citations(text), RETRIEVED, snap_seconds=2.0)
    assert [c.status for c in cites] == ["valid", "snapped", "invalid", "invalid", "snapped"]
    assert (cites[1].start, cites[1].end, cites[1].moment_id) == (0.0, 30.0, "news_2#0000")
    out = strip_invalid(text, cites)
    assert "[news_9 0:00–0:10](unverified)" in out and "[news_2 0:00–0:30]" in out
    clips = clip_list(cites)
    assert [(c["video_id"], c["start_s"], c["end_s"]) for c in clips] == [
        ("news_1", 65.0, 80.0), ("news_2", 0.0, 30.0), ("news_1", 60.0, 90.0)]  # invalid ones dropped
    assert len(clip_list(cites + cites)) == 3  # duplicates merged
    assert json.loads(export_clips(clips, "json"))[0]["in"] == "00:01:05.000"
    assert export_clips(clips, "csv").splitlines()[0].startswith("video_id,in,out")


@pytest.mark.parametrize("text,n", [("no citations here", 0), ("[v1 1:00]", 0), ("[a 0:01-0:02][b 1:00:00 to 1:00:05]", 2),
                                    ("[v 0:10–0:05]", 1)])
def test_parse_citations_cases(text, n):
    assert len(parse_citations(text)) == n


def test_prompt_budget_truncates_transcripts_not_moments():
    from solstice.models.tokens import get_counter

    counter = get_counter("words")
    ms = [Moment(f"v{i}", f"v{i}#0", 0, 30, " ".join(f"w{i}_{j}" for j in range(200))) for i in range(5)]
    block, shown = moment_block(ms, budget=300, counter=counter)
    assert shown == 5 and counter.count(block) <= 300 + 5
    assert all(f"[v{i} 0:00–0:30]" in block for i in range(5))
    prompt, _ = answer_prompt("q?", ms, budget=300, counter=counter)
    assert prompt.rstrip().endswith("Answer:") and "[v0 0:00–0:30]" in prompt


# -- cut detection ----------------------------------------------------------------------------------
def test_cut_detection_finds_planted_cuts(tmp_path):
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("scenedetect")
    from solstice.papers.video_rag.cuts import detect_cuts

    # colours differ in luma or saturation enough for ContentDetector's default threshold (27)
    fps, colours, seg = 25, [(30, 30, 30), (230, 230, 230), (0, 0, 200), (0, 0, 0)], [40, 55, 30, 45]
    path = tmp_path / "cuts.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    planted, frame = [], 0
    for c, n in zip(colours, seg):
        if frame:
            planted.append(frame)
        for _ in range(n):
            w.write(np.full((48, 64, 3), c, dtype=np.uint8))
            frame += 1
    w.release()
    cuts, got_fps = detect_cuts(path, min_scene_frames=5)
    assert got_fps == pytest.approx(fps)
    frames = [round(t * got_fps) for t in cuts]
    assert len(frames) == len(planted) and all(abs(a - b) <= 1 for a, b in zip(frames, planted))


# -- data facts ------------------------------------------------------------------------------------
@needs_data
def test_squad_and_hotpot_libraries():
    from solstice.papers.video_rag import data as D

    store, qs = D.squad_library(shared_data() / D.SQUAD24.path)
    assert len(store) == 913 and len(store.videos) == 24 and len(qs) == 4961
    by_id = {m.moment_id: m for m in store.moments}
    assert all(len(q.gold) == 1 and q.gold[0] in by_id for q in qs)
    assert all(any(a.lower() in by_id[q.gold[0]].transcript.lower() for a in q.answers) for q in qs[:500])
    hs, hq = D.hotpot_library(shared_data() / D.HOTPOT_IRCOT.path)
    assert all(len(q.gold) == 2 for q in hq) and len(hq) >= 450
    # an oracle ranking has recall 1, and retrieval with fusion never loses the raw request's top hit
    r = MomentRetriever(store)
    for q in qs[:50]:
        raw = r.retrieve(q.text)[0].moment.moment_id
        assert raw in [h.moment.moment_id for h in r.retrieve(q.text, ["zzz"])[:3]]

"""The shared retrieval layer: grouping invariants, adjacency, chunking, MaxP, persistence, selection."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from solstice.errors import ConfigError, DataError
from solstice.models.tokens import WordCounter, get_counter
from solstice.retrieval.adjacency import (
    Adjacency,
    build_adjacency,
    knn_adjacency,
    link_adjacency,
    mention_adjacency,
)
from solstice.retrieval.chunking import chunk_texts, chunk_units, split_spans
from solstice.retrieval.context import fit_context
from solstice.retrieval.documents import Corpus, Document, make_unit
from solstice.retrieval.encoders import FunctionEncoder
from solstice.retrieval.grouping import (
    group_documents,
    partition_problems,
    passage_grouping,
    random_grouping,
)
from solstice.retrieval.index import UnitIndex
from solstice.retrieval.select import select

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def random_corpus(n: int, seed: int, max_words: int = 60) -> tuple[Corpus, Adjacency]:
    rng = np.random.default_rng(seed)
    docs = [Document(id=f"d{i:03d}", title=f"T{int(rng.integers(0, n // 2)):03d}",  # duplicate titles on purpose
                     text=" ".join(rng.choice(WORDS, size=int(rng.integers(1, max_words))))) for i in range(n)]
    corpus = Corpus(docs)
    edges = [(f"d{int(a):03d}", f"d{int(b):03d}") for a, b in rng.integers(0, n, size=(n, 2))]
    return corpus, Adjacency.from_edges(corpus.ids, edges, "random")


def unit_signature(units) -> str:
    return hashlib.sha256(json.dumps([[u.id, list(u.doc_ids), u.text, u.n_tokens] for u in units]).encode()).hexdigest()


# -- grouping ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cap", [20, 80, 400])
def test_grouping_partitions_the_corpus_within_budget(seed, cap):
    corpus, adj = random_corpus(120, seed)
    g = group_documents(corpus, adj, max_tokens=cap, counter="words")
    assert g.problems() == []
    members = [d for u in g.units for d in u.doc_ids]
    assert sorted(members) == sorted(corpus.ids)  # every document in exactly one unit
    for u in g.units:
        assert u.n_tokens == sum(g.sizes[d] for d in u.doc_ids)
        assert len(u.doc_ids) == 1 or u.n_tokens <= cap
        assert u.oversized == (len(u.doc_ids) == 1 and u.n_tokens > cap)
        # the unit text is the members' rendered texts in order, located by doc_spans
        for d, (s, e) in zip(u.doc_ids, u.doc_spans):
            assert u.text[s:e] == corpus.get(d).render()
    # groups are connected along the adjacency (they grow from a seed by absorbing neighbours)
    for u in g.units:
        seen, todo = {u.doc_ids[0]}, [u.doc_ids[0]]
        while todo:
            x = todo.pop()
            for y in adj.neighbours[x] & set(u.doc_ids) - seen:
                seen.add(y)
                todo.append(y)
        assert seen == set(u.doc_ids)
    assert g.report["n_docs"] == 120 and g.report["n_units"] == len(g.units)


def test_grouping_follows_the_paper_on_a_worked_example():
    # star a-b, a-c, a-d plus an edge e-f and an isolated g; sizes in words (+2 for "Title: X Text:")
    texts = {"a": 10, "b": 3, "c": 3, "d": 20, "e": 2, "f": 2, "g": 5}
    corpus = Corpus([Document(id=k, title=k.upper(), text=" ".join(["w"] * n)) for k, n in texts.items()])
    adj = Adjacency.from_edges(corpus.ids, [("a", "b"), ("a", "c"), ("a", "d"), ("e", "f")])
    sizes = {k: n for k, n in texts.items()}
    g = group_documents(corpus, adj, max_tokens=18, sizes=sizes)
    # visit order by degree then title: g(0) | b, c, d, e, f (1) | a (3).
    # b, c, d, e open singletons (their neighbours are unvisited); f absorbs {e}; a absorbs the
    # smallest neighbouring groups {b} (3) then {c} (3) -> 16, and {d} (20) does not fit.
    groups = sorted(sorted(u.doc_ids) for u in g.units)
    assert groups == [["a", "b", "c"], ["d"], ["e", "f"], ["g"]]
    abc = next(u for u in g.units if "a" in u.doc_ids)
    assert abc.doc_ids == ("a", "b", "c")  # breadth-first from the seed a, ties by title
    assert abc.n_tokens == 16 and g.report["n_isolated_docs"] == 1


def test_isolated_documents_are_kept_not_dropped():
    corpus, _ = random_corpus(50, 3)
    g = group_documents(corpus, Adjacency.from_edges(corpus.ids, []), max_tokens=1000, counter="words")
    assert len(g.units) == 50 and g.report["n_isolated_docs"] == 50 and g.problems() == []


def test_grouping_is_deterministic_across_runs_orders_and_hash_seeds():
    corpus, adj = random_corpus(150, 11)
    a = group_documents(corpus, adj, max_tokens=120, counter="words")
    b = group_documents(corpus, adj, max_tokens=120, counter="words")
    assert unit_signature(a.units) == unit_signature(b.units)
    # the same documents and edges given in another order group the same way
    shuffled = Corpus([corpus[i] for i in np.random.default_rng(0).permutation(len(corpus))])
    c = group_documents(shuffled, Adjacency.from_edges(shuffled.ids, reversed(adj.edges())), max_tokens=120,
                        counter="words")
    assert sorted(sorted(u.doc_ids) for u in a.units) == sorted(sorted(u.doc_ids) for u in c.units)
    code = ("import sys; sys.path.insert(0, 'tests'); from test_retrieval import random_corpus, unit_signature;"
            "from solstice.retrieval.grouping import group_documents;"
            "c, a = random_corpus(150, 11); print(unit_signature(group_documents(c, a, max_tokens=120, counter='words').units))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sigs = set()
    for hs in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hs, "PYTHONPATH": os.path.join(root, "src")}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
        assert out.returncode == 0, out.stderr
        sigs.add(out.stdout.strip())
    assert sigs == {unit_signature(a.units)}


def test_oversized_documents_are_reported_or_split():
    docs = [Document(id="big", title="Big", text=" ".join(WORDS * 10)), Document(id="s", title="S", text="alpha beta")]
    corpus = Corpus(docs)
    adj = Adjacency.from_edges(corpus.ids, [("big", "s")])
    g = group_documents(corpus, adj, max_tokens=50, counter="words")
    assert g.report["oversized_docs"] == ["big"] and any(u.oversized and u.doc_ids == ("big",) for u in g.units)
    assert g.problems() == []
    s = group_documents(corpus, adj, max_tokens=50, counter="words", split_oversized=True)
    assert s.report["split_docs"] == ["big"] and s.problems() == []
    pieces = [d for d in s.documents if d.metadata.get("split_of") == "big"]
    assert len(pieces) >= 4 and all(s.sizes[p.id] <= 50 for p in pieces)
    assert " ".join(p.text for p in pieces).split() == docs[0].text.split()  # nothing lost
    assert all(u.n_tokens <= 50 for u in s.units)


def test_random_control_keeps_member_counts_and_partition():
    corpus, adj = random_corpus(100, 5)
    g = group_documents(corpus, adj, max_tokens=200, counter="words")
    r = random_grouping(g, seed=1)
    assert sorted(len(u.doc_ids) for u in r.units) == sorted(len(u.doc_ids) for u in g.units)
    assert partition_problems(corpus.ids, r.units) == []
    assert unit_signature(r.units) == unit_signature(random_grouping(g, seed=1).units)
    assert unit_signature(r.units) != unit_signature(random_grouping(g, seed=2).units)


# -- adjacency ---------------------------------------------------------------------------------
def test_mention_link_sequence_and_knn_adjacency():
    docs = [
        Document("1", "The house was designed by Frank Lloyd Wright in Chicago.", "Robie House"),
        Document("2", "An American architect.", "Frank Lloyd Wright"),
        Document("3", "A city; Chicagoland is not a mention of it.", "Chicago"),
        Document("4", "Kiss and Tell starred Shirley Temple.", "Corliss Archer"),
        Document("5", "A 1945 comedy film.", "Kiss and Tell (1945 film)"),
        Document("6", "The month.", "September (2007 film)"),
        Document("7", "It happened in September.", "Autumn", links=("robie house", "Nowhere")),
    ]
    c = Corpus(docs)
    m = mention_adjacency(c)
    assert m.neighbours["1"] == {"2", "3"} and "1" in m.neighbours["2"]  # symmetric
    assert "3" not in m.neighbours["4"]  # 'Chicagoland' is not the word 'Chicago'
    assert m.neighbours["4"] == {"5"}  # disambiguation stripped for multi-word names ...
    assert m.neighbours["6"] == set()  # ... but not for a single common word
    assert mention_adjacency(c, strip_disambiguation=False).neighbours["4"] == set()
    links = link_adjacency(c)
    assert links.neighbours["7"] == {"1"} and links.info["unresolved_links"] == 1  # casefold fallback
    both = build_adjacency(c, "mentions+links")
    assert both.neighbours["7"] == {"1"} and both.neighbours["1"] == {"2", "3", "7"}
    seq = Corpus([Document(f"s{i}", "x", source="A" if i < 3 else "B", position=3 - i) for i in range(5)])
    assert sorted(build_adjacency(seq, "sequence").edges()) == [("s0", "s1"), ("s1", "s2"), ("s3", "s4")]
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    knn = knn_adjacency(["a", "b", "c", "d"], emb, m=1, threshold=0.5)
    assert knn.edges() == [("a", "b")]
    with pytest.raises(ConfigError):
        build_adjacency(c, "hyperlinks")


# -- chunking ----------------------------------------------------------------------------------
@pytest.mark.parametrize("counter", ["words", "minilm"])
def test_windows_cover_the_text_within_the_token_limit(counter):
    text = " ".join(f"{w}{i}," for i, w in enumerate(WORDS * 30))
    c = get_counter(counter)
    for overlap in (0, 7):
        spans = split_spans(text, 50, c, overlap=overlap)
        assert all(n <= 50 and c.count(text[s:e]) <= 50 for s, e, n in spans)
        assert spans[0][0] == 0 and spans[-1][1] == len(text)
        if overlap == 0:  # consecutive windows tile the text
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
            assert "".join(text[s:e] for s, e, _ in spans).replace(" ", "") == text.replace(" ", "")
    with pytest.raises(ConfigError):
        split_spans(text, 10, c, overlap=10)


def test_document_and_packed_chunks_respect_document_borders():
    docs = [Document(str(i), " ".join(WORDS[: 3 + i]), f"t{i}") for i in range(6)]
    u = make_unit("u", docs, 0)
    for mode in ("document", "packed"):
        chunks = chunk_units([u], 30, "words", mode=mode)
        starts = {s for s, _ in u.doc_spans}
        assert all(c.start in starts for c in chunks) and all(c.n_tokens <= 30 for c in chunks)
        assert sum(len(u.text[c.start:c.end].split()) for c in chunks) == len(u.text.split())
    assert len(chunk_units([u], 30, "words", mode="document")) == 6
    assert len(chunk_units([u], 30, "words", mode="packed")) < 6


# -- the index ---------------------------------------------------------------------------------
def hashed_vectors(texts, dim=24):
    out = []
    for t in texts:
        rng = np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16))
        out.append(rng.standard_normal(dim))
    return np.array(out)


def test_maxp_equals_the_best_chunk_score():
    corpus, adj = random_corpus(80, 2, max_words=120)
    g = group_documents(corpus, adj, max_tokens=400, counter="words")
    enc = FunctionEncoder(hashed_vectors, 24, name="hash")
    queries = [" ".join(WORDS[i:i + 3]) for i in range(8)]
    for backend in ("dense", "bm25"):
        idx = UnitIndex.build(g.units, backend=backend, chunk_tokens=25, counter="words", encoder=enc)
        assert len(idx.chunks) > len(idx.units)
        # brute force: every chunk as its own unit, scored by the same kind of index
        texts = chunk_texts(g.units, idx.chunks)
        flat = UnitIndex.build([make_unit(f"c{i}", [Document(f"c{i}", t)], 1) for i, t in enumerate(texts)],
                               backend=backend, chunk_tokens=10**6, counter="words", encoder=enc)
        brute = flat.unit_scores(queries)
        owner = np.array([c.unit for c in idx.chunks])
        expect = np.stack([brute[:, owner == u].max(axis=1) for u in range(len(g.units))], axis=1)
        np.testing.assert_allclose(idx.unit_scores(queries), expect, rtol=1e-5, atol=1e-6)
        hits = idx.search(queries, k=5)
        for qi, hs in enumerate(hits):
            top = np.sort(expect[qi])[::-1][:5]
            np.testing.assert_allclose([h.score for h in hs], top, rtol=1e-5, atol=1e-6)
            for h in hs:  # the reported chunk is the unit's best
                assert idx.chunks[h.chunk].unit == idx._pos[h.unit_id]
                assert brute[qi, h.chunk] == pytest.approx(h.score, rel=1e-5, abs=1e-6)
    # faiss top-N with growth returns the same ranking as the exact numpy search
    ex = UnitIndex.build(g.units, backend="dense", chunk_tokens=25, counter="words", encoder=enc)
    fa = UnitIndex.build(g.units, backend="dense", chunk_tokens=25, counter="words", encoder=enc, search="faiss")
    for a, b in zip(ex.search(queries, k=6), fa.search(queries, k=6, candidates=3)):
        assert [h.unit_id for h in a] == [h.unit_id for h in b]


def test_index_save_load_round_trip(tmp_path):
    corpus, adj = random_corpus(60, 4)
    g = group_documents(corpus, adj, max_tokens=150, counter="words")
    enc = FunctionEncoder(hashed_vectors, 24, name="hash")
    queries = ["alpha beta", "sigma tau rho", "kappa"]
    for backend in ("bm25", "dense"):
        idx = UnitIndex.build(g.units, backend=backend, chunk_tokens=20, counter="words", encoder=enc)
        path = idx.save(tmp_path / backend)
        back = UnitIndex.load(path, encoder=enc)
        assert [u.to_json() for u in back.units] == [u.to_json() for u in idx.units]
        assert back.chunks == idx.chunks and back.info["backend"] == backend
        assert [[(h.unit_id, round(h.score, 5), h.chunk) for h in hs] for hs in back.search(queries, k=4)] == \
               [[(h.unit_id, round(h.score, 5), h.chunk) for h in hs] for hs in idx.search(queries, k=4)]
    with pytest.raises(DataError):
        UnitIndex.load(tmp_path / "nothing")


@pytest.mark.slow  # loads sentence-transformers and the embedded MiniLM (tens of seconds on a busy CPU)
def test_passage_index_with_the_embedded_encoder_finds_the_obvious_passage():
    docs = [Document("p", "Paris is the capital and largest city of France.", "Paris"),
            Document("m", "The mitochondrion is the powerhouse of the cell.", "Mitochondrion"),
            Document("v", "Volcanoes erupt molten rock called lava.", "Volcano")]
    g = passage_grouping(Corpus(docs), counter="words")
    idx = UnitIndex.build(g.units, backend="dense")
    hits = idx.search(["What is the capital of France?", "Which organelle makes energy for cells?"], k=1)
    assert [h[0].unit_id for h in hits] == ["p", "m"]


# -- selection and context fitting ----------------------------------------------------------------
def test_select_by_count_and_budget():
    sizes = {"a": 300, "b": 500, "c": 100, "d": 50}
    ranked = list(sizes)
    assert select(ranked, sizes, k=2, key=str).items == ["a", "b"]
    s = select(ranked, sizes, budget=850, key=str)
    assert s.items == ["a", "b"] and s.n_tokens == 800 and not s.truncated
    assert select(ranked, sizes, budget=850, fill="skip", key=str).items == ["a", "b", "d"]
    first = select(ranked, sizes, budget=200, key=str)
    assert first.items == ["a"] and first.truncated
    assert select(ranked, sizes, budget=10**6, k=3, key=str).items == ["a", "b", "c"]
    with pytest.raises(ConfigError):
        select(ranked, sizes)


def test_fit_context_keeps_a_prefix_or_cuts_the_first():
    texts = ["aaaa " * 20, "bbbb " * 20, "cccc " * 20]
    wc = WordCounter()

    def build(ts):
        return "Q? " + " ".join(ts)

    f = fit_context(texts, build, wc.count, 45)
    assert f.texts == texts[:2] and f.dropped == 1 and not f.cut and f.n_tokens <= 45
    g = fit_context(texts, build, wc.count, 12)
    assert g.cut and g.dropped == 2 and g.n_tokens <= 12 and texts[0].startswith(g.texts[0])
    with pytest.raises(ConfigError):
        fit_context(texts, build, wc.count, 0)


def test_bm25_top_n_search_equals_exact_maxp():
    """BM25 search takes the top-N chunks one query at a time (no [queries x chunks] matrix): the
    units, order and scores equal exact MaxP over all chunks, ties and zero-score units included."""
    import numpy as np

    from solstice.retrieval.chunking import Chunk
    from solstice.retrieval.documents import Unit
    from solstice.retrieval.index import BM25Scorer, UnitIndex

    rng = np.random.default_rng(3)
    vocab = [f"w{i}" for i in range(300)]
    units, chunks, texts = [], [], []
    for u in range(400):
        n = int(rng.integers(1, 6))
        parts = [" ".join(rng.choice(vocab, size=12)) for _ in range(n)]
        text = " ".join(parts)
        units.append(Unit(f"u{u}", (f"d{u}",), (f"T{u}",), text, len(text.split())))
        pos = 0
        for p in parts:
            chunks.append(Chunk(u, pos, pos + len(p), 12))
            texts.append(p)
            pos += len(p) + 1
    idx = UnitIndex(units, chunks, BM25Scorer.build(texts, stemmer=None), {})
    queries = [" ".join(rng.choice(vocab, size=4)) for _ in range(30)] + ["nothing matches here"]
    for k in (1, 8, 50, 400):
        fast = idx.search(queries, k=k)
        exact = idx._search_exact(queries, k)
        for f, e in zip(fast, exact):
            assert [h.unit_id for h in f] == [h.unit_id for h in e]
            assert np.allclose([h.score for h in f], [h.score for h in e])


# -- bm25s and JAX ------------------------------------------------------------------------------
_FAKE_JAX = """
import json, os
with open(os.environ["JAX_PROBE"], "w") as f:
    json.dump({k: os.environ.get(k) for k in ("JAX_PLATFORMS", "XLA_PYTHON_CLIENT_PREALLOCATE")}, f)
"""


@pytest.mark.parametrize("user_env, seen", [
    ({}, {"JAX_PLATFORMS": "cpu", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
    ({"JAX_PLATFORMS": "cuda"}, {"JAX_PLATFORMS": "cuda", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
])
def test_bm25_index_keeps_jax_off_the_gpu(tmp_path, user_env, seen):
    """`import bm25s` runs a jax top-k when jax is installed, which would start JAX on the GPU and
    preallocate most of its memory; the index imports it with JAX kept on the CPU (a user's own
    setting wins). A fake jax package records the environment it is imported under."""
    pytest.importorskip("bm25s")
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text(_FAKE_JAX)
    (tmp_path / "jax" / "lax.py").write_text("def top_k(x, k):\n    return x, None\n")
    probe = tmp_path / "probe.json"
    code = ("from solstice.retrieval.documents import Document, make_unit\n"
            "from solstice.retrieval.index import UnitIndex\n"
            "units = [make_unit(str(i), [Document(str(i), t)], 2) for i, t in enumerate(['red fox', 'blue whale'])]\n"
            "print(UnitIndex.build(units, backend='bm25', counter='words').search(['whale'], k=1)[0][0].unit_id)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "XLA_PYTHON_CLIENT_PREALLOCATE")}
    env.update(user_env, JAX_PROBE=str(probe),
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.path.join(os.path.dirname(__file__), "..", "src"),
                                           os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1"
    assert json.loads(probe.read_text()) == seen

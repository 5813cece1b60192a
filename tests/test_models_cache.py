"""The model-call cache keys on what determines the answer: the weights, the served model, the
exact request and the generation parameters; never the spec string."""

import sqlite3

import pytest

from solstice.models.base import GenParams, ModelSpec
from solstice.models.cache import CachedModel, cache_info, clear_cache, fingerprint


def _load(path):
    from solstice.models.hf import HFModel

    return HFModel(ModelSpec("hf", str(path), {}, f"hf:{path}"))


def test_an_entry_is_not_served_after_the_weights_file_changes(tmp_path):
    from solstice.models.tiny import build_tiny

    weights = tmp_path / "model"
    build_tiny("llama", seed=0, save_to=weights)
    cache = tmp_path / "cache"
    params = GenParams(max_new_tokens=6)
    first = CachedModel(_load(weights), cache)
    a = first.generate_text(["hello there"], params)
    assert (first.hits, first.misses) == (0, 1)
    again = CachedModel(_load(weights), cache)
    assert again.generate_text(["hello there"], params) == a and again.hits == 1  # same weights: served

    build_tiny("llama", seed=1, save_to=weights)  # new weights at the same path, same spec string
    fresh = _load(weights)
    expected = fresh.generate_text(["hello there"], params)
    cached = CachedModel(fresh, cache)
    assert cached.fingerprint != first.fingerprint
    assert cached.generate_text(["hello there"], params) == expected
    assert (cached.hits, cached.misses) == (0, 1)
    assert expected != a  # the two random models answer differently, so a stale hit would show
    from solstice.models.base import unwrap

    assert unwrap(cached) is fresh  # white-box code reads the backend under the cache
    # other generation parameters are another entry
    cached.generate_text(["hello there"], GenParams(max_new_tokens=3))
    assert cached.misses == 2


def test_the_cache_keys_on_the_served_model_behind_an_endpoint(tmp_path):
    from solstice.models.loader import load_model
    from stub_openai import StubServer

    with StubServer() as srv:
        spec = f"openai:stub@{srv.url}"
        srv.state.models = [{"id": "stub", "root": "/weights/a", "created": 1}]
        m = CachedModel(load_model(spec, cached=False), tmp_path)
        m.generate_text(["q"])
        m.generate_text(["q"])
        assert (m.hits, m.misses) == (1, 1) and len(srv.state.requests) == 1
        srv.state.models = [{"id": "stub", "root": "/weights/b", "created": 2}]  # another model, same URL
        m2 = CachedModel(load_model(spec, cached=False), tmp_path)
        m2.generate_text(["q"])
        assert m2.misses == 1 and len(srv.state.requests) == 2
        srv.state.models = [{"id": "other"}]  # the endpoint does not list the model: never cached
        m3 = CachedModel(load_model(spec, cached=False), tmp_path)
        assert m3.fingerprint is None
        m3.generate_text(["q"])
        m3.generate_text(["q"])
        assert len(srv.state.requests) == 4


def test_info_and_clear(tmp_path):
    from solstice.models.loader import load_model

    a = CachedModel(load_model("fake:const=a", cached=False), tmp_path)
    b = CachedModel(load_model("fake:const=b", cached=False), tmp_path)
    a.generate_text(["x", "y"])
    b.generate_text(["x"])
    info = cache_info(tmp_path)
    assert info["entries"] == 3 and {m["spec"]: m["entries"] for m in info["models"]} == {"fake:const=a": 2, "fake:const=b": 1}
    assert clear_cache(tmp_path, a.fingerprint[:10]) == 2
    assert cache_info(tmp_path)["entries"] == 1
    assert clear_cache(tmp_path) == 1 and cache_info(tmp_path)["entries"] == 0
    assert fingerprint(load_model("fake:const=a", cached=False)) != fingerprint(load_model("fake:const=b", cached=False))


def test_a_run_caches_only_when_asked_and_keys_on_weights(tmp_path, toy_env):
    from solstice.core.runner import run_paper

    plain = run_paper("toy", out=tmp_path / "runs", sets=["n=4"])
    assert not (plain.path / "cache").exists()
    scoped = run_paper("toy", out=tmp_path / "runs", sets=["n=4"], cache="run")
    db = scoped.path / "cache" / "calls.sqlite"
    assert db.is_file()
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 4
    import json

    meta = json.loads((scoped.path / "run.json").read_text())
    assert meta["cache"] == str(scoped.path / "cache") and meta["models"]["target"]["fingerprint"]


@pytest.mark.parametrize("args", [["cache", "info"], ["cache", "clear"]])
def test_cache_cli(tmp_path, args):
    import subprocess
    import sys

    from conftest import cli_env

    r = subprocess.run([sys.executable, "-m", "solstice", *args, str(tmp_path / "none")], capture_output=True,
                       text=True, env=cli_env())
    assert r.returncode == 0 and ("no cache" in r.stdout or "deleted 0" in r.stdout), r.stderr

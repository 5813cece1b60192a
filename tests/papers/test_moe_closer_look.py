"""moe_closer_look: data reading, a dense model refused in one line, an end-to-end run on tiny Mixtral."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import cli_env, needs_data, shared_data

pytest.importorskip("torch")


def solstice(*args):
    return subprocess.run([sys.executable, "-m", "solstice", *args], capture_output=True, text=True, env=cli_env())


@needs_data
def test_sentences_skip_headings_and_keep_the_first_article():
    from solstice.papers.moe_closer_look.run import sentences

    s = sentences(shared_data() / "wikitext103" / "wikitext103_test.csv", 10)
    assert len(s) == 10
    assert s[0].startswith("B of the Bang was a sculpture")  # the first article is not eaten as a header
    assert not any(x.lstrip().startswith("=") for x in s)


@needs_data  # the run reads its sentences before it looks at the model
def test_dense_model_without_upcycling_is_one_line_exit_2(tmp_path):
    r = solstice("run", "moe_closer_look", "--model", "tiny:llama", "--set", "upcycle=false", "--out", str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert "dense model" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@needs_data
def test_end_to_end_on_tiny_mixtral_and_upcycled_tiny_llama(tmp_path):
    for model, extra in (("tiny:mixtral", []), ("tiny:llama", ["--set", "experts=4"])):
        r = solstice("run", "moe_closer_look", "--model", model, "--set", "n_sentences=2", "--set", "layers=[0,1]",
                     "--set", "static_layers=[1]", *extra,
                     "--out", str(tmp_path / model.replace(":", "_")))
        assert r.returncode == 0, r.stderr[-2000:]
        run_dir = r.stdout.strip().splitlines()[-1]
        metrics = json.loads(open(f"{run_dir}/metrics.json").read())
        m = metrics.get("metrics", metrics)
        assert m["recombination_max_rel_err"]["value"] < 1e-4
        assert m["rank_count_margin_error"]["value"] == 0
        if model == "tiny:llama":  # permute-upcycled, untrained: neurons matched back
            assert m["min_reordered_cosine"]["value"] > 0.99


@needs_data
def test_a_trained_upcycle_is_saved_as_a_checkpoint_that_hf_loads_and_reanalyses_identically(tmp_path):
    from solstice.core.runner import run_paper
    from solstice.models.loader import clear_model_cache

    common = ["n_sentences=2", "layers=[0,1]", "static_layers=[1]", "hungarian_pairs=1"]
    clear_model_cache()
    trained = run_paper("moe_closer_look", models=["tiny:llama"], out=tmp_path / "a",
                        sets=common + ["experts=4", "train_steps=2", "train_batch=2", "train_tokens=16"])
    assert trained.status == "completed", trained.error
    saved = trained.path / "artifacts" / "upcycled_model"
    assert (saved / "config.json").is_file() and list(saved.glob("*.safetensors"))
    assert json.loads((saved / "config.json").read_text())["model_type"] == "mixtral"
    meta = json.loads((trained.path / "artifacts" / "model.json").read_text())
    assert meta["saved_to"] == "artifacts/upcycled_model" and meta["training"]["steps"] == 2
    again = run_paper("moe_closer_look", models=[f"hf:{saved}"], out=tmp_path / "b", sets=common + ["upcycle=false"])
    assert again.status == "completed", again.error
    for k in ("gate_r2", "up_r2", "down_r2", "mean_output_similarity", "p_top_is_max_norm"):
        assert again.metrics[k].value == pytest.approx(trained.metrics[k].value, abs=1e-6), k
    assert not (again.path / "artifacts" / "upcycled_model").exists()  # a model that was not upcycled is not re-saved

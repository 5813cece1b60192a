"""Images in the model layer: data URLs to OpenAI-compatible servers, a tiny random VLM through
the hf vision backend, the `vision` capability, cache keys on image content."""

from __future__ import annotations

import base64
import io
import json

import pytest

from solstice.errors import CapabilityError, DataError
from solstice.models import CAP_VISION, GenParams, load_model, strip_images, user_message
from solstice.models.loader import static_capabilities
from solstice.models.vision import has_images, image_fingerprint, openai_messages, to_data_url
from stub_openai import StubServer

PIL = pytest.importorskip("PIL.Image")


def png(color=(200, 30, 30), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    PIL.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_data_url_round_trips_png_bytes_path_and_pil(tmp_path):
    data = png()
    f = tmp_path / "x.png"
    f.write_bytes(data)
    for src in (data, f, str(f)):
        url = to_data_url(src)
        assert url.startswith("data:image/png;base64,")
        assert base64.b64decode(url.split(",", 1)[1]) == data
    pil_url = to_data_url(PIL.open(io.BytesIO(data)))  # re-encoded as PNG, same pixels
    back = PIL.open(io.BytesIO(base64.b64decode(pil_url.split(",", 1)[1])))
    assert back.size == (40, 30) and back.getpixel((0, 0)) == (200, 30, 30)


def test_missing_or_bad_image_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.png"):
        to_data_url(tmp_path / "nope.png")
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(DataError, match="t.png"):
        to_data_url(tmp_path / "t.png")


def test_openai_messages_shape_and_text_only_strip():
    msg = user_message("what is this?", [png()])
    wire = openai_messages([msg])[0]["content"]
    assert wire[0] == {"type": "text", "text": "what is this?"}
    assert wire[1]["type"] == "image_url" and wire[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert has_images([msg]) and not has_images(strip_images([msg]))
    assert strip_images([msg])[0]["content"] == "what is this?"


def test_generated_png_reaches_the_stub_server_as_a_data_url():
    data = png((10, 200, 10))
    with StubServer() as srv:
        m = load_model(f"openai:vlm@{srv.url}?retries=0", cached=False)
        assert CAP_VISION in m.capabilities
        out = m.generate([[user_message("Describe.", [data])]], GenParams(max_new_tokens=7, temperature=0.5, n=2))
        body = srv.state.requests[-1]
    assert len(out[0]) == 2 and out[0][0].text.endswith("Describe. [1 image(s)]")
    assert body["max_tokens"] == 7 and body["temperature"] == 0.5 and body["n"] == 2
    assert srv.state.images == ["data:image/png;base64," + base64.b64encode(data).decode()]


def test_text_only_endpoint_and_models_refuse_images_in_one_line():
    with StubServer() as srv:
        m = load_model(f"openai:txt@{srv.url}?vision=0&retries=0", cached=False)
        with pytest.raises(CapabilityError, match="text-only"):
            m.generate([[user_message("x", [png()])]])
        assert srv.state.requests == []  # refused before anything was sent
    fake = load_model("fake:const=ok", cached=False)
    with pytest.raises(CapabilityError, match="text-only"):
        fake.generate([[user_message("x", [png()])]])
    seeing = load_model("fake:echo?vision=1", cached=False)
    assert seeing.generate_text([[user_message("look", [png()])]]) == ["look<image>"]


def test_static_capabilities_know_vision_before_loading(tmp_path):
    assert CAP_VISION in static_capabilities("tiny:llava")
    assert CAP_VISION in static_capabilities("tiny:idefics3")
    assert CAP_VISION not in static_capabilities("tiny:llama")
    assert CAP_VISION not in static_capabilities("default")
    assert CAP_VISION in static_capabilities("openai:m@http://localhost:1/v1")
    assert CAP_VISION not in static_capabilities("openai:m@http://localhost:1/v1?vision=0")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava", "vision_config": {}}))
    assert CAP_VISION in static_capabilities(f"hf:{tmp_path}")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert CAP_VISION not in static_capabilities(f"hf:{tmp_path}")


def test_cache_keys_on_image_content_not_path(tmp_path):
    from solstice.models.cache import _sha as _key

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png((1, 2, 3)))
    b.write_bytes(png((1, 2, 3)))
    assert _key([user_message("q", [a])]) == _key([user_message("q", [b])])
    b.write_bytes(png((3, 2, 1)))  # same path, new pixels: a new key
    assert _key([user_message("q", [a])]) != _key([user_message("q", [b])])
    assert image_fingerprint(PIL.new("RGB", (4, 4), 0)) != image_fingerprint(PIL.new("RGB", (4, 4), 1))


@pytest.fixture(scope="module", params=["llava", "idefics3"])
def tiny_vlm(request):
    pytest.importorskip("transformers")
    return load_model(f"tiny:{request.param}", cached=False)


def test_tiny_vlm_generates_with_an_image(tiny_vlm):
    red, blue = png((250, 0, 0)), png((0, 0, 250))
    prompts = [[user_message("what colour?", [red])], [user_message("what colour?", [blue])], "plain text"]
    out = tiny_vlm.generate(prompts, GenParams(max_new_tokens=6))
    assert [len(o) for o in out] == [1, 1, 1] and all(o[0].n_tokens <= 6 for o in out)
    # the image reaches the model: different pixels change the next-token distribution
    lp = tiny_vlm.label_logprobs(prompts[:2], ["A", "B", "C", "D"])
    assert lp[0] != lp[1]


def test_tiny_vlm_option_scoring_one_pass_equals_loglikelihood(tiny_vlm):
    prompt = [user_message("Pick one.", [png((9, 99, 199))])]
    one_pass = tiny_vlm.label_logprobs([prompt], ["A", "B", "C", "D"])[0]
    exact = tiny_vlm.loglikelihood([(prompt, lab) for lab in "ABCD"])
    for lab, r in zip("ABCD", exact):
        assert r.n_tokens == 1
        assert one_pass[lab] == pytest.approx(r.logprob, abs=1e-4)


def test_tiny_vlm_batched_equals_single(tiny_vlm):
    prompts = [[user_message("q1", [png((i * 40, 10, 10))])] for i in range(3)]
    batched = tiny_vlm.label_logprobs(prompts, ["A", "B"])
    single = [tiny_vlm.label_logprobs([p], ["A", "B"])[0] for p in prompts]
    for x, y in zip(batched, single):
        assert x["A"] == pytest.approx(y["A"], abs=1e-4) and x["B"] == pytest.approx(y["B"], abs=1e-4)


def test_hf_spec_loads_a_saved_vlm_through_auto_classes(tmp_path, tiny_vlm):
    from solstice.models.tiny import build_tiny_vlm

    build_tiny_vlm(tiny_vlm.spec.target, save_to=tmp_path)
    assert CAP_VISION in static_capabilities(f"hf:{tmp_path}")
    m = load_model(f"hf:{tmp_path}", cached=False)
    assert CAP_VISION in m.capabilities and m.info()["vision"] is True
    prompt = [user_message("Pick one.", [png((5, 5, 5))])]
    assert m.label_logprobs([prompt], ["A", "B"])[0] == pytest.approx(tiny_vlm.label_logprobs([prompt], ["A", "B"])[0], abs=1e-4)

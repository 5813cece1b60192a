"""Images in prompts, shared by every backend.

A chat message's `content` is either text or a list of parts (the format transformers chat
templates read):

    {"type": "text", "text": "What is in the picture?"}
    {"type": "image", "image": <a path, a PIL image, or encoded bytes (PNG/JPEG/...)>}

    prompt = [user_message("Describe this.", images=["photo.png"])]
    model.generate([prompt])                 # a model with the `vision` capability sees the image

Backends read images through this module: `openai:` turns them into base64 data-URL content
parts (`openai_messages`), `hf:` vision models hand PIL images to their processor. A text-only
model given a prompt with images raises CapabilityError (`check_images`); `strip_images` gives the
text-only version of a prompt for an explicit, recorded text-only ablation. Nothing here imports
Pillow until an image is actually decoded or encoded.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from solstice.errors import CapabilityError, DataError, require

CAP_VISION = "vision"
IMAGE_PLACEHOLDER = "<image>"

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"RIFF", "image/webp"), (b"BM", "image/bmp"))


def is_image(x: Any) -> bool:
    """A path, encoded bytes or a PIL image (anything this module can read as an image)."""
    if isinstance(x, (bytes, bytearray, Path)):
        return True
    return type(x).__module__.startswith("PIL.")


def image_part(image: Any) -> dict[str, Any]:
    if not (is_image(image) or isinstance(image, str)):
        raise TypeError(f"not an image: {type(image).__name__} (use a path, bytes or a PIL image)")
    if isinstance(image, str) and not image.startswith(("http://", "https://", "data:")):
        image = Path(image)
    return {"type": "image", "image": image}


def user_message(text: str, images: Sequence[Any] = (), *, images_first: bool = False,
                 role: str = "user") -> dict[str, Any]:
    """One chat message holding `text` and `images` (text first unless `images_first`)."""
    if not images:
        return {"role": role, "content": text}
    parts = [image_part(im) for im in images]
    txt = [{"type": "text", "text": text}]
    return {"role": role, "content": parts + txt if images_first else txt + parts}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def iter_images(prompt: Any) -> Iterator[Any]:
    """The images of a prompt, in reading order."""
    if isinstance(prompt, str):
        return
    for m in prompt:
        for part in _parts(m.get("content")):
            if part.get("type") in ("image", "image_url"):
                yield part.get("image", part.get("image_url"))


def has_images(prompt: Any) -> bool:
    return next(iter_images(prompt), None) is not None


def content_text(content: Any, placeholder: str = "") -> str:
    """The text of a message content; each image becomes `placeholder` (dropped when empty)."""
    if isinstance(content, str):
        return content
    out = []
    for part in content or []:
        if part.get("type") == "text":
            out.append(part.get("text", ""))
        elif placeholder:
            out.append(placeholder)
    return "".join(out) if placeholder else "\n".join(t for t in out if t)


def strip_images(prompt: Any) -> Any:
    """The text-only version of a prompt (images removed, text kept): for a recorded ablation."""
    if isinstance(prompt, str):
        return prompt
    return [{**m, "content": content_text(m.get("content"))} for m in prompt]


def check_images(model_name: str, capabilities: frozenset[str], prompts: Sequence[Any]) -> None:
    """One clear line when a model without the `vision` capability is given images."""
    if CAP_VISION in capabilities:
        return
    if any(has_images(p) for p in prompts):
        raise CapabilityError(
            f"model '{model_name}' is text-only and cannot read the images in this prompt; use a "
            "vision-language model (hf: image-text-to-text, or an openai: vision endpoint), or run "
            "the text-only ablation explicitly (images dropped, recorded as such)"
        )


# -- reading and encoding ------------------------------------------------------------------
def image_bytes(image: Any) -> tuple[bytes, str]:
    """(encoded bytes, MIME type) of an image; a PIL image is encoded as PNG. A missing file is a
    DataError naming it."""
    if isinstance(image, (str, Path)):
        p = Path(image).expanduser()
        if not p.is_file():
            raise DataError(f"image file '{p}' does not exist")
        data = p.read_bytes()
    elif isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif type(image).__module__.startswith("PIL."):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    else:
        raise TypeError(f"not an image: {type(image).__name__}")
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return data, mime
    raise DataError(f"image {'file ' + repr(str(image)) if isinstance(image, (str, Path)) else 'bytes'} "
                    "is not a PNG, JPEG, GIF, WebP or BMP")


def to_data_url(image: Any) -> str:
    """A base64 data URL (`data:image/png;base64,...`) of the image, in its own encoding."""
    data, mime = image_bytes(image)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def load_image(image: Any) -> Any:
    """A PIL RGB image from a path, bytes or a PIL image."""
    pil = require("PIL.Image", "vision", "reading images")
    if type(image).__module__.startswith("PIL."):
        return image.convert("RGB")
    data, _ = image_bytes(image)
    return pil.open(io.BytesIO(data)).convert("RGB")


def image_fingerprint(image: Any) -> str:
    """sha256 of the image's content (pixels for a PIL image): what caches key on, never a path."""
    if type(image).__module__.startswith("PIL."):
        h = hashlib.sha256(f"{image.mode}|{image.size}".encode())
        h.update(image.tobytes())
        return "pil:" + h.hexdigest()
    data, _ = image_bytes(image)
    return "img:" + hashlib.sha256(data).hexdigest()


def json_default(obj: Any) -> Any:
    """`json.dumps(default=...)` for prompts that may hold images (cache keys, records)."""
    if is_image(obj):
        return image_fingerprint(obj)
    return str(obj)


# -- OpenAI wire format --------------------------------------------------------------------
def openai_content(content: Any) -> Any:
    """Message content as OpenAI content parts: text stays text, each image becomes
    `{"type": "image_url", "image_url": {"url": "data:image/...;base64,..."}}` (an http(s) URL
    string is passed through)."""
    if isinstance(content, str):
        return content
    out = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            out.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image":
            img = part["image"]
            url = img if isinstance(img, str) and img.startswith(("http://", "https://", "data:")) else to_data_url(img)
            out.append({"type": "image_url", "image_url": {"url": url}})
        else:
            out.append(part)
    return out


def openai_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Chat messages in the OpenAI wire format (images as data-URL content parts)."""
    return [{**m, "content": openai_content(m.get("content"))} for m in messages]

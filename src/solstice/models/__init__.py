"""The model layer: one interface over transformers models, OpenAI-compatible endpoints and scripted
fakes, addressed by spec strings (`default`, `hf:...`, `openai:model@url`, `fake:...`, `tiny:llama`).

`load_model(spec)` imports the backend lazily, so importing this package never imports torch."""

from solstice.models.base import (
    CAP_CHAT,
    CAP_GENERATE,
    CAP_LABEL_LOGPROBS,
    CAP_LOGLIKELIHOOD,
    CAP_VISION,
    CAP_WHITEBOX,
    Completion,
    GenParams,
    LoglikResult,
    Message,
    Model,
    ModelSpec,
    Prompt,
)
from solstice.models.loader import load_model, parse_spec
from solstice.models.vision import has_images, strip_images, user_message

__all__ = [
    "CAP_CHAT",
    "CAP_GENERATE",
    "CAP_LABEL_LOGPROBS",
    "CAP_LOGLIKELIHOOD",
    "CAP_VISION",
    "CAP_WHITEBOX",
    "Completion",
    "GenParams",
    "LoglikResult",
    "Message",
    "Model",
    "ModelSpec",
    "Prompt",
    "load_model",
    "parse_spec",
    "has_images",
    "strip_images",
    "user_message",
]

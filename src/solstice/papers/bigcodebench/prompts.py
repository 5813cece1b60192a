"""BigCodeBench prompts and stop strings, verbatim from the official harness
(bigcode-project/bigcodebench, bigcodebench/generate.py and provider/utility.py, Apache-2.0).

Three request modes:
  direct   base models: the raw `complete_prompt`, the base stop strings plus the direct-completion
           ones; solution = sanitize(prompt + completion).
  prefill  local chat models: one user message (instruction prefix + task) and an assistant turn
           pre-filled with the response prefix and an opening ```python fence; stop at a closing
           fence. The chat template is rendered with a sentinel in the assistant slot and cut there.
  chat     API models (and `prefill=false`): the user message only, no stop strings.
"""

from __future__ import annotations

from typing import Any

from solstice.papers.bigcodebench.sanitize import sanitize
from solstice.papers.bigcodebench.tasks import Task

PROMPT_VERSION = "bigcodebench-prompt-1"
INSTRUCTION_PREFIX = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
)
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes "
    "corresponding tests:"
)
EOS = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")
DIRECT_EOS = EOS + ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ")
PREFILL_STOP = "\n```\n"
_SPLITTER = "-[[]]-this-is-really-our-highest-priority-[[]]-"


def user_message(task: Task, split: str) -> str:
    if split == "complete":
        return f"{INSTRUCTION_PREFIX}\n```\n{task.complete_prompt.strip()}\n```\n"
    return f"{INSTRUCTION_PREFIX}\n{task.instruct_prompt.strip()}\n"


def request_mode(model: Any, *, direct_completion: bool | None, prefill: bool) -> str:
    """Which of the three modes a model gets. A model without its own chat template is a base
    model and gets direct completion (the reference's rule) unless the user forces chat, which is
    refused. Prefill needs a local chat template (a white-box model); API backends never get one,
    as in the reference."""
    from solstice.errors import ConfigError
    from solstice.models.base import CAP_WHITEBOX

    if direct_completion is None:
        direct_completion = not model.has_chat_template
    if direct_completion:
        return "direct"
    if not model.has_chat_template:
        raise ConfigError(
            f"model '{model.name}' has no chat template, so chat/prefill prompts are impossible; "
            "leave direct_completion unset (automatic) or set direct_completion=true")
    return "prefill" if prefill and CAP_WHITEBOX in model.capabilities else "chat"


def build_request(task: Task, split: str, model: Any, mode: str, *, strip_newlines: bool = False) -> tuple[Any, tuple[str, ...]]:
    """(prompt, stop strings) for one task."""
    if mode == "direct":
        prompt = task.complete_prompt.rstrip("\n") if strip_newlines else task.complete_prompt
        return prompt, DIRECT_EOS
    msg = [{"role": "user", "content": user_message(task, split)}]
    if mode == "chat":
        return msg, ()
    response = f"{RESPONSE_PREFIX}\n```python\n{_SPLITTER}\n```\n"
    rendered = model.render(msg + [{"role": "assistant", "content": response}])
    if _SPLITTER not in rendered:
        from solstice.errors import ConfigError

        raise ConfigError(f"the chat template of '{model.name}' dropped the assistant pre-fill; run with prefill=false")
    return rendered.split(_SPLITTER)[0], EOS + (PREFILL_STOP,)


def solution_from_output(task: Task, output: str, mode: str, *, strip_newlines: bool = False) -> str:
    if mode == "direct":
        prompt = task.complete_prompt.rstrip("\n") if strip_newlines else task.complete_prompt
        return sanitize(prompt + output, task.entry_point)
    if mode == "prefill":
        output = "```python\n" + output
    return sanitize(output, task.entry_point)

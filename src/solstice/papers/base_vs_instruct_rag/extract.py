"""Answer and proof extraction from a reader's continuation, robust to echoed one-shot examples.

The prompt ends with the cue "Answer:", so the continuation starts with the answer. Readers
(especially small and base models) also echo the proof prompt's one-shot example, repeat the cue,
or go on to write another "Question: … Answer: …" round. The rules, in order:

1. cut every echoed example block ("START example" … "END example") and any line that repeats a
   line of the one-shot example verbatim;
2. when the continuation restarts the prompt pattern (its first non-empty line begins with
   "Question:", "Documents:" or "Document ["), the answer is the first line after the last
   "Answer:" that follows it; otherwise a leading "Answer:" cue is dropped;
3. the answer is the first non-empty line (cut before an inline "Proof:"), stripped;
   `truncated` says whether text followed it;
4. the proof is the first line after the first "Proof:" of what is left, "NO-PROOF" when absent.

The raw continuation is always kept beside the extraction.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from solstice.papers.base_vs_instruct_rag import prompts as P

_BLOCK = re.compile(r"START example.*?(END example|\Z)", re.S)
_EXAMPLE_LINES = {line.strip() for line in P.PROOF_EXAMPLE.splitlines() if line.strip()}
_RESTART = ("Question:", "Documents:", "Document [")


@dataclass(frozen=True)
class Extraction:
    answer: str
    proof: str
    truncated: bool
    echoed_example: bool
    restarted: bool

    def to_json(self) -> dict:
        return asdict(self)


def _strip_echo(text: str) -> tuple[str, bool]:
    cleaned = _BLOCK.sub("\n", text)
    lines = cleaned.split("\n")
    kept = [ln for ln in lines if ln.strip() not in _EXAMPLE_LINES]
    out = "\n".join(kept)
    return out, out != text


def extract(continuation: str) -> Extraction:
    text, echoed = _strip_echo(continuation or "")
    stripped = text.lstrip()
    restarted = False
    first = stripped.split("\n", 1)[0].strip()
    if first.startswith(_RESTART) and "Answer:" in stripped:
        restarted = True
        stripped = stripped[stripped.rindex("Answer:") + len("Answer:"):].lstrip()
    elif stripped.startswith("Answer:"):
        stripped = stripped[len("Answer:"):].lstrip()
    head, _, rest = stripped.partition("\n")
    answer = head.split("Proof:", 1)[0].strip()
    truncated = bool(rest.strip()) or "Proof:" in head
    m = text.find("Proof:")
    proof = text[m + len("Proof:"):].strip().split("\n", 1)[0].strip() if m >= 0 else ""
    return Extraction(answer, proof or P.NO_PROOF, truncated, echoed, restarted)


def is_rejection(answer: str) -> bool:
    """The answer line says NO-RES (any case)."""
    return P.NO_RES in (answer or "").upper()

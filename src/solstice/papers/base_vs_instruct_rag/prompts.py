"""The paper's prompts (Cuconasu et al. 2024, §3 "Task Instruction I" and "Task Instruction II").

Task Instruction I: `{instruction}\nDocuments:\n{documents}\nQuestion: {question}\nAnswer:`, the
documents rendered `Document [corpus id](Title: title) text`, one per line, best last. The NQ
instruction adds "(max 5 tokens)"; the `_no_rejection` variants drop the NO-RES sentence. The
closed-book `query_only` task asks for a short answer from internal knowledge. Task Instruction II
("proof") also asks for the portion of the document containing the answer and shows one example.
With a chat template the instruction goes to the system message and the rest to the user turn;
for a template without a system role both are merged into the user turn (instruction first).
"""

from __future__ import annotations

EXTRACT = "You are given a question and you MUST respond by EXTRACTING the answer{cap} from one of the provided documents."
REJECT = " If none of the documents contain the answer, respond with NO-RES."
CAP = " (max 5 tokens)"
QUERY_ONLY = ("You are given a question and you MUST respond with a short answer based on your internal knowledge. "
              "If you do not know the answer, please respond with NO-RES.")
PROOF = " In addition, you must report the portion of the document (Proof) containing the answer."
# The one-shot example of Task Instruction II (a Wikipedia passage, CC BY-SA).
PROOF_EXAMPLE_DOC = (
    "Document [20970787](Title: Ancient Egyptian technology) Evidence indicates that Egyptians made use of potter "
    "'s wheels in the manufacturing of pottery from as early as the 4th Dynasty . Chariots , however , are only "
    "believed to have been introduced by the invasion of the Hyksos in the Second Intermediate period ; during the "
    "New Kingdom era , chariotry became central to Egypt 's military .")
PROOF_EXAMPLE_QUESTION = "when was the potter's wheel first used in egypt"
PROOF_EXAMPLE_ANSWER = "4th Dynasty"
PROOF_EXAMPLE_PROOF = ("Evidence indicates that Egyptians made use of potter 's wheels in the manufacturing of pottery "
                       "from as early as the 4th Dynasty .")
PROOF_EXAMPLE = (f"\nSTART example\n{PROOF_EXAMPLE_DOC}\nQuestion: {PROOF_EXAMPLE_QUESTION}\n"
                 f"Answer: {PROOF_EXAMPLE_ANSWER}\nProof: {PROOF_EXAMPLE_PROOF}\nEND example\n")
NO_RES = "NO-RES"
NO_PROOF = "NO-PROOF"
TASKS = ("task1", "proof", "query_only")


def instruction(task: str, *, rejection: bool = True, token_cap: bool = True) -> str:
    """The task instruction: task1 (extractive), proof (extractive + proof, one example), query_only."""
    if task == "query_only":
        return QUERY_ONLY
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'")
    text = EXTRACT.format(cap=CAP if token_cap else "") + (REJECT if rejection else "")
    if task == "proof":
        text += PROOF + PROOF_EXAMPLE
    return text


def body(task: str, question: str, documents: str) -> str:
    """Everything after the instruction: the documents (not for query_only), the question, the answer cue."""
    if task == "query_only":
        return f"Question: {question}\nAnswer:"
    return f"Documents:\n{documents}\nQuestion: {question}\nAnswer:"


def plain_prompt(instr: str, body_text: str) -> str:
    """The raw-string prompt of conditions (1) and (2): instruction, newline, body."""
    return f"{instr}\n{body_text}"


def chat_prompt(instr: str, body_text: str, *, system: bool) -> list[dict[str, str]]:
    """The messages of condition (3): instruction in the system slot, or merged into the user turn
    (then the user turn equals the plain prompt)."""
    if system:
        return [{"role": "system", "content": instr}, {"role": "user", "content": body_text}]
    return [{"role": "user", "content": plain_prompt(instr, body_text)}]

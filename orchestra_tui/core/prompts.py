"""Every piece of prompt text the engine sends, in one place.

The orchestrator was trained and evaluated on these exact strings (ToolOrchestra reference code,
ORCHESTRATOR.md §2–3). Typos, stray quotes and trailing spaces are part of the contract: golden tests pin
them. Nothing else in the code base builds prompt text.
"""

from __future__ import annotations

from typing import Literal

Variant = Literal["hle", "frames", "train"]
VARIANTS: tuple[str, ...] = ("hle", "frames", "train")
DEFAULT_VARIANT: Variant = "frames"

# --- the orchestrator --------------------------------------------------------------------------------

_SYSTEM = {
    "hle": "You are good at using tools.",
    "frames": "You are good at using tools.",
    "train": "You are good at using tools. ",  # training data carried a trailing space
}

_USER_TAIL = {
    "hle": "\n\nChoose an appropriate tool.'",  # the HLE script's stray quote
    "frames": "\n\nChoose an appropriate tool.",
    "train": "\n\nChoose an approriate tool.",  # training's spelling
}


def orchestrator_messages(problem: str, context: str, variant: Variant) -> list[dict[str, str]]:
    """The two-message chat of one stateless round."""
    return [
        {"role": "system", "content": _SYSTEM[variant]},
        {"role": "user", "content": f"Problem: {problem}\n\n{context}{_USER_TAIL[variant]}"},
    ]


# Pieces of the context block (the formats, not the assembly, which lives in core/context.py).
DOCUMENTS_HEADER = "Documents:\n"
CODE_HEADER = "\npython code and execution outputs:\n"
CODE_CUT_PREFIX = "```\n"  # re-opens a fence when truncation cut into the code part


def document_entry(index: int, text: str) -> str:
    return f"Doc {index}: {text}\n\n"


def hle_document_entry(index: int, text: str, limit: int) -> str:
    return f"Doc {index}: {text[:limit]} ...\n\n"


def code_entry(code: str, output: str) -> str:
    return f"```python\n{code}\n```\n\n```output\n{output}\n```\n\n"


# --- the experts -----------------------------------------------------------------------------------

_QUERY_INSTRUCTION = {
    "hle": (
        "Instead of directly answering the question, please write a query to search for a piece of relevant "
        "and missing information. The query should be a few key words about the information to search or a "
        "short sentence. Wrap the query within <query> and </query>."
    ),
    "frames": (
        "Instead of directly answering the question, please think hard and write a concise query to search "
        "Wikipedia. Wrap the query within <query> and </query>."
    ),
}

_CODE_INSTRUCTION = (
    "Instead of directly answering the question, please write additional python code that will give "
    "intermidiate results after execution. Wrap the code within ```python and ```. The code should be "
    "self-contained with all the import and initialization."
)

BOXED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

_GPT_ANSWER_SUFFIX = (
    "\n\nTake a deep breath and think hard with high reasoning, wrap the thoughts within <think> and </think>, "
    "and wrap only the exact answer without any explanation within <answer> and </answer>."
    "Output using the following format:\n<think>\n...\n</think>\n<answer>\n...\n</answer>"
)

_LLAMA_ANSWER_SUFFIX = (
    "\nWrap the thinking process and explanation between <think> and </think> and wrap only the exact "
    "answer without any explanation within <answer> and </answer>."
)

AnswerStyle = Literal["boxed", "gpt", "llama"]
ANSWER_STYLES: tuple[str, ...] = ("boxed", "gpt", "llama")


def _expert_variant(variant: Variant) -> str:
    # The training prompts for the experts are not public; the FRAMES wording stands in for them.
    return "hle" if variant == "hle" else "frames"


def query_writer_messages(context: str, problem: str, variant: Variant) -> list[dict[str, str]]:
    text = f"{context.strip()}\n\nQuestion: {problem}\n{_QUERY_INSTRUCTION[_expert_variant(variant)]}"
    return [{"role": "user", "content": text}]


def coder_messages(context: str, problem: str) -> list[dict[str, str]]:
    text = f"{context.strip()}\n\nQuestion: {problem}\n{_CODE_INSTRUCTION}"
    return [{"role": "user", "content": text}]


def answerer_messages(context: str, problem: str, style: AnswerStyle, variant: Variant) -> list[dict[str, str]]:
    joiner = "\n\nProblem:\n" if variant == "hle" else "\n\n"
    prompt = f"{context.strip()}{joiner}{problem}"
    if style == "boxed":
        return [{"role": "system", "content": BOXED_SYSTEM}, {"role": "user", "content": prompt}]
    suffix = _GPT_ANSWER_SUFFIX if style == "gpt" else _LLAMA_ANSWER_SUFFIX
    return [{"role": "user", "content": prompt + suffix}]


# --- follow-ups and preferences (ours, not the reference's) ------------------------------------------


def problem_with_history(question: str, history: list[tuple[str, str]]) -> str:
    """A follow-up question carries the earlier questions and answers into the problem text."""
    if not history:
        return question
    lines = ["Earlier in this conversation:"]
    for earlier_q, earlier_a in history:
        lines.append(f"Q: {earlier_q}")
        lines.append(f"A: {earlier_a}")
    lines.append("")
    lines.append(f"Current question: {question}")
    return "\n".join(lines)


def with_preference(problem: str, statement: str | None) -> str:
    """The profile's soft preferences ride in the problem text (the trained wording is not public)."""
    return f"{problem}\n\n{statement}" if statement else problem


# --- the judge (ORCHESTRATOR.md §6) -----------------------------------------------------------------


def judge_prompt(problem: str, prediction: str, reference: str) -> str:
    return (
        f"Question: {problem}\n\n"
        f"Student answer: {prediction}\n\n"
        f"Reference answer: {reference}\n\n"
        "Assume that the reference answer is correct. Output <correct>True</correct> if the student answer "
        "matches the reference answer. Output <correct>False</correct> if the student answer does not match "
        "the reference answer."
    )

"""Every piece of prompt text the engine sends, in one place.

The orchestrator was trained and evaluated on these exact strings (ToolOrchestra reference code,
ORCHESTRATOR.md §2–3). Typos, stray quotes and trailing spaces are part of the contract: golden tests pin
them. Nothing else in the code base builds prompt text.
"""

from __future__ import annotations

from typing import Any, Literal

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


# --- conversational function calling (τ²-bench setting, ORCHESTRATOR.md §7) ------------------------
# The reference's τ²-bench agent wording. The double space before "You are dedicated" and the space before
# the final period are part of what the model saw.

_AGENT_INSTRUCTION = (
    "You are a customer service agent that helps the user according to the <policy> provided below.\n"
    "In each turn you can either:\n"
    "- Send a message to the user.\n"
    "- Make a tool call.\n"
    "You cannot do both at the same time.\n"
    "\n"
    "Try to be helpful and always follow the policy. Always make sure you generate valid JSON only."
)

# In the reference this replaces the domain policy's "transfer to a human agent" paragraph; a user's own
# policy has no such paragraph, so it is added as a paragraph of its own when call_expert is offered.
EXPERT_POLICY = (
    "You should transfer the user to an expert if you are not confident about how to reply or which tool to "
    "use. To transfer, first make a tool call to call_expert, and then choose an expert based on the task "
    "difficulty, i.e. strong expert on tricky task, and weaker expert on simpler task. Think carefully about "
    "whether you are confident to meet user expectation, or call an appropriate expert based on both expert "
    "cost and performance."
)

# Ours, not the reference's: the <policy> block when the declarations file states none.
DEFAULT_DOMAIN_POLICY = (
    "Help the user with their request. Use the tools when they can help, and base your answers on their "
    "results."
)

_FORMAT_WITH_THINKING = (
    "  You are dedicated to provide the best service. Wrap thinking process between <think> </think>, "
    "message between <message> </message> and the tool call between <tool_call> </tool_call> ."
)
_FORMAT_NO_THINKING = (
    "  You are dedicated to provide the best service. Wrap message between <message> </message> and the tool "
    "call between <tool_call> </tool_call> ."
)
NO_THINK = " /no_think"  # Qwen3 experts are asked to answer without thinking
GPT_EXPERT_NUDGE = "\n\nWait, the information I provide may not be correct, please ask again."
# What the reference puts in the assistant's place when a reply holds neither a message nor a call.
EMPTY_REPLY = "Wait a minute, I will take it very soon"

CALL_EXPERT_DESCRIPTION = "Call the expert such that the user request can be better solved compared to existing functions"
CALL_EXPERT_ARGUMENT = (
    "The expert. Choices: ['expert-1', 'expert-2', 'expert-3']. expert-1 exhibits strong functional calling "
    "abilities and performs excellent in most domains (math, physics, social science, etc.), but could lack "
    "domain knowledge in some cases. expert-2 presents reasonable solutions in most tasks, but could get stuck "
    "in complex reasoning and specific domain knowledge. expert-3 demonstrates moderate performance: it can "
    "parse complex prompts, performs some mathematical derivations, call functions, yet it sometimes misreads "
    "details, mixes concepts. The table below shows the pricing and latency of each model:\n"
    "Model | price per million input tokens | price per million output tokens | average latency\n"
    "expert-1 | $1.25 | $10 | 96s\n"
    "expert-2 | $0.25 | $2 | 27s\n"
    "expert-3 | $0.8 | $0.8 | 11s"
)


def call_expert_tool(argument_description: str = CALL_EXPERT_ARGUMENT) -> dict[str, Any]:
    """The `call_expert` tool in the reference's key order (the chat template serialises it as is)."""
    return {
        "type": "function",
        "function": {
            "name": "call_expert",
            "description": CALL_EXPERT_DESCRIPTION,
            "parameters": {
                "properties": {
                    "expert": {"description": argument_description, "title": "Expression", "type": "string"},
                },
                "required": ["expert"],
                "title": "parameters",
                "type": "object",
            },
        },
    }


def conversation_system(domain_policy: str | None, *, with_expert: bool) -> str:
    """The system prompt before the output-format sentence: instructions, then the domain policy."""
    policy = (domain_policy or DEFAULT_DOMAIN_POLICY).strip()
    if with_expert:
        policy = f"{policy}\n\n{EXPERT_POLICY}"
    return f"<instructions>\n{_AGENT_INSTRUCTION}\n</instructions>\n<policy>\n{policy}\n</policy>"


def conversation_policy_system(base: str) -> str:
    """What the orchestrator receives: the base prompt plus the think / message / tool_call instruction."""
    return base + _FORMAT_WITH_THINKING


def conversation_expert_messages(base: str, history: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """The conversation as the reference hands it to an expert, by model family: Qwen models get the
    format sentence (Qwen3 without thinking, and `/no_think` on user turns), GPT-5 models the plain
    system prompt and a nudge after the last message, others the plain system prompt."""
    name = model.lower()
    qwen3 = "qwen3" in name
    system = base
    if "qwen" in name:
        system += _FORMAT_NO_THINKING if qwen3 else _FORMAT_WITH_THINKING
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in history:
        if message.get("role") == "user" and qwen3:
            message = {**message, "content": f"{message.get('content') or ''}{NO_THINK}"}
        out.append(message)
    if "gpt-5" in name and len(out) > 1:
        last = out[-1]
        out[-1] = {**last, "content": f"{last.get('content') or ''}{GPT_EXPERT_NUDGE}"}
    return out

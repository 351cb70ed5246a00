"""The hermes / Qwen3 text format for thinking and tool calls.

Orchestrator-8B writes `<think>…</think>` and then one or more blocks

    <tool_call>
    {"name": "search", "arguments": {"model": "search-1"}}
    </tool_call>

When the server does not split these out (llama.cpp in process, or a server without a tool parser), the
backends parse them here. The parsers must never raise: a malformed call is data for the engine (an invalid
round), not a crash.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .base import ToolCall

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"

_CLOSED_CALL = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.DOTALL)

# Wording of the Qwen3 chat template's tool section (checked against the template text). The template puts
# it after the system content and "\n\n", or alone when there is no system message.
_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call>"
)


def split_thinking(text: str) -> tuple[str, str]:
    """Return (reasoning, rest) of a raw completion.

    Three shapes occur: `<think>r</think>rest`; `<think>r` cut off before the close (all reasoning); and
    `r</think>rest` when the chat template already opened `<think>` in the prompt. Newlines around the
    reasoning and before the rest are dropped, as the Qwen3 template does when it replays a turn.
    """
    try:
        stripped = text.lstrip()
        if stripped.startswith(THINK_OPEN):
            body = stripped[len(THINK_OPEN) :]
            reasoning, closed, rest = body.partition(THINK_CLOSE)
            if not closed:
                return body.strip("\n"), ""
            return reasoning.strip("\n"), rest.lstrip("\n")
        before, closed, rest = text.partition(THINK_CLOSE)
        if closed and THINK_OPEN not in before:
            return before.strip("\n"), rest.lstrip("\n")
        return "", text
    except Exception:  # defensive: the contract is "never raise"
        return "", text if isinstance(text, str) else ""


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Every `<tool_call>` block in order; a final unclosed block is parsed as far as it goes.

    Arguments are re-serialised with `json.dumps(..., ensure_ascii=False)` (what vLLM's hermes parser does,
    so both backends hand the engine identical text). A block that is not a JSON object with a string
    `name` becomes `ToolCall(name="", arguments=<raw block>)` so the engine can record it as invalid.
    """
    try:
        blocks = [m.group(1) for m in _CLOSED_CALL.finditer(text)]
        tail_start = text.rfind(CALL_CLOSE)
        tail = text[tail_start + len(CALL_CLOSE) :] if tail_start >= 0 else text
        open_at = tail.find(CALL_OPEN)
        if open_at >= 0:
            blocks.append(_drop_partial_close(tail[open_at + len(CALL_OPEN) :]))
        return [_parse_block(block) for block in blocks]
    except Exception:
        return []


def _drop_partial_close(block: str) -> str:
    """A stream cut inside the closing tag leaves e.g. `...}\n</tool_c`; that fragment is not JSON."""
    for cut in range(len(CALL_CLOSE) - 1, 0, -1):
        if block.endswith(CALL_CLOSE[:cut]):
            return block[:-cut]
    return block


def _parse_block(block: str) -> ToolCall:
    raw = block.strip()
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return ToolCall(name="", arguments=raw)
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ToolCall(name="", arguments=raw)
    return ToolCall(name=obj["name"], arguments=_arguments_text(obj.get("arguments", {})))


def _arguments_text(arguments: Any) -> str:
    # Some models write the arguments as an already-encoded JSON string; keep that text as written.
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def tools_system_preamble(tools: list[dict[str, Any]]) -> str:
    """The Qwen3 template's tool section, for GGUF templates that ignore `tools`.

    One JSON object per tool and line, serialised like the template's `tojson` filter (insertion order,
    non-ASCII kept).
    """
    lines = "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
    return _TOOLS_HEAD + lines + _TOOLS_TAIL


def with_tools_in_system(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with the tool preamble folded into the system message the way Qwen3 does it."""
    preamble = tools_system_preamble(tools)
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first.get('content') or ''}\n\n{preamble}"
        return [first, *messages[1:]]
    return [{"role": "system", "content": preamble}, *messages]


def hermes_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rewrite OpenAI-style tool traffic into plain text turns, as the Qwen3 template renders it.

    For chat templates that know nothing of tools: an assistant turn's `tool_calls` become `<tool_call>`
    blocks after its content, and consecutive `tool` messages become one user turn of `<tool_response>`
    blocks. Plain messages pass through with a None content turned into "".
    """
    out: list[dict[str, Any]] = []
    responses: list[str] = []

    def flush() -> None:
        if responses:
            out.append({"role": "user", "content": "\n".join(responses)})
            responses.clear()

    for message in messages:
        role = message.get("role")
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        if role == "tool":
            responses.append(f"<tool_response>\n{text}\n</tool_response>")
            continue
        flush()
        if role == "assistant" and message.get("tool_calls"):
            blocks = [_call_block(call) for call in message["tool_calls"]]
            text = "\n".join(([text] if text else []) + blocks)
        out.append({**{k: v for k, v in message.items() if k != "tool_calls"}, "content": text})
    flush()
    return out


def _call_block(call: dict[str, Any]) -> str:
    function = call.get("function", call) if isinstance(call, dict) else {}
    name = json.dumps(function.get("name", ""), ensure_ascii=False)
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return f'{CALL_OPEN}\n{{"name": {name}, "arguments": {arguments}}}\n{CALL_CLOSE}'

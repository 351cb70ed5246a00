"""An optional repair of the policy's broken tool calls. Off by default: the reference does no repair.

The reference consumes a round whose output holds no valid call and samples again (ORCHESTRATOR.md §2).
Small or quantised policies break the format in a few recurring ways that cost a whole round each time:

- a code fence around the JSON inside `<tool_call>` (```json … ```);
- Python-style quoting (`{'name': 'search', ...}`), trailing commas;
- a JSON object that stops before its last closing braces;
- a `<tool_call>` left open before the next one starts;
- a bare JSON call with no `<tool_call>` tags at all.

`repair_tool_calls` fixes only those, and only in blocks that do not parse; it never invents a call, a tool
name or an alias, and whether the repaired call is valid is still the engine's check. Every repair says what
it did, so the trajectory can record that the call that ran is not what the model wrote.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from .base import ToolCall
from .hermes import CALL_CLOSE, CALL_OPEN, _drop_partial_close, parse_tool_calls, split_thinking

MAX_BLOCK_CHARS = 20_000  # a tool call is a few dozen characters; anything huge is not a call to repair

# A block runs from its open tag to its close tag, to the next open tag, or to the end of the text.
_BLOCK = re.compile(re.escape(CALL_OPEN) + r"(.*?)(" + re.escape(CALL_CLOSE) + r"|(?=" + re.escape(CALL_OPEN)
                    + r")|\Z)", re.DOTALL)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


@dataclass(frozen=True)
class Repair:
    text: str  # the content with its calls repaired
    calls: list[ToolCall]  # parsed from `text`, as the backend would have
    fixes: tuple[str, ...]  # what was done, in words, in order

    @property
    def note(self) -> str:
        return "; ".join(self.fixes)


def _call_object(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("name"), str) else None


def _close_brackets(text: str) -> str:
    """Append the closers of every bracket still open at the end (outside strings)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack and stack[-1] == char:
            stack.pop()
    return text if in_string else text + "".join(reversed(stack))


def _python_literal(text: str) -> str | None:
    try:
        value = ast.literal_eval(text)  # literals only: nothing is executed
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return None  # a set, bytes or a complex number is no JSON call


def _fix_json(raw: str) -> tuple[str, list[str]] | None:
    """The block's JSON text made parseable, and the fixes that took; None when none is enough."""
    text, fixes = raw.strip(), []
    if len(text) > MAX_BLOCK_CHARS:
        return None
    if (fenced := _FENCE.match(text)) is not None:
        text = fenced.group(1).strip()
        fixes.append("removed a code fence around the call")
        if _call_object(text):
            return text, fixes
    steps = (
        (lambda t: _TRAILING_COMMA.sub(r"\1", t), "removed trailing commas"),
        (_close_brackets, "closed brackets the call left open"),
    )
    for step, what in steps:
        changed = step(text)
        if changed != text:
            text = changed
            fixes.append(what)
            if _call_object(text):
                return text, fixes
    literal = _python_literal(text)
    if literal is not None and _call_object(literal):
        return literal, [*fixes, "rewrote Python-style quoting as JSON"]
    return None


def _block(body: str) -> str:
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def _repair_blocks(content: str) -> tuple[str, list[str]]:
    pieces, fixes, last = [], [], 0
    for match in _BLOCK.finditer(content):
        inner, ending = match.group(1), match.group(2)
        pieces.append(content[last : match.start()])
        last = match.end()
        stopped_by_next_open = not ending and match.end() < len(content)
        if not ending:  # the parser drops a close tag cut short at the end; so does the repair
            inner = _drop_partial_close(inner)
        if _call_object(inner.strip()):
            if not stopped_by_next_open:
                pieces.append(match.group(0))  # parses as it is: never touched
                continue
            body, what = inner.strip(), []
        elif (fixed := _fix_json(inner)) is not None:
            body, what = fixed
        else:
            pieces.append(match.group(0))  # beyond repair: the engine rejects it as written
            continue
        fixes.extend(what)
        if stopped_by_next_open:
            fixes.append("closed a <tool_call> left open before the next one")
        pieces.append(_block(body))
    pieces.append(content[last:])
    return "".join(pieces), fixes


def _leading_object(text: str) -> str | None:
    """The JSON call at the start of `text`, ignoring whatever follows it."""
    try:
        obj, end = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return None
    return text[:end] if isinstance(obj, dict) and isinstance(obj.get("name"), str) else None


def _wrap_bare_call(content: str) -> tuple[str, list[str]]:
    """A JSON call written after the thinking with no tags: wrap it, as the tags were plainly meant."""
    _, rest = split_thinking(content)  # `rest` is always a suffix of the content
    start = rest.find("{")
    if start < 0:
        return content, []
    candidate = rest[start:].rstrip().removesuffix("```").strip()
    body, fixes = _leading_object(candidate), []
    if body is None:
        fixed = _fix_json(candidate)
        if fixed is None:
            return content, []
        body, fixes = fixed
    head = content[: len(content) - len(rest)]
    before = re.sub(r"```[A-Za-z0-9_-]*\s*$", "", rest[:start])  # the fence opened around the call goes too
    return head + before + _block(body), [*fixes, "wrapped a bare JSON call in <tool_call> tags"]


def repair_tool_calls(content: str) -> Repair | None:
    """The content with its broken calls repaired, or None when there is nothing to repair (every call
    parses) or nothing that could be. Never raises."""
    try:
        if not isinstance(content, str) or not content.strip():
            return None
        if CALL_OPEN in content:
            text, fixes = _repair_blocks(content)
        else:
            text, fixes = _wrap_bare_call(content)
        if not fixes:
            return None
        # Every fix above leaves a block that parses as a named call, so `calls` holds at least one.
        return Repair(text, parse_tool_calls(text), tuple(fixes))
    except Exception:  # the contract is "never raise": a failed repair is just no repair
        return None

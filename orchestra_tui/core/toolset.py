"""The orchestra tool list (the reference `tools.json`, verbatim) and the rules for a valid call.

A call is valid when its name is one of the three tools and its `model` argument is one of that tool's
aliases (ORCHESTRATOR.md §2). Validation is against every tool the catalog knows, as the reference does
(FRAMES stops offering `search` once documents exist, yet still runs a `search` call if one comes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from orchestra_tui.backends.base import ToolCall
from orchestra_tui.paths import data_dir

# The reference's own table of aliases per tool, in its order.
REFERENCE_ALIASES: dict[str, tuple[str, ...]] = {
    "enhance_reasoning": ("reasoner-1", "reasoner-2", "reasoner-3"),
    "answer": ("answer-math-1", "answer-math-2", "answer-1", "answer-2", "answer-3", "answer-4"),
    "search": ("search-1", "search-2", "search-3"),
}
TOOL_NAMES: tuple[str, ...] = tuple(REFERENCE_ALIASES)


def tool_of_alias(alias: str) -> str | None:
    for tool, aliases in REFERENCE_ALIASES.items():
        if alias in aliases:
            return tool
    return None


def reference_tools_path() -> Path:
    return data_dir("tools") / "toolorchestra" / "tools.json"


@cache
def _load(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_tools(path: Path | None = None) -> list[dict[str, Any]]:
    """A fresh copy of the tool list (callers may filter it)."""
    return json.loads(_load(path or reference_tools_path()))


def tools_hash(tools: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(tools, sort_keys=True).encode()).hexdigest()[:16]


def offered_tools(tools: list[dict[str, Any]], *, have_documents: bool, one_search: bool) -> list[dict[str, Any]]:
    """FRAMES offers `search` only until the first document arrives."""
    if one_search and have_documents:
        return [t for t in tools if t["function"]["name"] != "search"]
    return list(tools)


@dataclass(frozen=True)
class CheckedCall:
    raw: ToolCall
    tool: str | None = None
    alias: str | None = None
    arguments: dict[str, Any] | None = None
    problem: str | None = None  # why it is invalid; None when valid

    @property
    def valid(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.raw.name, "arguments": self.raw.arguments, "problem": self.problem}


def check_call(call: ToolCall, aliases: dict[str, tuple[str, ...]]) -> CheckedCall:
    if call.name not in aliases:
        return CheckedCall(call, problem=f"unknown tool {call.name!r}")
    try:
        arguments = json.loads(call.arguments) if call.arguments else {}
    except (json.JSONDecodeError, TypeError, RecursionError):
        return CheckedCall(call, tool=call.name, problem="arguments are not valid JSON")
    if not isinstance(arguments, dict) or "model" not in arguments:
        return CheckedCall(call, tool=call.name, problem="missing required argument 'model'")
    alias = arguments["model"]
    if not isinstance(alias, str) or alias not in aliases[call.name]:
        return CheckedCall(call, tool=call.name, problem=f"{alias!r} is not an alias of {call.name}")
    return CheckedCall(call, tool=call.name, alias=alias, arguments=arguments)


def first_valid(calls: list[CheckedCall]) -> tuple[CheckedCall | None, list[CheckedCall]]:
    """The call that runs (the first valid one) and every other call of the round."""
    for i, call in enumerate(calls):
        if call.valid:
            return call, calls[:i] + calls[i + 1 :]
    return None, list(calls)

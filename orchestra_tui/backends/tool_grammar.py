"""A GBNF grammar that admits exactly one hermes tool call for a given tool list.

Used when a small model must be made to produce a well-formed call (`constrain_tool_call=True`): the
output is forced to be

    <tool_call>
    {"name": <one of the tool names>, "arguments": <that tool's parameters>}
    </tool_call>

The JSON part comes from llama.cpp's JSON-schema converter over a `oneOf` with one branch per tool, so the
arguments always match the tool they belong to.

The reference tools carry their alias list only in prose ("Choices: ['search-1', 'search-2']" inside the
description of the `model` argument) and declare it as a free string. A grammar over a free string lets a
small model invent aliases, so string properties whose description states such a list are narrowed to an
`enum` here. Only the grammar sees the narrowed schema; the prompt keeps the tools exactly as given.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from typing import Any

from .hermes import CALL_CLOSE, CALL_OPEN

_CHOICES = re.compile(r"Choices:\s*(\[[^\]]*\])")
_JSON_RULE = "tool-call-json"


def choices_in_description(description: str) -> list[str] | None:
    """The list after `Choices:` in a description, when it is a literal list of strings."""
    match = _CHOICES.search(description or "")
    if not match:
        return None
    try:
        value = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def narrowed_parameters(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """The tool's parameter schema with prose choice lists turned into enums and no extra properties."""
    schema = copy.deepcopy(parameters) if isinstance(parameters, dict) else {}
    schema.setdefault("type", "object")
    schema.pop("title", None)  # cosmetic; keeps the generated rule names short
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for prop in properties.values():
            if not isinstance(prop, dict) or prop.get("type") != "string" or "enum" in prop:
                continue
            choices = choices_in_description(prop.get("description", ""))
            if choices:
                prop["enum"] = choices
    # Without this the converter admits arbitrary extra keys, which a small model happily fills.
    schema.setdefault("additionalProperties", False)
    return schema


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    return tool.get("function", tool) if isinstance(tool, dict) else {}


def tool_call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON schema of one call: `{"name": const, "arguments": params}` for exactly one of the tools."""
    branches = []
    for tool in tools:
        function = _function(tool)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            continue
        branches.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": name},
                    "arguments": narrowed_parameters(function.get("parameters")),
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    if not branches:
        raise ValueError("constrained tool call needs at least one named tool")
    return branches[0] if len(branches) == 1 else {"oneOf": branches}


def _gbnf_literal(text: str) -> str:
    return json.dumps(text)  # GBNF string literals use the same escapes as JSON for these characters


def tool_call_gbnf(tools: list[dict[str, Any]]) -> str:
    """GBNF text for exactly one `<tool_call>` block calling one of `tools`."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf  # converter ships with llama-cpp-python

    json_grammar = json_schema_to_gbnf(json.dumps(tool_call_schema(tools)), ["name", "arguments"])
    # The converter names its top rule `root`; rename it so our wrapper can be the root.
    renamed = re.sub(r"^root ::=", f"{_JSON_RULE} ::=", json_grammar, count=1, flags=re.MULTILINE)
    if renamed == json_grammar:
        raise RuntimeError("unexpected grammar from the JSON-schema converter: no root rule")
    head = _gbnf_literal(CALL_OPEN + "\n")
    tail = _gbnf_literal("\n" + CALL_CLOSE)
    return f"root ::= {head} {_JSON_RULE} {tail}\n{renamed}\n"

"""Function tools declared in TOML for the conversational mode (docs/FUNCTION_TOOLS.md).

A declarations file holds an optional domain `policy`, an optional `[call_expert]` table and a list of
`[[tools]]`, each with a name, a description, a JSON-schema `parameters` object and exactly one executor:

- `python = "package.module:function"` — called in this process with the arguments as keyword
  arguments (sync functions in a worker thread, so the UI keeps drawing); it is the user's own code.
- `http = {url, method, headers_env, timeout_s}` — the arguments are the JSON body (query for GET); the
  response's JSON or text is the result. Header values come from environment variables, named in the
  file, so no secret is ever written there.
- `command = ["prog", "{arg}", ...]` — a program started without a shell, in the sandbox; `{name}` in
  an element is replaced by that argument (see function_runner.py for how it runs).

Everything is checked at load time and a bad file gives one line naming the file and the key. Running
the tools is function_runner.py.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import re
import shutil
import sys

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import jsonschema

from orchestra_tui.core.tomlfile import TomlFileError, read_toml
from orchestra_tui.paths import data_dir

_TOP_KEYS = ("policy", "python_path", "call_expert", "tools")
_TOOL_KEYS = ("name", "description", "parameters", "http", "python", "command", "timeout_s", "price_per_call",
              "max_result_chars")
_EXECUTORS = ("http", "python", "command")
_HTTP_KEYS = ("url", "method", "headers_env", "timeout_s")
_EXPERT_KEYS = ("enabled", "experts")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)\}")  # {name}, and {{ / }} for literal braces
RESERVED = ("call_expert",)
# The reference maps expert-1/2/3 to gpt-5 / gpt-5-mini / Qwen3-32B: the models of these catalog aliases.
DEFAULT_EXPERT_ALIASES = {"expert-1": "answer-1", "expert-2": "answer-2", "expert-3": "answer-4"}
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RESULT_CHARS = 16000  # a runaway result would crowd the conversation out of the context


class FunctionToolError(ValueError):
    """A declarations file is wrong; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class HttpExecutor:
    url: str
    method: str = "POST"
    headers_env: Mapping[str, str] = field(default_factory=dict)  # header → environment variable


@dataclass(frozen=True)
class PythonExecutor:
    target: str
    function: Callable[..., Any]


@dataclass(frozen=True)
class CommandExecutor:
    argv: tuple[str, ...]  # as declared, placeholders included
    program: str  # argv[0] resolved to an absolute path at load time


Executor = HttpExecutor | PythonExecutor | CommandExecutor


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str
    parameters: dict[str, Any]
    executor: Executor
    timeout_s: float = DEFAULT_TIMEOUT_S
    price_per_call: Decimal | None = None
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS

    @property
    def kind(self) -> str:
        return {HttpExecutor: "http", PythonExecutor: "python", CommandExecutor: "command"}[type(self.executor)]

    @property
    def target(self) -> str:
        executor = self.executor
        if isinstance(executor, HttpExecutor):
            return f"{executor.method} {executor.url}"
        if isinstance(executor, PythonExecutor):
            return executor.target
        return executor.program

    @property
    def service(self) -> str:
        """The price-book service name this tool is charged under."""
        return f"function:{self.name}"

    def schema(self) -> dict[str, Any]:
        """The tool as the policy sees it (OpenAI function format)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True)
class FunctionToolSet:
    path: Path
    digest: str
    tools: tuple[FunctionTool, ...]
    policy: str | None = None
    call_expert: bool = True
    expert_aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EXPERT_ALIASES))

    def get(self, name: str) -> FunctionTool | None:
        return next((t for t in self.tools if t.name == name), None)

    def price_table(self) -> dict[str, Any]:
        """A `[services]` table for PriceBook.merge: the tools that declare a price; the rest stay unpriced."""
        return {"services": {t.service: {"per_call": str(t.price_per_call), "source": self.path.name}
                             for t in self.tools if t.price_per_call is not None}}


# --- loading --------------------------------------------------------------------------------------


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _check_keys(where: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise FunctionToolError(f"{where}: unknown key {key!r}{_suggest(key, allowed)}")


def one_line(text: str) -> str:
    """Any text as one line (error messages must be one line)."""
    return " ".join(str(text).split())


def _number(where: str, value: Any, *, whole: bool = False) -> Any:
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise FunctionToolError(f"{where}: expected a {'whole ' if whole else ''}number > 0, got {value!r}")
    return value


def _parameters(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FunctionToolError(f"{where}: expected a JSON-schema object (a TOML table), got {value!r}")
    try:
        jsonschema.validators.validator_for(value).check_schema(value)
    except jsonschema.SchemaError as exc:
        at = ".".join(str(p) for p in exc.path)
        raise FunctionToolError(f"{where}{'.' + at if at else ''}: not a valid JSON schema: "
                                f"{one_line(exc.message)}") from None
    if value.get("type") != "object":
        raise FunctionToolError(f"{where}.type: the parameters must be a schema of type \"object\"")
    return value


def _python(where: str, value: Any) -> PythonExecutor:
    if not isinstance(value, str) or not _TARGET.match(value):
        raise FunctionToolError(f"{where}: expected \"package.module:function\", got {value!r}")
    module_name, _, attribute = value.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may fail in any way while importing
        raise FunctionToolError(f"{where}: cannot import {module_name!r} ({type(exc).__name__}: "
                                f"{one_line(exc)})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise FunctionToolError(f"{where}: {module_name!r} has no function {attribute!r}")
    return PythonExecutor(value, function)


def _http(where: str, value: Any) -> HttpExecutor:
    if not isinstance(value, dict):
        raise FunctionToolError(f"{where}: expected a table {{url = ..., method = ...}}, got {value!r}")
    _check_keys(where, value, _HTTP_KEYS)
    url = value.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise FunctionToolError(f"{where}.url: expected an http:// or https:// URL, got {url!r}")
    method = str(value.get("method", "POST")).upper()
    if method not in ("POST", "GET", "PUT", "PATCH", "DELETE"):
        raise FunctionToolError(f"{where}.method: {method!r} is not one of POST, GET, PUT, PATCH, DELETE")
    headers = value.get("headers_env", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) and v for v in headers.values()):
        raise FunctionToolError(f"{where}.headers_env: expected a table of Header = \"ENV_VAR_NAME\"")
    return HttpExecutor(url, method, dict(headers))


def command_executor(value: Any, parameters: Mapping[str, Any]) -> CommandExecutor:
    """Check a declared argv (raises ValueError with a one-line reason)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError('expected a list of strings, e.g. ["program", "{argument}"]')
    known = set((parameters.get("properties") or {}).keys())
    for element in value:
        for match in PLACEHOLDER.finditer(element):
            if match.group(1) is not None and match.group(1) not in known:
                raise ValueError(f"placeholder {match.group(0)} names no declared parameter")
    if PLACEHOLDER.search(value[0]):
        raise ValueError("the program (first element) cannot come from the arguments")
    program = shutil.which(value[0])
    if program is None:
        raise ValueError(f"program {value[0]!r} is not found (not on PATH, or not executable)")
    return CommandExecutor(tuple(value), str(Path(program).resolve()))


def _tool(where: str, table: Any, seen: set[str]) -> FunctionTool:
    if not isinstance(table, dict):
        raise FunctionToolError(f"{where}: expected a table")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise FunctionToolError(f"{where}.name: expected a name of letters, digits, _ or - (at most 64, not "
                                f"starting with a digit), got {name!r}")
    where = f"{where} ({name})"
    _check_keys(where, table, _TOOL_KEYS)
    if name in RESERVED:
        raise FunctionToolError(f"{where}.name: {name!r} is reserved for the experts")
    if name in seen:
        raise FunctionToolError(f"{where}.name: {name!r} is declared twice")
    description = table.get("description")
    if not isinstance(description, str) or not description.strip():
        raise FunctionToolError(f"{where}.description: a non-empty description is required (the model reads it)")
    parameters = _parameters(f"{where}.parameters", table.get("parameters", {"type": "object", "properties": {}}))
    chosen = [key for key in _EXECUTORS if key in table]
    if len(chosen) != 1:
        found = ", ".join(chosen) or "none"
        raise FunctionToolError(f"{where}: exactly one executor (http, python or command) is needed, found {found}")
    kind = chosen[0]
    executor: Executor
    if kind == "python":
        executor = _python(f"{where}.python", table["python"])
    elif kind == "http":
        executor = _http(f"{where}.http", table["http"])
    else:
        try:
            executor = command_executor(table["command"], parameters)
        except ValueError as exc:
            raise FunctionToolError(f"{where}.command: {exc}") from None
    timeout, timeout_key = table.get("timeout_s"), f"{where}.timeout_s"
    if timeout is None and kind == "http":
        timeout, timeout_key = table["http"].get("timeout_s"), f"{where}.http.timeout_s"
    timeout = DEFAULT_TIMEOUT_S if timeout is None else _number(timeout_key, timeout)
    price = None
    if "price_per_call" in table:
        try:
            price = Decimal(str(table["price_per_call"]))
        except InvalidOperation:
            price = None
        if price is None or not price.is_finite() or price < 0:
            raise FunctionToolError(f"{where}.price_per_call: expected an amount in USD >= 0, "
                                    f"got {table['price_per_call']!r}")
    cap = _number(f"{where}.max_result_chars", table.get("max_result_chars", DEFAULT_MAX_RESULT_CHARS), whole=True)
    seen.add(name)
    return FunctionTool(name, description, parameters, executor, float(timeout), price, cap)


def _call_expert(where: str, table: Any) -> tuple[bool, dict[str, str]]:
    if not isinstance(table, dict):
        raise FunctionToolError(f"{where}: expected a table")
    _check_keys(where, table, _EXPERT_KEYS)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise FunctionToolError(f"{where}.enabled: expected true or false, got {enabled!r}")
    aliases = dict(DEFAULT_EXPERT_ALIASES)
    given = table.get("experts", {})
    if not isinstance(given, dict):
        raise FunctionToolError(f"{where}.experts: expected a table of expert-N = \"alias\"")
    for expert, alias in given.items():
        if expert not in DEFAULT_EXPERT_ALIASES:
            raise FunctionToolError(f"{where}.experts: unknown expert {expert!r}"
                                    f"{_suggest(expert, tuple(DEFAULT_EXPERT_ALIASES))}")
        if not isinstance(alias, str) or not alias:
            raise FunctionToolError(f"{where}.experts.{expert}: expected a catalog alias, got {alias!r}")
        aliases[expert] = alias
    return enabled, aliases


def parse_function_tools(data: Mapping[str, Any], path: Path, digest: str = "") -> FunctionToolSet:
    where = path.name
    _check_keys(where, data, _TOP_KEYS)
    policy = data.get("policy")
    if policy is not None and not isinstance(policy, str):
        raise FunctionToolError(f"{where}: policy: expected a string")
    extra_paths = data.get("python_path", [])
    if not isinstance(extra_paths, list) or not all(isinstance(p, str) for p in extra_paths):
        raise FunctionToolError(f"{where}: python_path: expected a list of folders")
    for folder in extra_paths:  # relative to the file, so a tools module can sit beside its declarations
        resolved = str((path.parent / folder).resolve())
        if resolved not in sys.path:
            sys.path.insert(0, resolved)
    enabled, aliases = _call_expert(f"{where}: call_expert", data.get("call_expert", {}))
    tables = data.get("tools", [])
    if not isinstance(tables, list):
        raise FunctionToolError(f"{where}: tools: declare each tool as a [[tools]] table")
    seen: set[str] = set()
    tools = tuple(_tool(f"{where}: tools[{i}]", table, seen) for i, table in enumerate(tables))
    if not tools and not enabled:
        raise FunctionToolError(f"{where}: no [[tools]] declared and call_expert disabled: nothing to call")
    return FunctionToolSet(path, digest, tools, policy, enabled, aliases)


def functions_path(name_or_path: str | Path) -> Path:
    """A TOML file, or the name of a shipped one (`example` is tools/functions/example.toml)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    shipped = data_dir("tools") / "functions" / f"{name_or_path}.toml"
    return shipped if shipped.is_file() else candidate


def load_function_tools(path: str | Path) -> FunctionToolSet:
    path = functions_path(path)
    try:
        data, raw = read_toml(path)
    except TomlFileError as exc:
        raise FunctionToolError(str(exc)) from None
    return parse_function_tools(data, path, hashlib.sha256(raw).hexdigest()[:16])

"""Running declared function tools (function_tools.py holds the declarations).

The model's arguments are validated against the tool's schema first; every failure — bad JSON, a schema
violation, an exception in the user's function, an HTTP error, a non-zero exit — becomes an `Error: ...`
tool result the model can read (as τ²-bench does), never an exception in the loop.

`command` tools: the declaration is an argv list; `{name}` in an element is replaced by that argument
(strings as they are, anything else as JSON; an absent optional argument by ""), `{{` and `}}` stand for
braces. No shell ever sees the text, so quoting tricks in the model's arguments cannot start other programs; a value may
still begin with "-", so declare a `--` before free-text arguments when the program supports it. The whole
argument object is also passed as JSON in the environment variable TOOL_ARGUMENTS.

Where bubblewrap works, the program runs in the same container as model-written Python (services/
sandbox.py): no network, no host files beyond the read-only system folders, an unprivileged uid and the
same rlimits. So the program must live under /usr (the only host folder the sandbox shows). Without a
working sandbox a command is not run, unless the user started with --unsafe-commands: then it runs as a
plain subprocess with a timeout, a throw-away working folder and an allow-listed environment — as this
user, with this user's files and network. The result says which runner ran it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from orchestra_tui.core.function_tools import (
    PLACEHOLDER, CommandExecutor, FunctionTool, HttpExecutor, PythonExecutor, one_line,
)
from orchestra_tui.keys import KEYS
from orchestra_tui.services.code_runner import DRAIN_GRACE_S, PASSED_ENV, OutputCollector, kill_group
from orchestra_tui.services.sandbox import INSTALL_HINT, BubblewrapRunner, SandboxLimits, SandboxProbe, probe_sandbox
from orchestra_tui.services.sandbox_layout import SYSTEM_DIRS

ARGUMENTS_ENV = "TOOL_ARGUMENTS"
OUTPUT_CAP = 1_000_000
# A command enforces its own timeout and reports how it ended; the outer timeout only backs it up, with
# room for the one-time sandbox probe and for draining the pipes.
_COMMAND_SLACK_S = 30.0


@dataclass(frozen=True)
class CallResult:
    content: str  # what goes into the `role: "tool"` message
    ok: bool
    seconds: float
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _capped(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + f"\n[truncated: {len(text) - cap} more characters]"


class FunctionRunner:
    """Runs declared tools. `env` is where header secrets are read; `commands` runs `command` tools."""

    def __init__(self, *, commands: CommandRunner | None = None, env: Mapping[str, str] | None = None) -> None:
        self.commands = commands or CommandRunner()
        self.env = KEYS if env is None else env

    async def call(self, tool: FunctionTool, raw_arguments: str) -> CallResult:
        started = time.monotonic()
        try:
            arguments = json.loads(raw_arguments or "{}")
        except (ValueError, RecursionError) as exc:
            return self._error(started, f"the arguments are not valid JSON ({one_line(exc)})")
        if not isinstance(arguments, dict):
            return self._error(started, "the arguments must be a JSON object")
        problem = next(iter(jsonschema.validators.validator_for(tool.parameters)(tool.parameters)
                            .iter_errors(arguments)), None)
        if problem is not None:
            at = ".".join(str(p) for p in problem.path)
            return self._error(started, f"invalid arguments{' at ' + at if at else ''}: {one_line(problem.message)}")
        limit = tool.timeout_s + (_COMMAND_SLACK_S if tool.kind == "command" else 0)
        try:
            text, detail = await asyncio.wait_for(self._dispatch(tool, arguments), limit)
        except asyncio.TimeoutError:
            return self._error(started, f"{tool.name} did not finish within {tool.timeout_s:g} s")
        except _ToolFailed as exc:
            return self._error(started, str(exc), exc.detail)
        except Exception as exc:  # the user's function raised: the model reads it, the loop goes on
            return self._error(started, f"{type(exc).__name__}: {one_line(exc)}")
        return CallResult(_capped(text, tool.max_result_chars), True, time.monotonic() - started, None, detail)

    @staticmethod
    def _error(started: float, message: str, detail: dict[str, Any] | None = None) -> CallResult:
        # τ²-bench hands tool errors back to the model as the message content.
        return CallResult(f"Error: {message}", False, time.monotonic() - started, message, detail or {})

    async def _dispatch(self, tool: FunctionTool, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        executor = tool.executor
        if isinstance(executor, PythonExecutor):
            if inspect.iscoroutinefunction(executor.function):
                value = await executor.function(**arguments)
            else:
                value = await asyncio.to_thread(executor.function, **arguments)
            return _as_text(value), {}
        if isinstance(executor, HttpExecutor):
            return await self._http(executor, arguments, tool.timeout_s)
        result = await self.commands.run(executor, arguments, timeout_s=tool.timeout_s)
        if not result.ok:
            raise _ToolFailed(result.error or "the command failed", result.detail)
        return result.stdout, result.detail

    async def _http(self, executor: HttpExecutor, arguments: dict[str, Any], timeout_s: float
                    ) -> tuple[str, dict[str, Any]]:
        import httpx

        headers = {}
        for header, variable in executor.headers_env.items():
            value = self.env.get(variable)
            if not value:
                raise _ToolFailed(f"{variable} is not set (needed for the {header} header)")
            headers[header] = value
        body = {"params": arguments} if executor.method in ("GET", "DELETE") else {"json": arguments}
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                response = await client.request(executor.method, executor.url, headers=headers, **body)
        except httpx.HTTPError as exc:
            raise _ToolFailed(f"{httpx.URL(executor.url).host} did not answer ({type(exc).__name__})") from None
        detail = {"http_status": response.status_code}
        if response.status_code >= 400:
            raise _ToolFailed(f"HTTP {response.status_code}: {one_line(response.text)[:500]}", detail)
        if "json" in response.headers.get("content-type", ""):
            try:
                return _as_text(response.json()), detail
            except ValueError:
                pass
        return response.text, detail


class _ToolFailed(Exception):
    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


# --- commands --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    stdout: str
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def render_argv(executor: CommandExecutor, arguments: Mapping[str, Any]) -> list[str]:
    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        item = arguments.get(match.group(1))
        if item is None:
            return ""
        return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)

    return [executor.program, *(PLACEHOLDER.sub(value, element) for element in executor.argv[1:])]


def visible_in_sandbox(program: str) -> bool:
    path = Path(program).resolve()
    return any(Path(d) in path.parents for d in SYSTEM_DIRS)


class _SandboxedCommand(BubblewrapRunner):
    """The Python sandbox's container with the declared program in place of the Python snippet: the
    runner's command line ends `-- LAUNCHER LIMITS -- python snippet.py`, and only that last part changes,
    so the namespaces, mounts, rlimits and privilege drop stay exactly the sandbox's."""

    def __init__(self, argv: list[str], extra_env: dict[str, str], limits: SandboxLimits | None) -> None:
        super().__init__(limits)
        self._argv = argv
        self._extra_env = extra_env

    @contextlib.contextmanager
    def _command(self, code: str) -> Iterator[tuple[list[str], list[int]]]:
        with super()._command(code) as (argv, fds):
            cut = len(argv) - 1 - argv[::-1].index("--")
            yield [*argv[: cut + 1], *self._argv], fds

    def _environment(self) -> dict[str, str]:
        return {**super()._environment(), **self._extra_env}


class CommandRunner:
    """Runs `command` tools: sandboxed when bubblewrap works, bare only when `unsafe` allows it."""

    def __init__(self, *, unsafe: bool = False, probe: SandboxProbe | None = None,
                 limits: SandboxLimits | None = None) -> None:
        self.unsafe = unsafe
        self.limits = limits
        self._probe = probe

    async def _sandbox(self) -> SandboxProbe:
        if self._probe is None:  # starts one real container; done once, off the event loop
            self._probe = await asyncio.to_thread(probe_sandbox)
        return self._probe

    async def run(self, executor: CommandExecutor, arguments: Mapping[str, Any], *, timeout_s: float
                  ) -> CommandResult:
        argv = render_argv(executor, arguments)
        env = {ARGUMENTS_ENV: json.dumps(arguments, ensure_ascii=False)}
        probe = await self._sandbox()
        if probe.kind == "bubblewrap":
            if not visible_in_sandbox(executor.program):
                return CommandResult(False, "", f"{executor.program} is outside the folders the sandbox shows "
                                                f"({', '.join(SYSTEM_DIRS)}); install the program there")
            result = await _SandboxedCommand(argv, env, self.limits).run("", timeout_s=timeout_s)
            stdout, stderr, code, timed_out, runner = (result.stdout, result.stderr, result.exit_code,
                                                       result.timed_out, result.runner)
        elif self.unsafe:
            stdout, stderr, code, timed_out = await _run_bare(argv, env, timeout_s)
            runner = "unsandboxed-subprocess"
        else:
            # The Landlock layer confines model-written Python only; declared programs need bubblewrap.
            why = ("only the Landlock layer works here, and it runs Python snippets, not programs"
                   if probe.kind == "landlock" else f"no sandbox is available ({probe.detail})")
            return CommandResult(False, "", f"not run: {why}; install bubblewrap (`{INSTALL_HINT}`) or allow "
                                            "unsandboxed commands (--unsafe-commands)", {"runner": "unavailable"})
        detail = {"runner": runner, "exit_code": code, "timed_out": timed_out}
        if timed_out:
            return CommandResult(False, stdout, f"the command did not finish within {timeout_s:g} s", detail)
        if code != 0:
            tail = " ".join(stderr.split())[-500:]
            return CommandResult(False, stdout, f"exit status {code}{': ' + tail if tail else ''}", detail)
        return CommandResult(True, stdout, None, detail)


async def _run_bare(argv: list[str], extra_env: dict[str, str], timeout_s: float) -> tuple[str, str, int | None, bool]:
    """A plain subprocess: its own session (killed as a group), a throw-away folder, only PASSED_ENV."""
    loop = asyncio.get_running_loop()
    workdir = tempfile.mkdtemp(prefix="orchestra-command-")
    env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=workdir, **extra_env)
    try:
        transport, collector = await loop.subprocess_exec(
            lambda: OutputCollector(loop, OUTPUT_CAP), *argv, cwd=workdir, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            timed_out = await collector.wait_for_exit(timeout_s)
        finally:
            kill_group(transport.get_pid())
            await collector.wait_for_pipes(DRAIN_GRACE_S)
            transport.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    code = None if timed_out else transport.get_returncode()
    return collector.streams[1].text(), collector.streams[2].text(), code, timed_out

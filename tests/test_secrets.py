"""The canary: an API key made up at run time is really used, then looked for in every output of a run.

A full episode in process (the key goes to the loopback server, which echoes it back inside error
messages), then the CLI in a subprocess (`run --json`, `replay --print`, `export` where it exists). The
trajectory, the log records, stdout and stderr, the headless printer's lines, every file the app wrote and
the environment of sandboxed code must not hold the key.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
import uuid
from pathlib import Path

import pytest
from engine_helpers import ListRetriever
from fault_server import FaultServer, Request, error_event, ok, status

from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text
from orchestra_tui.console import Printer
from orchestra_tui.core import events as ev
from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.session import Session, SessionOptions
from orchestra_tui.services.sandbox import make_code_runner

KEY_ENV = "ORCHESTRA_TUI_TEST_REMOTE_KEY"
ROOT = Path(__file__).resolve().parents[1]

# Prints what a snippet can find of its host: its whole environment and its parent's.
SNOOP = """Looking around.
```python
import os
print(sorted(os.environ.items()))
try:
    print(open(f"/proc/{os.getppid()}/environ", "rb").read())
except OSError as error:
    print("parent environ:", error)
```"""


@pytest.fixture
def canary(monkeypatch) -> str:
    key = "sk-" + "canary" + uuid.uuid4().hex  # built here, so it exists in no file of the project
    monkeypatch.setenv(KEY_ENV, key)
    return key


def catalog_file(folder: Path, base_url: str) -> Path:
    path = folder / "remote.toml"
    path.write_text(f"""
[catalog]
name = "remote"

[backends.policy]
kind = "openai"
base_url = "{base_url}"
model = "Qwen/Qwen3-8B"
api_key_env = "{KEY_ENV}"

[backends.remote]
kind = "openai"
base_url = "{base_url}"
model = "gpt-5"
api_key_env = "{KEY_ENV}"
max_attempts = 1

[policy]
backend = "policy"
max_tokens = 200

[expert_defaults]
backend = "remote"
max_tokens = 200
doc_chars = 1000
code_tokens = 1000
context_tokens = 2000

[experts.reasoner-1]
[experts.answer-1]
answer_style = "gpt"

[retrieval]
kind = "remote"  # built, never asked: the catalog maps no search alias
url = "{base_url}"

[code]
timeout_s = 20
""", encoding="utf-8")
    return path


def echo_key(request: Request) -> str:
    return f"invalid credentials: {request.headers.get('authorization')}"


def assert_key_sent(server: FaultServer, key: str, at_least: int) -> None:
    """The canary proves nothing unless the key was really used."""
    sent = [r.headers.get("authorization") for r in server.chat_requests]
    assert len(sent) >= at_least and set(sent) == {f"Bearer {key}"}


def assert_nowhere(key: str, outputs: dict[str, str]) -> None:
    leaks = [name for name, text in outputs.items() if key in text]
    assert leaks == [], f"the key leaked into: {leaks}"


async def test_an_episode_never_writes_the_key(tmp_path, canary, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included, at their most talkative
    script = [
        lambda request: error_event(echo_key(request)),  # a server quoting the key inside the stream
        lambda request: status(500, retry_after="0", message=echo_key(request)),
        ok(SNOOP),
        ok("<answer>Paris</answer>"),
    ]
    screen = io.StringIO()
    async with FaultServer(script) as server:
        catalog = load_catalog(catalog_file(tmp_path, server.base_url))
        policy = ScriptedBackend([tool_call_text("enhance_reasoning", "reasoner-1")] * 3
                                 + [tool_call_text("answer", "answer-1")])
        session = Session(
            SessionOptions(catalog=catalog.path, trajectory=tmp_path / "t.jsonl"),
            catalog=catalog,
            backends={"policy": policy},
            retriever=ListRetriever([]),
            code_runner=make_code_runner(),
        )
        session.listeners.append(Printer(screen))
        try:
            events = [e async for e in session.ask("What is the capital of France?")]
        finally:
            await session.aclose()
    assert_key_sent(server, canary, 4)
    assert (events[-1].status, events[-1].answer) == ("answered", "Paris")
    errors = [e.error for e in events if isinstance(e, ev.ToolCallFinished) and e.error]
    assert len(errors) == 2 and "invalid credentials: ***" in errors[0]  # quoted, with the key scrubbed
    [code] = [e for e in events if isinstance(e, ev.CodeExecuted)]
    if code.runner == "bubblewrap":
        assert "PATH" in code.stdout  # the snippet really ran and printed its environment
    captured = capsys.readouterr()
    assert_nowhere(canary, {
        "trajectory": (tmp_path / "t.jsonl").read_text(encoding="utf-8"),
        "events": repr(events),
        "log records": "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records),
        "printed lines": screen.getvalue(),
        "stdout": captured.out,
        "stderr": captured.err,
        "session": repr(session.__dict__),
    })


def cli_env(tmp_path: Path, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRA_TUI_")}
    for name in ("CONFIG", "STATE", "CACHE"):
        env[f"ORCHESTRA_TUI_{name}_DIR"] = str(tmp_path / name.lower())
    env[KEY_ENV] = key
    env["PYTHONPATH"] = str(ROOT)
    return env


async def orchestra(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """The CLI in a subprocess; the loopback server keeps serving from this event loop meanwhile."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestra_tui", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def policy_or_expert(request: Request):
    # The policy is offered tools; the answering expert is not.
    if "tools" in (request.json or {}):
        return ok(tool_call_text("answer", "answer-1", thinking="One call will do."))
    return ok("<answer>Paris</answer>")


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_bytes().decode("utf-8", "replace")
            for p in folder.rglob("*") if p.is_file()}


async def test_the_cli_never_prints_or_writes_the_key(tmp_path, canary):
    work = tmp_path / "work"
    work.mkdir()
    env = cli_env(tmp_path, canary)
    trajectory = tmp_path / "state" / "run.jsonl"
    async with FaultServer([policy_or_expert]) as server:
        catalog = catalog_file(tmp_path, server.base_url)
        code, out, err = await orchestra(
            env, work, "run", "What is the capital of France?", "--json", "--catalog", str(catalog),
            "--base-url", server.base_url, "--model-name", "Qwen/Qwen3-8B", "--api-key-env", KEY_ENV,
            "--trajectory", str(trajectory),
        )
    assert code == 0, err
    assert json.loads(out)["answer"] == "Paris"
    assert_key_sent(server, canary, 2)  # the policy through --base-url, the expert through the catalog
    outputs = {"run stdout": out, "run stderr": err}
    replay = await orchestra(env, work, "replay", str(trajectory), "--print")
    assert replay[0] == 0 and "Paris" in replay[1]
    outputs.update({"replay stdout": replay[1], "replay stderr": replay[2]})
    outputs.update(files_under(tmp_path / "state"))
    outputs.update(files_under(tmp_path / "config") if (tmp_path / "config").exists() else {})
    outputs.update(files_under(work))
    assert any(name.endswith("run.jsonl") for name in outputs)
    assert_nowhere(canary, outputs)


async def test_an_export_never_holds_the_key(tmp_path, canary):
    work = tmp_path / "work"
    work.mkdir()
    env = cli_env(tmp_path, canary)
    trajectory = tmp_path / "run.jsonl"
    async with FaultServer([policy_or_expert]) as server:
        catalog = catalog_file(tmp_path, server.base_url)
        code, _, err = await orchestra(env, work, "run", "What is the capital of France?", "--catalog", str(catalog),
                                       "--trajectory", str(trajectory))
    assert code == 0, err
    code, out, err = await orchestra(env, work, "export", str(trajectory), "--format", "reference")
    assert code == 0, err
    assert_nowhere(canary, {"export stdout": out, "export stderr": err, **files_under(work)})

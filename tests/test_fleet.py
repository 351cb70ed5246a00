"""The real fleet on loopback: llama.cpp servers standing in for vLLM, routed by catalog, priced per endpoint;
the paper's catalog without an OpenAI key; `serve llamacpp` used by `run --base-url`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from orchestra_tui.backends.embedded import smollm2_gguf_path
from orchestra_tui.backends.launcher import serve
from orchestra_tui.core import events as ev
from orchestra_tui.core.session import Session, SessionOptions
from orchestra_tui.paths import data_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet():
    gguf = str(smollm2_gguf_path())
    servers = {name: serve("llamacpp", gguf, model_alias=name, n_ctx=4096) for name in ("policy-a", "expert-b", "expert-c")}
    try:
        yield {name: s.base_url for name, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()


def _catalog(tmp_path: Path, urls: dict[str, str]) -> Path:
    text = f"""
[catalog]
name = "loopback-fleet"
[backends.a]
kind = "openai"
base_url = "{urls['policy-a']}"
model = "policy-a"
[backends.b]
kind = "openai"
base_url = "{urls['expert-b']}"
model = "expert-b"
[backends.c]
kind = "openai"
base_url = "{urls['expert-c']}"
model = "expert-c"
[policy]
backend = "a"
max_tokens = 64
constrain_tool_call = true
context_tokens = 1500
[expert_defaults]
max_tokens = 24
doc_chars = 300
code_tokens = 300
context_tokens = 800
answer_style = "boxed"
answer_fallback = true
[experts.answer-1]
backend = "b"
[experts.answer-4]
backend = "c"
[prices.models.expert-b]
input_per_million = "1"
output_per_million = "2"
source = "test price for expert-b"
[prices.models.expert-c]
input_per_million = "3"
output_per_million = "5"
source = "test price for expert-c"
[prices.models.policy-a]
input_per_million = "0"
output_per_million = "0"
source = "test policy"
"""
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def _profile(config: Path, name: str, exclude: str) -> None:
    folder = config / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(f'name = "{name}"\n[rules]\nexclude = ["{exclude}"]\n')


async def test_calls_are_routed_to_their_endpoints_and_priced_from_their_usage(fleet, tmp_path, monkeypatch):
    config = tmp_path / "config"
    monkeypatch.setenv("ORCHESTRA_TUI_CONFIG_DIR", str(config))
    _profile(config, "only-b", "answer-4")
    _profile(config, "only-c", "answer-1")
    session = Session(SessionOptions(catalog=_catalog(tmp_path, fleet), profile="only-b", max_rounds=3,
                                     trajectory=tmp_path / "t.jsonl"))
    first = [e async for e in session.ask("What is 2 + 2?")]
    session.switch_profile("only-c")
    second = [e async for e in session.ask("What is 3 + 3?")]
    await session.aclose()

    for events, alias, server, price in ((first, "answer-1", "expert-b", (1, 2)), (second, "answer-4", "expert-c", (3, 5))):
        started = [e for e in events if isinstance(e, ev.ToolCallStarted)]
        assert started and {s.alias for s in started} == {alias}
        outputs = [e for e in events if isinstance(e, ev.ExpertOutput)]
        assert [o.served_by for o in outputs] == [server] * len(outputs)  # the endpoint's own answer
        charges = [c for c in events if isinstance(c, ev.Charged) and c.kind == "expert"]
        for charge, output in zip(charges, outputs, strict=True):
            assert charge.model == server and output.usage["completion_tokens"] > 0
            expected = (Decimal(price[0]) * output.usage["prompt_tokens"]
                        + Decimal(price[1]) * output.usage["completion_tokens"]) / 10**6
            assert Decimal(charge.cost_usd) == expected
            assert charge.price_source == f"test price for {server}"
    switched = [e for e in second if isinstance(e, ev.ProfileSwitched)]
    assert switched and switched[0].new == "only-c"


async def test_paper_catalog_without_openai_key(fleet, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TOGETHER_API_KEY", "not-a-real-key")
    text = (data_dir("tools") / "catalogs" / "paper.toml").read_text()
    # The open-model host is played by a loopback llama.cpp server; OpenAI has no key at all.
    text = text.replace("https://api.together.xyz/v1", fleet["expert-b"])
    text = text.replace('max_tokens = 8000', 'max_tokens = 24').replace('max_tokens = 2000', 'max_tokens = 24')
    path = tmp_path / "paper-loopback.toml"
    path.write_text(text)
    policy = {"kind": "openai", "base_url": fleet["policy-a"], "model": "policy-a"}
    session = Session(SessionOptions(catalog=path, policy_backend=policy, max_rounds=2, profile="balanced",
                                     trajectory=tmp_path / "paper.jsonl"))
    gpt = {"search-1", "search-2", "reasoner-1", "reasoner-2", "answer-1", "answer-2"}
    unavailable_before = dict(session.unavailable())
    assert set(unavailable_before) == gpt
    assert all("OPENAI_API_KEY is not set" in why for why in unavailable_before.values())
    events = [e async for e in session.ask("What is 2 + 2?")]
    await session.aclose()
    started = [e for e in events if isinstance(e, ev.EpisodeStarted)][0]
    assert set(started.withheld) == gpt
    notices = " ".join(e.message for e in events if isinstance(e, ev.Notice))
    assert "answer-1 unavailable" in notices and "OPENAI_API_KEY is not set" in notices
    for round_started in (e for e in events if isinstance(e, ev.RoundStarted)):
        described = json.dumps(round_started.tools)
        for alias in gpt:
            assert f"'{alias}'" not in described and f"\\n{alias} |" not in described
        assert "answer-4" in described
    assert events[-1].type == "episode_ended" and events[-1].status != "error"


def test_serve_llamacpp_is_used_by_run_and_leaves_nothing_behind(tmp_path):
    env = dict(os.environ, ORCHESTRA_TUI_STATE_DIR=str(tmp_path / "state"), HF_HUB_OFFLINE="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestra_tui", "serve", "llamacpp", "--model", str(smollm2_gguf_path()),
         "--served-name", "served-smol", "--n-ctx", "8192"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL,
    )
    try:
        base_url = server.stdout.readline().strip()  # printed once the health check passed
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1"), server.stderr.read()[-2000:]
        port = base_url.rsplit(":", 1)[1].split("/")[0]
        done = subprocess.run(
            [sys.executable, "-m", "orchestra_tui", "run", "What is 2 + 2?", "--json", "--max-rounds", "1",
             "--catalog", "embedded", "--base-url", base_url, "--model-name", "served-smol"],
            capture_output=True, text=True, env=env, timeout=900, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        out = json.loads(done.stdout)
        assert out["rounds"] == 1
        records = [json.loads(line) for line in Path(out["trajectory"]).read_text().splitlines()]
        assert records[0]["backends"]["local"]["base_url"] == base_url
        assert any(r["type"] == "policy_output" for r in records)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    leftovers = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "llama_cpp.server" in cmdline and f"--port {port}" in cmdline:
                leftovers.append(proc.name)
    assert leftovers == []

"""Export to the reference per-question JSON, and replay fidelity: a live printout equals `replay --print`."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import collect, scripted_session

from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text
from orchestra_tui.cli import main
from orchestra_tui.console import Printer
from orchestra_tui.core.episode_record import Judged
from orchestra_tui.core.export import REFERENCE_FIELDS, reference_records
from orchestra_tui.core.trajectory import load_trajectory
from orchestra_tui.eval.runner import append_line

QUESTION = "What is 17 * 23?"


def backends():
    policy = ScriptedBackend([
        "I will just think.",  # round 1: no call
        tool_call_text("search", "search-2", thinking="I need facts."),
        '<tool_call>\n{"name": "answer", "arguments": {"model": "answer-9"}}\n</tool_call>'
        + tool_call_text("enhance_reasoning", "reasoner-1"),  # round 3: an invalid call, then a valid one
        tool_call_text("answer", "answer-1"),
    ], model="Qwen/Qwen3-8B")
    expert = ScriptedBackend(["<query>capital of France</query>", "```python\nprint(17 * 23)\n```",
                              "<think>easy</think><answer>391</answer>"], model="gpt-5")
    return policy, expert


async def record(folder: Path, printer: Printer | None = None) -> Path:
    session = scripted_session(folder, *backends())
    if printer is not None:
        session.listeners.append(printer)
    await collect(session, QUESTION)
    await session.aclose()
    return folder / "t.jsonl"


def test_export_writes_the_reference_fields_and_shapes(tmp_path, capsys):
    path = asyncio.run(record(tmp_path))
    append_line(path, Judged(question_id="hle/7", reference="391", prediction="391", correct=True, method="exact"))
    assert main(["export", str(path), "--format", "reference", "--out", str(tmp_path / "out")]) == 0
    written = capsys.readouterr().out.split()
    assert [Path(w).name for w in written] == ["hle_7.json"]  # the id, made safe as a file name
    data = json.loads(Path(written[0]).read_text())
    assert tuple(data) == REFERENCE_FIELDS
    assert (data["id"], data["problem"], data["answer"], data["correct"]) == ("hle/7", QUESTION, "391", True)

    calls = data["all_tool_calls"]
    assert calls[0] == "invalid tool calls []"  # a round without a call is a string, as in the reference
    assert calls[1] == [[{"name": "search", "arguments": {"model": "search-2"}}]]
    assert len(calls[2]) == 2 and calls[2][0].startswith("invalid tool call answer")
    assert calls[2][1] == [{"name": "enhance_reasoning", "arguments": {"model": "reasoner-1"}}]
    assert calls[3] == [[{"name": "answer", "arguments": {"model": "answer-1"}}]]

    responses = data["all_tool_responses"]
    assert sorted(responses) == ["turn_1_response", "turn_2_response", "turn_3_response"]
    search = responses["turn_1_response"][0]
    assert search["tool"] == "search" and search["model"] == "gpt-5" and search["query"] == "capital of France"
    assert search["search_results_data"] == ["Paris is the capital of France.", "Lyon is in France."]
    code = responses["turn_2_response"][0]
    assert (code["generated_code"], code["exec_result"]) == ("\nprint(17 * 23)\n", "391\n")
    answer = responses["turn_3_response"][0]
    assert (answer["pred"], answer["correctness"]) == ("391", True)
    assert answer["response"] == "<think>easy</think><answer>391</answer>"

    messages = data["all_message_responses"]
    assert sorted(messages) == ["turn_1_message", "turn_2_message", "turn_3_message"]
    assert messages["turn_2_message"]["tool_calls"] == [
        {"tool_name": "answer", "tool_arguments": {"model": "answer-9"}},
        {"tool_name": "enhance_reasoning", "tool_arguments": {"model": "reasoner-1"}}]
    assert "<think>\nI need facts.\n</think>" in messages["turn_1_message"]["content"]


def test_export_without_a_verdict_leaves_answer_and_correct_empty(tmp_path, capsys):
    path = asyncio.run(record(tmp_path))
    assert main(["export", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # one episode, one JSON line on stdout
    data = json.loads(lines[0])
    assert tuple(data) == REFERENCE_FIELDS and data["answer"] is None and data["correct"] is None
    assert data["id"] == load_trajectory(path).events[0].episode_id


def test_every_episode_of_a_session_is_exported(tmp_path):
    policy = ScriptedBackend([tool_call_text("answer", "answer-1")])
    session = scripted_session(tmp_path, policy, ScriptedBackend(["<answer>a</answer>", "<answer>b</answer>"]))

    async def two():
        await collect(session, "first?")
        await collect(session, "second?")
        await session.aclose()

    asyncio.run(two())
    records = reference_records(load_trajectory(tmp_path / "t.jsonl"))
    assert [r["problem"] for r in records] == ["first?", "second?"]
    assert [r["all_tool_responses"]["turn_0_response"][0]["pred"] for r in records] == ["a", "b"]


def test_a_live_printout_equals_replay_print(tmp_path, capsys):
    live = io.StringIO()
    path = asyncio.run(record(tmp_path, Printer(live)))
    assert main(["replay", str(path), "--print"]) == 0
    replayed = capsys.readouterr().out
    assert replayed == live.getvalue()
    assert "rejected (empty)" in replayed and "code ran (exit 0" in replayed and "answer by answer-1" in replayed


@pytest.mark.slow
def test_the_embedded_run_printout_equals_its_replay(tmp_path):
    env = dict(os.environ, ORCHESTRA_TUI_STATE_DIR=str(tmp_path / "state"),
               ORCHESTRA_TUI_CONFIG_DIR=str(tmp_path / "config"), HF_HUB_OFFLINE="1")
    env["ORCHESTRA_TUI_CACHE_DIR"] = os.environ.get("ORCHESTRA_TEST_CACHE", str(tmp_path / "cache"))
    trajectory = tmp_path / "run.jsonl"
    run = subprocess.run([sys.executable, "-m", "orchestra_tui", "run", QUESTION, "--max-rounds", "2",
                          "--trajectory", str(trajectory)], env=env, capture_output=True, text=True,
                         timeout=1800, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-2000:]
    replay = subprocess.run([sys.executable, "-m", "orchestra_tui", "replay", str(trajectory), "--print"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    live = run.stderr.removesuffix(f"trajectory: {trajectory}\n")  # run's own last line, not an event
    assert live == replay.stdout
    assert "round 1:" in live and live.rstrip().splitlines()[-1].startswith("ended: ")

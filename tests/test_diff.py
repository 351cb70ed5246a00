"""Diff: the first round where two runs differ, and their tools, cost and latency side by side."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from engine_helpers import collect, scripted_session

from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text
from orchestra_tui.cli import main
from orchestra_tui.core.diff import first_divergence, run_stats
from orchestra_tui.core.episode_record import split_episodes
from orchestra_tui.core.trajectory import load_trajectory


async def record(folder, policy_replies, expert_replies):
    policy = ScriptedBackend(policy_replies, model="Qwen/Qwen3-8B")
    expert = ScriptedBackend(expert_replies, model="gpt-5")
    session = scripted_session(folder, policy, expert)
    await collect(session, "What is 17 * 23?")
    await session.aclose()
    return folder / "t.jsonl"


SEARCH_CODE_ANSWER = ([tool_call_text("search", "search-2"), tool_call_text("enhance_reasoning", "reasoner-1"),
                       tool_call_text("answer", "answer-1")],
                      ["<query>capital of France</query>", "```python\nprint(17 * 23)\n```", "<answer>391</answer>"])
SEARCH_ANSWER = ([tool_call_text("search", "search-2"), tool_call_text("answer", "answer-4")],
                 ["<query>capital of France</query>", "\\boxed{390}"])


def episode(path):
    return split_episodes(load_trajectory(path).events)[0]


def test_the_first_differing_round_and_what_differed(tmp_path, capsys):
    a = asyncio.run(record(tmp_path / "a", *SEARCH_CODE_ANSWER))
    b = asyncio.run(record(tmp_path / "b", *SEARCH_ANSWER))
    divergence = first_divergence(episode(a), episode(b))
    assert divergence is not None and divergence.round == 2
    assert divergence.fields == ["tool", "alias", "arguments", "answer"]

    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "first divergence: round 2 — differs in tool, alias, arguments, answer" in out
    assert "A: enhance_reasoning via reasoner-1 (gpt-5)" in out
    assert "B: answer via answer-4 (mystery-model)" in out and "answer: '390'" in out
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines() if line and not line.startswith(" ")}
    assert rows["rounds"][1:] == ["3", "2", "-1"]
    assert rows["calls: enhance_reasoning"][-3:] == ["1", "0", "-1"]
    assert rows["answer"][1:] == ["391", "390"]
    # Cost: A is priced, B used an unpriced model, so B's total is unknown and no difference is invented.
    stats_a = run_stats(episode(a))
    assert rows["cost (USD)"][2:] == [str(stats_a.cost_usd), "—"]
    assert stats_a.cost_usd == sum(Decimal(e.cost_usd) for e in episode(a).events if e.type == "charged")


def test_identical_decisions_do_not_diverge(tmp_path, capsys):
    a = asyncio.run(record(tmp_path / "a", *SEARCH_CODE_ANSWER))
    b = asyncio.run(record(tmp_path / "b", *SEARCH_CODE_ANSWER))
    assert first_divergence(episode(a), episode(b)) is None
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "no divergence" in out
    assert [line.split()[-1] for line in out.splitlines() if line.startswith("rounds")] == ["+0"]


def test_a_run_that_stops_earlier_diverges_where_the_other_goes_on(tmp_path):
    a = asyncio.run(record(tmp_path / "a", [tool_call_text("answer", "answer-1")], ["<answer>391</answer>"]))
    b = asyncio.run(record(tmp_path / "b", ["no tool", tool_call_text("answer", "answer-1")],
                           ["<answer>391</answer>"]))
    divergence = first_divergence(episode(a), episode(b))
    assert divergence.round == 1 and divergence.fields[0] == "outcome"
    assert divergence.b.outcome.startswith("rejected (empty)")

"""The orchestra loop with scripted backends: order of events, evidence, validation rules, ledger."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from engine_helpers import collect, scripted_session

from orchestra_tui.backends.base import BackendError
from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text
from orchestra_tui.core import events as ev
from orchestra_tui.core.trajectory import load_trajectory


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


async def test_search_code_answer_episode(tmp_path):
    policy = ScriptedBackend(
        [
            tool_call_text("search", "search-2", thinking="I need facts."),
            tool_call_text("enhance_reasoning", "reasoner-1"),
            tool_call_text("answer", "answer-1"),
        ],
        model="Qwen/Qwen3-8B",
    )
    expert = ScriptedBackend(
        [
            "<query>capital of France</query>",
            "Here:\n```python\nprint(17 * 23)\n```",
            "<think>easy</think><answer>391</answer>",
        ],
        model="gpt-5",
    )
    session = scripted_session(tmp_path, policy, expert)
    events = await collect(session, "What is 17 * 23?")
    await session.aclose()

    ended = events[-1]
    assert isinstance(ended, ev.EpisodeEnded)
    assert (ended.status, ended.answer, ended.rounds) == ("answered", "391", 3)

    started = of(events, ev.ToolCallStarted)
    assert [(s.tool, s.alias, s.model) for s in started] == [
        ("search", "search-2", "gpt-5"),
        ("enhance_reasoning", "reasoner-1", "gpt-5"),
        ("answer", "answer-1", "gpt-5"),
    ]
    # The query writer's <query> reached the retriever; results became documents, best last.
    assert session._parts.retriever.queries == ["capital of France"]
    rounds = of(events, ev.RoundStarted)
    second_user = rounds[1].messages[1]["content"]
    assert "Doc 1: Lyon is in France.\n\nDoc 2: Paris is the capital of France." in second_user
    # FRAMES stops offering search once documents exist.
    assert [t["function"]["name"] for t in rounds[0].tools] == ["enhance_reasoning", "answer", "search"]
    assert [t["function"]["name"] for t in rounds[1].tools] == ["enhance_reasoning", "answer"]
    # Only stdout of the executed code entered the context of round 3.
    code = of(events, ev.CodeExecuted)[0]
    assert code.stdout == "391\n" and code.exit_code == 0
    # The reference keeps the code exactly as split out of the reply, newlines included.
    assert code.code == "\nprint(17 * 23)\n"
    assert "```python\n\nprint(17 * 23)\n\n```\n\n```output\n391\n\n```" in rounds[2].messages[1]["content"]

    # Every call is charged: 3 policy rounds, 3 experts, 1 retrieval, 1 code run.
    charges = of(events, ev.Charged)
    assert sorted(c.kind for c in charges) == sorted(["policy"] * 3 + ["expert"] * 3 + ["retrieval", "code"])
    assert all(c.cost_usd is not None for c in charges)
    assert Decimal(ended.cost_usd) == sum(Decimal(c.cost_usd) for c in charges)
    gpt5 = [c for c in charges if c.model == "gpt-5"][0]
    assert Decimal(gpt5.cost_usd) == (Decimal("1.25") * gpt5.input_tokens + 10 * gpt5.output_tokens) / 10**6

    # The trajectory holds the same persistent events, in order.
    trajectory = load_trajectory(tmp_path / "t.jsonl")
    persisted = [e for e in events if not e.transient]
    assert [e.to_dict() for e in trajectory.events] == [json.loads(json.dumps(e.to_dict())) for e in persisted]
    assert trajectory.header["catalog"] == "scripted"


async def test_invalid_outputs_consume_rounds_and_are_recorded(tmp_path):
    policy = ScriptedBackend(
        [
            "I will just think about it.",  # no call
            '<tool_call>\n{"name": "answer", "arguments": {"model": "answer-9"}}\n</tool_call>',  # bad alias
            '<tool_call>\n{"name": "fly", "arguments": {"model": "answer-1"}}\n</tool_call>',  # unknown tool
            "<tool_call>\n{not json}\n</tool_call>",
            tool_call_text("answer", "answer-9") + tool_call_text("answer", "answer-1") + tool_call_text("search", "search-1"),
        ]
    )
    expert = ScriptedBackend(["<answer>42</answer>"])
    session = scripted_session(tmp_path, policy, expert)
    events = await collect(session, "q?")
    rejected = of(events, ev.RoundRejected)
    assert [(r.round, r.reason) for r in rejected] == [(1, "empty"), (2, "invalid"), (3, "invalid"), (4, "invalid")]
    assert "answer-9" in rejected[1].detail and "fly" in rejected[2].detail
    started = of(events, ev.ToolCallStarted)
    assert len(started) == 1 and started[0].round == 5 and started[0].alias == "answer-1"
    # The other calls of round 5 are recorded as not run.
    assert [c["name"] for c in started[0].ignored] == ["answer", "search"]
    assert events[-1].status == "answered" and events[-1].answer == "42"


async def test_rounds_run_out_without_an_answer(tmp_path):
    policy = ScriptedBackend(["no tools today"])
    session = scripted_session(tmp_path, policy, ScriptedBackend(["unused"]), max_rounds=4)
    events = await collect(session, "q?")
    assert events[-1].status == "no_answer" and events[-1].rounds == 4 and events[-1].answer is None
    assert len(of(events, ev.RoundStarted)) == 4


async def test_unpriced_expert_makes_the_total_unknown(tmp_path):
    policy = ScriptedBackend([tool_call_text("answer", "answer-4")])
    session = scripted_session(tmp_path, policy, ScriptedBackend(["\\boxed{7}"]))
    events = await collect(session, "q?")
    charges = of(events, ev.Charged)
    unpriced = [c for c in charges if c.cost_usd is None]
    assert [c.model for c in unpriced] == ["mystery-model"] and unpriced[0].price_source == "unpriced"
    assert events[-1].answer == "7" and events[-1].cost_usd is None


async def test_policy_failures_end_the_episode_with_an_error(tmp_path):
    policy = ScriptedBackend([BackendError("server down")] * 5, repeat_last=False)
    session = scripted_session(tmp_path, policy, ScriptedBackend(["unused"]))
    events = await collect(session, "q?")
    assert [r.reason for r in of(events, ev.RoundRejected)] == ["error"] * 3
    assert events[-1].status == "error" and "3 rounds in a row" in events[-1].error


async def test_cancel_mid_episode_is_recorded(tmp_path):
    gate = asyncio.Event()

    class SlowRetriever:
        name, price_key = "slow", "retrieval_local"

        async def retrieve(self, query, topk):
            gate.set()
            await asyncio.Event().wait()  # never returns: only cancellation ends it

    policy = ScriptedBackend([tool_call_text("search", "search-1")])
    session = scripted_session(tmp_path, policy, ScriptedBackend(["<query>something long enough</query>"]))
    session._parts.retriever = SlowRetriever()
    seen = []

    async def consume():
        async for event in session.ask("q?"):
            seen.append(event)

    task = asyncio.create_task(consume())
    await gate.wait()
    session.cancel()
    await task
    assert seen[-1].status == "cancelled"
    trajectory = load_trajectory(tmp_path / "t.jsonl")
    assert trajectory.events[-1].type == "episode_ended" and trajectory.events[-1].status == "cancelled"


async def test_follow_up_carries_earlier_answers(tmp_path):
    policy = ScriptedBackend([tool_call_text("answer", "answer-1")])
    session = scripted_session(tmp_path, policy, ScriptedBackend(["<answer>Paris</answer>"]))
    await collect(session, "Capital of France?")
    events = await collect(session, "And its population?")
    problem = of(events, ev.EpisodeStarted)[0].problem
    assert problem == (
        "Earlier in this conversation:\nQ: Capital of France?\nA: Paris\n\nCurrent question: And its population?"
    )
    assert of(events, ev.RoundStarted)[0].messages[1]["content"].startswith(f"Problem: {problem}\n\n")

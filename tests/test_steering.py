"""Profiles inside the loop: refusals, switching mid-episode, budgets enforced by the engine."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from engine_helpers import ListRetriever

from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text
from orchestra_tui.core import events as ev
from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.session import Session, SessionOptions
from orchestra_tui.core.toolset import load_tools
from orchestra_tui.core.trajectory import load_trajectory
from orchestra_tui.services.code_runner import SubprocessRunner

GOLDEN_TOOLS = Path(__file__).parent / "golden" / "tools"


def reference_session(tmp_path, policy, expert, **options) -> Session:
    catalog = load_catalog(GOLDEN_TOOLS / "reference-mapping.toml")
    backends = {name: expert for name in catalog.backends}
    backends["policy"] = policy
    return Session(
        SessionOptions(trajectory=tmp_path / "t.jsonl", **options),
        catalog=catalog,
        backends=backends,
        retriever=ListRetriever(["Paris is the capital of France."]),
        code_runner=SubprocessRunner(),
    )


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


async def test_balanced_sees_the_reference_tools_byte_for_byte(tmp_path):
    policy = ScriptedBackend([tool_call_text("answer", "answer-1")])
    session = reference_session(tmp_path, policy, ScriptedBackend(["<answer>x</answer>"]), profile="balanced")
    events = [e async for e in session.ask("q?")]
    assert of(events, ev.RoundStarted)[0].tools == load_tools()
    assert of(events, ev.EpisodeStarted)[0].preference is None


async def test_an_excluded_alias_is_never_executed(tmp_path):
    policy = ScriptedBackend([tool_call_text("answer", "answer-1"), tool_call_text("answer", "answer-2")],
                             repeat_last=True)
    expert = ScriptedBackend(["<answer>from mini</answer>"])
    session = reference_session(tmp_path, policy, expert, profile="avoid-gpt5")
    events = [e async for e in session.ask("q?")]
    refused = of(events, ev.RoundRejected)
    assert [(r.round, r.reason) for r in refused] == [(1, "refused")]
    assert refused[0].detail.startswith("answer-1:")
    assert [s.alias for s in of(events, ev.ToolCallStarted)] == ["answer-2"]
    assert len(expert.calls) == 1  # the gpt-5 alias never reached a backend
    assert events[-1].answer == "from mini"
    persisted = [e for e in load_trajectory(tmp_path / "t.jsonl").events if e.type == "round_rejected"]
    assert persisted[0].reason == "refused"


async def test_switching_between_rounds_changes_the_next_tool_description(tmp_path):
    switched = asyncio.Event()
    session: Session

    def first_round(messages, tools):
        session.switch_profile("avoid-gpt5")  # asked while round 1 runs: applies from round 2
        switched.set()
        return tool_call_text("search", "search-2")

    policy = ScriptedBackend([first_round, tool_call_text("answer", "answer-2")], repeat_last=True)
    expert = ScriptedBackend(["<query>capital of France</query>", "<answer>Paris</answer>"])
    session = reference_session(tmp_path, policy, expert, profile="balanced")
    events = [e async for e in session.ask("Capital of France?")]
    rounds = of(events, ev.RoundStarted)
    assert rounds[0].tools == load_tools()
    expected = json.loads((GOLDEN_TOOLS / "avoid-gpt5.json").read_text())
    # FRAMES stops offering search once documents exist; everything else is the golden avoid-gpt5 list.
    assert rounds[1].tools == [t for t in expected if t["function"]["name"] != "search"]
    switch = of(events, ev.ProfileSwitched)
    assert [(s.round, s.old, s.new) for s in switch] == [(2, "balanced", "avoid-gpt5")]
    assert set(switch[0].withheld) == {"search-1", "reasoner-1", "answer-1"}
    # Every charge is attributed to the profile active at that call.
    charges = of(events, ev.Charged)
    assert {c.profile for c in charges if c.round == 1} == {"balanced"}
    assert {c.profile for c in charges if c.round == 2} == {"avoid-gpt5"}
    assert session.profile_name == "avoid-gpt5"


async def test_a_question_budget_is_never_exceeded(tmp_path):
    # Each gpt-5 answer could cost up to 8000 output tokens × $10/M = $0.08 + input: above a 5-cent budget.
    policy = ScriptedBackend([tool_call_text("answer", "answer-1")])
    expert = ScriptedBackend(["<answer>x</answer>"])
    session = reference_session(tmp_path, policy, expert, profile="balanced", max_cost=Decimal("0.05"))
    events = [e async for e in session.ask("q?")]
    started = of(events, ev.EpisodeStarted)[0]
    refused = of(events, ev.RoundRejected)
    assert refused and refused[0].reason == "refused" and "over budget" in refused[0].detail
    assert all(s.alias != "answer-1" for s in of(events, ev.ToolCallStarted))
    spent = sum(Decimal(c.cost_usd) for c in of(events, ev.Charged) if c.cost_usd is not None)
    assert spent <= Decimal("0.05")
    del started


async def test_nothing_affordable_ends_with_a_budget_event(tmp_path):
    policy = ScriptedBackend([tool_call_text("answer", "answer-1")])
    session = reference_session(tmp_path, policy, ScriptedBackend(["<answer>x</answer>"]), profile="balanced",
                                max_cost=Decimal("0"))
    events = [e async for e in session.ask("q?")]
    assert events[-1].status == "budget" and "budget exhausted" in events[-1].error
    assert not of(events, ev.Charged) or all(Decimal(c.cost_usd or 0) == 0 for c in of(events, ev.Charged))

"""Fork: the state at the end of round k is rebuilt from the trajectory and the episode continues live."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from engine_helpers import collect, scripted_session

from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text
from orchestra_tui.cli import main
from orchestra_tui.core import events as ev
from orchestra_tui.core.episode_record import split_episodes
from orchestra_tui.core.fork import ForkError, resume_point
from orchestra_tui.core.trajectory import load_trajectory

QUESTION = "What is 17 * 23?"


def three_round_backends():
    policy = ScriptedBackend([tool_call_text("search", "search-2"), tool_call_text("enhance_reasoning", "reasoner-1"),
                              tool_call_text("answer", "answer-1")], model="Qwen/Qwen3-8B")
    expert = ScriptedBackend(["<query>capital of France</query>", "```python\nprint(17 * 23)\n```",
                              "<answer>391</answer>"], model="gpt-5")
    return policy, expert


async def record_original(tmp_path):
    policy, expert = three_round_backends()
    session = scripted_session(tmp_path / "original", policy, expert)
    await collect(session, QUESTION)
    await session.aclose()
    return load_trajectory(tmp_path / "original" / "t.jsonl"), policy


async def fork(tmp_path, original, at, profile, policy_replies, expert_replies):
    policy = ScriptedBackend(policy_replies, model="Qwen/Qwen3-8B")
    expert = ScriptedBackend(expert_replies, model="gpt-5")
    session = scripted_session(tmp_path / f"fork-{at}-{profile}", policy, expert, profile=profile)
    resume = resume_point(original, at)
    events = [e async for e in session.ask(resume.question, resume=resume)]
    await session.aclose()
    return load_trajectory(session.options.trajectory), events, policy


def without_ts(event):
    data = event.to_dict()
    data.pop("ts")
    return data


def rounds_up_to(trajectory, k):
    record = split_episodes(trajectory.events)[0]
    return [without_ts(e) for e in record.prefix(k)]


@pytest.mark.parametrize("k", [0, 1, 2])
async def test_a_fork_has_the_same_first_k_rounds_event_by_event(tmp_path, k):
    original, _ = await record_original(tmp_path)
    forked, _, _ = await fork(tmp_path, original, k, "best-quality",
                              [tool_call_text("answer", "answer-1")], ["<answer>391</answer>"])
    assert rounds_up_to(forked, k) == rounds_up_to(original, k)
    # Nothing of round k+1 of the original leaked in: the fork's round k+1 is its own.
    record = split_episodes(forked.events)[0]
    assert [e.round for e in record.round_events(k + 1) if isinstance(e, ev.RoundStarted)] == [k + 1]
    assert record.ended is not None and record.ended.answer == "391"


async def test_round_k_plus_1_sees_the_restored_documents_and_code(tmp_path):
    original, original_policy = await record_original(tmp_path)
    # Same profile, same replies: round 3 of the fork must get exactly the prompt round 3 got originally.
    forked, events, policy = await fork(tmp_path, original, 2, "balanced",
                                        [tool_call_text("answer", "answer-1")], ["<answer>391</answer>"])
    assert policy.calls[0]["messages"] == original_policy.calls[2]["messages"]
    assert policy.calls[0]["tools"] == original_policy.calls[2]["tools"]
    assert not [e for e in events if isinstance(e, ev.ProfileSwitched)]  # same profile: no switch


async def test_another_profile_takes_over_at_round_k_plus_1_and_spend_carries_over(tmp_path):
    original, original_policy = await record_original(tmp_path)
    forked, events, policy = await fork(tmp_path, original, 2, "best-quality",
                                        [tool_call_text("answer", "answer-1")], ["<answer>391</answer>"])
    switched = [e for e in events if isinstance(e, ev.ProfileSwitched)]
    assert [(s.round, s.old, s.new) for s in switched] == [(3, "balanced", "best-quality")]
    statement = switched[0].preference
    assert statement  # best-quality states a preference, which rides in the problem text from round 3
    before = original_policy.calls[2]["messages"][1]["content"]
    expected = before.replace(f"Problem: {QUESTION}\n\n", f"Problem: {QUESTION}\n\n{statement}\n\n", 1)
    assert policy.calls[0]["messages"][1]["content"] == expected
    charges = [e for e in forked.events if isinstance(e, ev.Charged)]
    assert {c.profile for c in charges if c.round <= 2} == {"balanced"}  # the copied rounds' own record
    assert {c.profile for c in charges if c.round == 3} == {"best-quality"}
    ended = [e for e in forked.events if isinstance(e, ev.EpisodeEnded)][0]
    assert ended.rounds == 3
    assert Decimal(ended.cost_usd) == sum(Decimal(c.cost_usd) for c in charges)  # copied spend counts
    original_ended = [e for e in original.events if isinstance(e, ev.EpisodeEnded)][0]
    copied = [e for e in original.events if isinstance(e, ev.Charged) and e.round <= 2]
    assert Decimal(ended.cost_usd) > sum(Decimal(c.cost_usd) for c in copied)
    assert original_ended.answer == ended.answer == "391"


async def test_the_restored_state_matches_what_the_loop_had(tmp_path):
    original, _ = await record_original(tmp_path)
    resume = resume_point(original, 2)
    assert resume.evidence.documents == ["Lyon is in France.", "Paris is the capital of France."]
    assert [(c.code, c.output) for c in resume.evidence.code] == [("\nprint(17 * 23)\n", "391\n")]
    assert dict(resume.calls) == {"search-2": 1, "reasoner-1": 1}
    assert {c.round for c in resume.charges} == {1, 2} and len(resume.charges) == 6
    assert resume.base_problem == QUESTION and resume.profile == "balanced"


async def test_forking_at_or_after_the_answer_is_refused(tmp_path):
    original, _ = await record_original(tmp_path)
    with pytest.raises(ForkError, match="already answered in round 3"):
        resume_point(original, 3)
    with pytest.raises(ForkError, match="has 3 round"):
        resume_point(original, 7)


def test_the_cli_names_a_bad_round(tmp_path, capsys):
    original, _ = asyncio.run(record_original(tmp_path))
    code = main(["fork", str(original.path), "--at", "3", "--profile", "cheap"])
    assert code == 2
    assert "already answered" in capsys.readouterr().err


def test_notices_belong_to_the_round_they_announce():
    from orchestra_tui.core.episode_record import attribute_rounds

    events = [
        ev.RoundStarted(round=1, messages=[], tools=[], context_tokens=0),
        ev.ToolCallStarted(round=1, call_id="r1-search", tool="search", alias="search-1", model="m", arguments={}),
        ev.Notice(level="warning", message="search-1 failed"),  # inside the call: round 1
        ev.ExpertOutput(call_id="r1-search", messages=[], content="", usage={}, seconds=0.0),
        ev.ToolCallFinished(call_id="r1-search", status="error", summary="", seconds=0.0),
        ev.Notice(level="warning", message="budget nearly exhausted"),  # announces round 2's last resort
        ev.ToolCallStarted(round=2, call_id="r2-answer", tool="answer", alias="answer-1", model="m", arguments={}),
        ev.FinalAnswer(call_id="r2-answer", alias="answer-1", model="m", answer=None, extracted_by="none"),
        ev.Notice(level="warning", message="budget exhausted"),  # only the end follows: the last round
    ]
    ended = ev.EpisodeEnded(status="budget", answer=None, rounds=2, cost_usd="0", latency_s=1.0)
    assert attribute_rounds(events, ended) == [1, 1, 1, 1, 1, 2, 2, 2, 2]

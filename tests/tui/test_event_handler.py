"""The fold from events to what the panes show, without Textual."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from types import SimpleNamespace

from fixtures_tui import ANSWER, QUESTION, episode_script, recorded_events

from orchestra_tui.core.events import Charged, EpisodeEnded, Notice, ProfileSwitched
from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.event_handler import EventHandler, apply
from orchestra_tui.tui.state import SessionView


def fold(events) -> SessionView:
    state = SessionView()
    for event in events:
        apply(state, event)
    return state


def test_answered_episode_fills_every_part_of_the_view():
    state = fold(episode_script())
    assert state.status == "answered"
    assert [r.key for r in state.rounds.values()] == [(1, 1), (1, 2), (1, 3)]
    assert state.rounds[(1, 3)].thinking.startswith("The code printed 2280")
    assert [c.tool for c in state.calls.values()] == ["search", "enhance_reasoning", "answer"]
    search, code, answer = state.calls.values()
    assert search.query == "Eiffel Tower opening year"
    assert [d["id"] for d in search.documents] == ["eiffel-1", "paris-7"]
    assert code.code_runs[0].stdout == "2280\n"
    assert answer.answer == ANSWER and answer.status == "ok"
    kinds = [e.kind for e in state.entries]
    assert kinds == ["question", "answer", "outcome"]
    assert state.entries[0].text == QUESTION
    assert state.entries[1].text == ANSWER and not state.entries[1].streaming


def test_costs_are_exact_decimals_and_unpriced_calls_are_counted_not_zeroed():
    state = fold(episode_script())
    expected = sum(Decimal(c.cost_usd) for c in episode_script() if isinstance(c, Charged) and c.cost_usd)
    assert state.session.cost == expected == Decimal("0.002365615")
    assert state.session.unpriced == 1 and state.session.priced == 7
    assert state.by_kind["retrieval"].unpriced == 1 and state.by_kind["retrieval"].priced == 0
    assert fmt.cost_label(state.by_kind["retrieval"].cost, 0, 1) == "unpriced"
    assert fmt.cost_label(state.session.cost, 7, 1) == "≥$0.00237"
    assert state.calls["c1"].tally.unpriced == 1  # the search call's retrieval
    assert state.rounds[(1, 1)].tally.cost == Decimal("0.0000752")  # policy charges land on the round
    assert "unpriced" in state.entries[-1].meta


def test_money_never_reads_as_free_when_it_is_not():
    assert fmt.usd(Decimal("0.000000415")) == "$0.000000415"
    assert fmt.usd(Decimal("0.0000752")) == "$0.0000752"
    assert fmt.usd(Decimal("12.5")) == "$12.50"
    assert fmt.cost_label(Decimal(0), 0, 0) == "—"
    assert fmt.cost_label(Decimal(0), 0, 3) == "unpriced"
    assert fmt.parse_usd(None) is None and fmt.parse_usd("nonsense") is None


def test_streamed_text_shows_until_the_final_output_replaces_it():
    script = episode_script()
    output_at = next(i for i, e in enumerate(script) if e.type == "policy_output")
    state = fold(script[:output_at])
    assert state.rounds[(1, 1)].thinking.startswith("I need the year")
    assert "<think>" not in state.rounds[(1, 1)].thinking
    assert not state.rounds[(1, 1)].finished
    answer_started = next(i for i, e in enumerate(script) if e.type == "tool_call_started" and e.tool == "answer")
    state = fold(script[: answer_started + 2])
    assert state.entries[-1].streaming and state.entries[-1].text.startswith("17 × 23 = 391")


def test_replay_is_a_pure_fold_every_prefix_matches_incremental_application():
    events = recorded_events()
    handler = EventHandler()
    for k, event in enumerate(events, start=1):
        handler.handle(event)
        again = fold(events[:k])
        assert again.status == handler.state.status
        assert again.session.cost == handler.state.session.cost
        assert [e.text for e in again.entries] == [e.text for e in handler.state.entries]


def test_unknown_and_future_events_are_handled_gracefully():
    state = fold(episode_script()[:3])
    apply(state, SimpleNamespace(type="something_new"))  # ignored
    apply(state, SimpleNamespace(type="budget_exhausted", message="budget of $0.01 reached"))
    assert state.entries[-1].level == "warning" and "budget" in state.entries[-1].text


def test_a_profile_switch_shows_as_pending_until_the_engine_applies_it():
    state = fold(episode_script()[:3])
    state.pending_profile = "fast"
    apply(state, ProfileSwitched(round=2, old="balanced", new="fast", withheld={}, preference=None))
    assert state.profile == "fast" and state.pending_profile is None
    assert state.entries[-1].text == "profile switched to fast from round 2"
    # The same name again: its file was edited and read anew.
    state.pending_profile = "fast"
    apply(state, ProfileSwitched(round=None, old="fast", new="fast", withheld={}, preference=None))
    assert state.pending_profile is None and state.entries[-1].text == "profile fast reloaded"


def test_cancel_marks_running_calls_and_ends_the_stream():
    script = episode_script()
    cut = next(i for i, e in enumerate(script) if e.type == "tool_call_started") + 2
    state = fold([*script[:cut], EpisodeEnded(status="cancelled", answer=None, rounds=1, cost_usd=None, latency_s=1.0)])
    assert state.status == "cancelled"
    assert state.calls["c1"].status == "cancelled"
    assert state.entries[-1].kind == "outcome" and state.entries[-1].text == "cancelled"


def test_second_episode_keeps_session_totals_and_resets_the_question():
    first = episode_script()
    second = episode_script("and in hex?", episode=2)
    state = fold([*first, *second])
    assert state.episode == 2
    assert state.session.cost == 2 * state.question.cost
    assert (2, 1) in state.rounds and "e2-c1" in state.calls
    assert [e.text for e in state.entries if e.kind == "question"] == [QUESTION, "and in hex?"]


def test_a_typed_question_is_confirmed_not_duplicated():
    handler = EventHandler()
    handler.ask(QUESTION)
    assert handler.state.entries[-1].pending
    handler.handle(episode_script()[0])
    assert [e.text for e in handler.state.entries] == [QUESTION]
    assert not handler.state.entries[0].pending


def test_notices_reach_the_transcript_with_their_level():
    state = fold([Notice(level="error", message="reasoner-1 is unavailable")])
    assert (state.entries[0].kind, state.entries[0].level) == ("notice", "error")


def test_events_keep_their_order_in_the_recorded_script():
    # The fixture itself: timestamps are fixed so replay timing never depends on the wall clock.
    events = recorded_events()
    assert all(b.ts > a.ts for a, b in zip(events, events[1:]))
    assert not any(e.transient for e in events)
    assert dataclasses.is_dataclass(events[0])


def test_prompt_tokens_reused_from_a_prefix_cache_show_in_the_round_title_and_the_console():
    from orchestra_tui.console import describe
    from orchestra_tui.core.events import PolicyOutput
    from orchestra_tui.tui.widgets.reasoning import round_title

    script = episode_script()
    at = next(i for i, e in enumerate(script) if isinstance(e, PolicyOutput))
    usage = {"prompt_tokens": 1879, "completion_tokens": 40, "cached_tokens": 1878}
    script[at] = dataclasses.replace(script[at], usage=usage)
    state = fold(script[: at + 1])
    view = state.rounds[(1, 1)]
    assert view.reused_tokens == 1878
    assert "reused" in round_title(view, current=True)
    assert ", prompt 1879 tokens, 1878 reused)" in describe(script[at])
    # A backend that does not report its cache says nothing about reuse rather than "0 reused".
    plain = dataclasses.replace(script[at], usage={"prompt_tokens": 1879, "completion_tokens": 40})
    assert "reused" not in describe(plain)
    state = fold([*script[:at], plain])
    assert state.rounds[(1, 1)].reused_tokens is None and "reused" not in round_title(state.rounds[(1, 1)], True)

"""Smaller promises: coalesced painting, the budget bar, rejected rounds, the light theme."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

from fixtures_tui import ScriptedSource, episode_script, plain, settle

from orchestra_tui.core.events import EpisodeEnded, Event, PolicyDelta, RoundRejected, RoundStarted
from orchestra_tui.tui.app import OrchestraApp
from orchestra_tui.tui.event_handler import apply
from orchestra_tui.tui.state import SessionView
from orchestra_tui.tui.widgets.cost_meter import CostMeter, budget_line
from orchestra_tui.tui.widgets.reasoning import ReasoningPane, round_title


class Firehose:
    """Thousands of one-token deltas as fast as the loop allows."""

    profile_name, policy_label = "balanced", "test"

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens

    async def ask(self, question: str) -> AsyncIterator[Event]:
        yield episode_script(question)[0]
        yield RoundStarted(round=1, messages=[], tools=[], context_tokens=10)
        for i in range(self.tokens):
            await asyncio.sleep(0)
            yield PolicyDelta(round=1, text=f"t{i} ")
        yield EpisodeEnded(status="no_answer", answer=None, rounds=1, cost_usd=None, latency_s=1.0)

    def cancel(self) -> None:
        pass


async def test_a_token_stream_is_painted_in_batches_not_per_token():
    tokens = 3000
    app = OrchestraApp(Firehose(tokens), cursor_blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        flushes = 0
        real_flush = app.handler.flush

        def counting_flush() -> None:
            nonlocal flushes
            flushes += 1
            real_flush()

        app.handler.flush = counting_flush
        app.query_one("#ask").value = "stream"
        await pilot.press("enter")
        await settle(app, pilot)
        assert flushes < tokens / 10
        thinking = app.query_one(ReasoningPane).fold(1).text()
        assert thinking.startswith("t0 t1") and f"t{tokens - 1}" in thinking


async def test_the_budget_bar_shows_spend_against_the_budget():
    source = ScriptedSource()
    source.budget_usd = "0.004"
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one("#ask").value = "q"
        await pilot.press("enter")
        await settle(app, pilot)
        budget = app.query_one(CostMeter).query_one(".budget")
        assert budget.display and "$0.00237 of $0.00400" in plain(budget)
    assert budget_line(Decimal("0.5"), Decimal("0.25")).plain.count("█") == 20  # over budget: full, never past it


def test_a_rejected_round_says_why():
    state = SessionView()
    for event in [*episode_script()[:2], RoundRejected(round=1, reason="invalid", detail="unknown alias answer-9")]:
        apply(state, event)
    view = state.rounds[(1, 1)]
    assert view.finished and "rejected: invalid" in round_title(view, current=True)


def test_unpriced_is_never_shown_as_zero_in_the_breakdown():
    from orchestra_tui.tui.widgets.cost_meter import breakdown

    state = SessionView()
    for event in episode_script():
        apply(state, event)
    lines = breakdown(state).plain.splitlines()
    retrieval = next(line for line in lines if "retrieval" in line)
    assert "unpriced" in retrieval and "$0" not in retrieval


async def test_output_written_while_the_app_runs_does_not_break_it():
    # Textual routes stdout/stderr through App internals while running; a library that logs or prints
    # (llama.cpp does) must not collide with the app's own method names.
    import sys

    app = OrchestraApp(ScriptedSource(), cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        print("a library printing", flush=True)
        sys.stderr.write("a library logging\n")
        sys.stderr.flush()
        await pilot.pause()
        assert app.is_running


async def test_main_screen_keys_wait_while_the_profile_editor_is_open(tui_dirs):
    # App bindings reach a full screen such as the editor (dialogs block them); zoom, costs, the pickers
    # and the editor itself act on the main screen and must not stack up over the editor.
    from fixtures_tui import SHIPPED_PROFILES

    app = OrchestraApp(ScriptedSource(profiles=SHIPPED_PROFILES), cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await pilot.pause()
        editor = app.screen
        await pilot.press("f3", "f4", "f2", "f5", "ctrl+o")
        await pilot.pause()
        assert app.is_running and app.screen is editor and len(app.screen_stack) == 2
        assert editor.maximized is None and not editor.has_class("-breakdown")


async def test_replay_keeps_playing_under_the_help_screen():
    from fixtures_tui import recorded_events

    app = OrchestraApp(None, recorded_events(), header={"profile": "balanced"}, cursor_blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("space", "f1")
        await pilot.pause()
        before = app.replay.position
        app._play_tick()  # the play timer's callback, while the help screen is on top
        assert app.replay.position == before + 1 and app.is_running

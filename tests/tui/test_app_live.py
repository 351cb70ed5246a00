"""The live chat, driven by Pilot over the scripted engine: ask, cancel, switch profile, follow up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fixtures_tui import ANSWER, QUESTION, ScriptedSource, episode_script, plain, settle

from orchestra_tui.core.events import Event
from orchestra_tui.tui.app import OrchestraApp
from orchestra_tui.tui.screens.profile_picker import ProfilePicker
from orchestra_tui.tui.widgets.cost_meter import CostMeter
from orchestra_tui.tui.widgets.header import SessionHeader
from orchestra_tui.tui.widgets.reasoning import ReasoningPane
from orchestra_tui.tui.widgets.tool_calls import ToolCallPane
from orchestra_tui.tui.widgets.transcript import Transcript

SIZE = (120, 40)


async def ask(pilot, question: str = QUESTION) -> None:
    pilot.app.query_one("#ask").value = question
    await pilot.press("enter")


async def test_ask_fills_transcript_reasoning_tool_calls_and_cost():
    source = ScriptedSource()
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await settle(app, pilot)
        assert source.asked == [QUESTION]

        transcript = app.query_one(Transcript).text()
        assert QUESTION in transcript and ANSWER in transcript and "answered" in transcript

        reasoning = app.query_one(ReasoningPane)
        assert len(reasoning.folds) == 3
        assert [fold.collapsed for fold in reasoning.folds] == [True, True, False]  # the current round open
        assert "The code printed 2280" in reasoning.fold(3).text()
        assert "search(search-2)" in plain(reasoning.fold(1)._title)

        pane = app.query_one(ToolCallPane)
        titles = [plain(row._title) for row in pane.rows]
        assert len(titles) == 3
        assert "search" in titles[0] and "search-2 → gpt" in titles[0] and "≥$0.000141" in titles[0]
        assert "enhance_reasoning" in titles[1] and "✓ 1.3s" in titles[1]
        assert "answer" in titles[2] and "$0.00138" in titles[2]

        # A row opens to its details: query, documents, code and output.
        search, code = pane.row("c1"), pane.row("c2")
        search.collapsed = False
        code.collapsed = False
        await pilot.pause()
        details = plain(search.details)
        assert "Eiffel Tower opening year" in details and "eiffel-1" in details and "opened on 31 March 1889" in details
        details = plain(code.details)
        assert "print(17 * 23 + 1889)" in details and "stdout" in details and "2280" in details

        meter = plain(app.query_one(CostMeter).query_one(".totals"))
        assert "≥$0.00237" in meter and "1 unpriced" in meter
        assert "$0 " not in meter
        header = plain(app.query_one(SessionHeader))
        assert "answered" in header and "profile balanced" in header and "Orchestrator-8B-Q8_0" in header


async def test_streamed_thinking_is_painted_while_the_round_runs():
    source = ScriptedSource(hold_at_round=2)
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await source.holding.wait()
        app.paint()
        await pilot.pause()
        assert "running" in plain(app.query_one(SessionHeader))
        assert len(app.query_one(ReasoningPane).folds) == 1
        assert len(app.query_one(ToolCallPane).rows) == 1
        source.resume.set()
        await settle(app, pilot)


async def test_escape_cancels_the_running_episode():
    source = ScriptedSource(hold_at_round=2)
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await source.holding.wait()
        await pilot.press("escape")
        assert "cancelling" in plain(app.query_one(SessionHeader))
        source.resume.set()
        await settle(app, pilot)
        assert app.state.status == "cancelled"
        assert "cancelled" in plain(app.query_one(SessionHeader))
        assert "cancelled" in app.query_one(Transcript).text()
        assert len(app.query_one(ToolCallPane).rows) == 1  # round 2 never ran
        assert not app.check_action("cancel_episode", ())


async def test_a_second_escape_stops_an_engine_that_does_not_answer_cancel():
    class Stuck:
        profile_name, policy_label = "balanced", "test"

        def __init__(self) -> None:
            self.cancels = 0

        async def ask(self, question: str) -> AsyncIterator[Event]:
            yield episode_script(question)[0]
            await asyncio.Event().wait()

        def cancel(self) -> None:
            self.cancels += 1

    source = Stuck()
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, "hang")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.press("escape")
        await settle(app, pilot)
        assert source.cancels == 1
        assert app.state.status == "cancelled"
        assert "cancelled" in app.query_one(Transcript).text()


async def test_switching_profile_mid_episode_applies_from_the_next_round():
    source = ScriptedSource(hold_at_round=2)
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await source.holding.wait()
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, ProfilePicker)
        await pilot.press("down", "enter")  # balanced → fast
        await pilot.pause()
        assert source.switches == ["fast"]
        assert "→ fast (next round)" in plain(app.query_one(SessionHeader))
        source.resume.set()
        await settle(app, pilot)
        header = plain(app.query_one(SessionHeader))
        assert "profile fast" in header and "next round" not in header
        assert "profile switched to fast from round 2" in app.query_one(Transcript).text()
        # Round 1 was charged to the old profile, later rounds to the new one.
        assert app.state.by_profile["balanced"].calls == 3
        assert app.state.by_profile["fast"].calls == 5


async def test_profiles_are_offered_in_the_command_palette():
    source = ScriptedSource()
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Switch profile…" in titles and "Cancel episode" not in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"frugal")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert source.switches == ["frugal"]
        # Idle, the scripted engine applies it when the next question's first round starts.
        assert "profile balanced → frugal (next round)" in plain(app.query_one(SessionHeader))


async def test_a_follow_up_is_another_episode_in_the_same_panes():
    source = ScriptedSource()
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await settle(app, pilot)
        await ask(pilot, "And in hexadecimal?")
        await settle(app, pilot)
        assert source.asked == [QUESTION, "And in hexadecimal?"]
        assert len(app.query_one(ToolCallPane).rows) == 6
        folds = app.query_one(ReasoningPane).folds
        assert len(folds) == 6 and not folds[-1].collapsed and folds[2].collapsed
        assert app.state.session.cost == 2 * app.state.question.cost


async def test_the_app_starts_without_keys_and_says_what_is_unavailable():
    source = ScriptedSource(unavailable=[("answer-1", "OPENAI_API_KEY is not set"),
                                         ("search-1", "OPENAI_API_KEY is not set")])
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "unavailable (OPENAI_API_KEY is not set): answer-1, search-1" in app.query_one(Transcript).text()


async def test_without_an_engine_the_app_opens_and_explains():
    app = OrchestraApp(None, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, "anything")
        await pilot.pause()
        assert "No engine is attached" in app.query_one(Transcript).text()
        assert app.state.status == "idle"


async def test_an_engine_error_is_shown_not_raised():
    class Broken:
        profile_name, policy_label = "balanced", "test"

        async def ask(self, question: str) -> AsyncIterator[Event]:
            yield episode_script(question)[0]
            raise RuntimeError("backend went away")

        def cancel(self) -> None:
            pass

    app = OrchestraApp(Broken(), cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, "boom")
        await settle(app, pilot)
        text = app.query_one(Transcript).text()
        assert "backend went away" in text and "failed" in text
        assert app.state.status == "error"


async def test_help_and_zoom():
    app = OrchestraApp(ScriptedSource(), cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("f3")
        await pilot.pause()
        assert app.screen.maximized is app.query_one(Transcript)
        await pilot.press("f3")
        assert app.screen.maximized is None

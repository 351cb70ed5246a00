"""Replay through the same panes: every position shows the state as of that many events."""

from __future__ import annotations

from fixtures_tui import ANSWER, QUESTION, plain, recorded_events

from orchestra_tui.core.events import RoundStarted
from orchestra_tui.tui.app import OrchestraApp
from orchestra_tui.tui.replay import ReplayCursor
from orchestra_tui.tui.widgets.cost_meter import CostMeter
from orchestra_tui.tui.widgets.header import SessionHeader
from orchestra_tui.tui.widgets.reasoning import ReasoningPane
from orchestra_tui.tui.widgets.timeline import Timeline
from orchestra_tui.tui.widgets.tool_calls import ToolCallPane
from orchestra_tui.tui.widgets.transcript import Transcript

SIZE = (120, 40)
HEADER = {"profile": "balanced", "policy": {"backend": "llama.cpp", "model": "Orchestrator-8B-Q8_0"}}


def panes(app):
    return (
        app.query_one(Transcript).text(),
        [(fold.key, fold.collapsed) for fold in app.query_one(ReasoningPane).folds],
        [row.call_id for row in app.query_one(ToolCallPane).rows],
    )


def round_start(events, n: int) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, RoundStarted) and e.round == n) + 1


async def test_replay_steps_forward_and_back_and_jumps_to_rounds():
    events = recorded_events()
    app = OrchestraApp(None, events, header=HEADER, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.replay.position == 0
        assert panes(app) == ("", [], [])
        assert "replay" in plain(app.query_one(SessionHeader))

        await pilot.press("right")  # EpisodeStarted
        await pilot.pause()
        assert app.replay.position == 1
        assert panes(app)[0] == QUESTION

        await pilot.press("2")  # jump to round 2
        await pilot.pause()
        assert app.replay.position == round_start(events, 2)
        text, folds, calls = panes(app)
        assert folds == [((1, 1), True), ((1, 2), False)]  # round 2 open, round 1 folded
        assert calls == ["c1"]
        assert "thinking…" in plain(app.query_one(ReasoningPane).fold(2)._title)
        assert "≥$0.000216 + 1 unpriced" in plain(app.query_one(CostMeter).query_one(".totals"))

        await pilot.press("left")  # one event back: round 2 has not started
        await pilot.pause()
        assert app.replay.position == round_start(events, 2) - 1
        assert panes(app)[1] == [((1, 1), False)]
        assert "✓" in plain(app.query_one(ToolCallPane).row("c1")._title)

        await pilot.press("right_square_bracket")  # next round is round 2 again
        await pilot.press("right_square_bracket")  # then round 3
        await pilot.pause()
        assert app.replay.position == round_start(events, 3)
        assert [key for key, _ in panes(app)[1]] == [(1, 1), (1, 2), (1, 3)]

        await pilot.press("left_square_bracket")  # from a round's start, back to the previous round
        await pilot.pause()
        assert app.replay.position == round_start(events, 2)

        await pilot.press("end")
        await pilot.pause()
        text, folds, calls = panes(app)
        assert ANSWER in text and "answered" in text and calls == ["c1", "c2", "c3"]
        assert "answered" in plain(app.query_one(SessionHeader))

        await pilot.press("home")
        await pilot.pause()
        assert panes(app) == ("", [], [])


async def test_every_position_looks_the_same_folded_afresh_or_stepped_into():
    events = recorded_events()
    app = OrchestraApp(None, events, header=HEADER, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        refolded = {}
        app.replay_seek(len(events))
        for k in range(len(events), -1, -1):  # a step back re-folds the prefix from scratch
            app.replay_seek(k)
            await pilot.pause()
            refolded[k] = panes(app)
        for k in range(1, len(events) + 1):  # a step forward folds one more event into what is shown
            app.replay_seek(k)
            await pilot.pause()
            assert panes(app) == refolded[k], k


async def test_the_timeline_jumps_where_it_is_clicked_and_play_advances():
    events = recorded_events()
    app = OrchestraApp(None, events, header=HEADER, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        timeline = app.query_one(Timeline)
        await pilot.click(Timeline, offset=(timeline.size.width - 1, 0))
        await pilot.pause()
        assert app.replay.at_end
        await pilot.click(Timeline, offset=(timeline.size.width // 2, 0))
        await pilot.pause()
        assert 0 < app.replay.position < len(events)

        app.replay_seek(0)
        await pilot.press("space")
        assert app.replay.playing and "playing" in timeline.render().plain
        before = app.replay.position
        app._play_tick()  # the timer's callback, called directly instead of waiting for it
        assert app.replay.position == before + 1
        await pilot.press("space")
        assert not app.replay.playing
        await pilot.press("plus")
        assert app.replay.speed == 2.0


async def test_replay_keys_are_not_active_in_live_mode():
    app = OrchestraApp(None, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "left")
        await pilot.pause()
        assert app.query_one("#ask").value == "2"
        assert not app.check_action("play_pause", ())


def test_cursor_chapters_and_playback_delay():
    events = recorded_events()
    cursor = ReplayCursor(events)
    assert [c.label for c in cursor.chapters] == ["R1", "R2", "R3"]
    assert cursor.current_chapter() is None
    assert cursor.round_position(2) == round_start(events, 2)
    assert cursor.round_position(9) is None
    cursor.seek(round_start(events, 2) + 3)
    assert cursor.current_chapter() == 1
    assert cursor.neighbour_chapter_position(-1) == round_start(events, 2)
    assert cursor.neighbour_chapter_position(1) == round_start(events, 3)
    assert cursor.seek(10_000) == len(events) and cursor.at_end
    cursor.seek(1)
    assert cursor.delay_to_next() == 0.25  # recorded gap, within the caps
    cursor.change_speed(+1)
    assert cursor.delay_to_next() == 0.125

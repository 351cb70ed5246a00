"""Opening a saved trajectory from inside the app: the listing, the switch to replay through the same event
path, and the way back to the live chat as it was."""

from __future__ import annotations

import os
import time

from fixtures_tui import ANSWER, QUESTION, ScriptedSource, episode_script, plain, recorded_events, settle, \
    write_trajectory

from orchestra_tui.core.events import RoundStarted
from orchestra_tui.tui.app import OrchestraApp
from orchestra_tui.tui.screens.trajectory_picker import TrajectoryPicker
from orchestra_tui.tui.trajectory_index import list_trajectories
from orchestra_tui.tui.widgets.header import SessionHeader
from orchestra_tui.tui.widgets.reasoning import ReasoningPane
from orchestra_tui.tui.widgets.timeline import Timeline
from orchestra_tui.tui.widgets.tool_calls import ToolCallPane
from orchestra_tui.tui.widgets.transcript import Transcript

SIZE = (120, 40)
OTHER = "Which river runs through Paris?"


def saved_folder(tui_dirs):
    folder = tui_dirs["state"] / "trajectories"
    folder.mkdir(parents=True)
    return folder


def two_saved(tui_dirs):
    """An older file about QUESTION and a newer one about OTHER (mtimes set, so the order is known)."""
    folder = saved_folder(tui_dirs)
    old = write_trajectory(folder / "a-old.jsonl", recorded_events())
    new = write_trajectory(folder / "b-new.jsonl", [e for e in episode_script(OTHER) if not e.transient],
                           header={"profile": "cheap"})
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    return old, new


def test_the_listing_is_newest_first_with_question_date_and_profile(tui_dirs):
    old, new = two_saved(tui_dirs)
    folder = old.parent
    (folder / "notes.jsonl").write_text('{"not": "a trajectory"}\n')
    os.utime(folder / "notes.jsonl", (3_000_000, 3_000_000))
    write_trajectory(folder / "c-empty.jsonl", [])  # a session that never asked: header only
    os.utime(folder / "c-empty.jsonl", (500, 500))
    infos = list_trajectories(folder)
    assert [i.path.name for i in infos] == ["b-new.jsonl", "a-old.jsonl", "c-empty.jsonl"]
    newest = infos[0]
    assert newest.question == OTHER and newest.profile == "cheap"
    started = episode_script(OTHER)[0].ts
    assert newest.started == started
    assert newest.date_label() == time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
    assert infos[2].question is None and infos[2].started is None  # dated by the file instead
    assert list_trajectories(folder / "missing") == []


async def test_ctrl_o_opens_a_trajectory_in_replay_and_esc_returns_to_the_live_chat(tui_dirs):
    two_saved(tui_dirs)
    source = ScriptedSource()
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#ask").value = QUESTION
        await pilot.press("enter")
        await settle(app, pilot)
        live_transcript = app.query_one(Transcript).text()

        await pilot.press("ctrl+o")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, TrajectoryPicker)
        assert [i.question for i in picker.trajectories] == [OTHER, QUESTION]
        await pilot.press("enter")  # the newest
        await pilot.pause()

        assert app.replay is not None and app.replay_path.name == "b-new.jsonl"
        assert not app.query("#ask") and app.query_one(Timeline)
        header = plain(app.query_one(SessionHeader))
        assert "replay" in header and "profile cheap" in header
        assert app.query_one(Transcript).text() == ""  # the panes start at the first event
        await pilot.press("end")
        await pilot.pause()
        assert OTHER in app.query_one(Transcript).text() and ANSWER in app.query_one(Transcript).text()
        assert len(app.query_one(ToolCallPane).rows) == 3
        await pilot.press("2")  # the replay keys work as in `orchestra-tui replay`
        await pilot.pause()
        start_of_round_2 = next(i for i, e in enumerate(app.replay.events)
                                if isinstance(e, RoundStarted) and e.round == 2) + 1
        assert app.replay.position == start_of_round_2
        assert len(app.query_one(ReasoningPane).folds) == 2

        await pilot.press("escape")
        await pilot.pause()
        assert app.replay is None and app.query_one("#ask")
        assert app.query_one(Transcript).text() == live_transcript
        assert "replay" not in plain(app.query_one(SessionHeader))
        # The conversation goes on where it was: a follow-up is the second episode.
        app.query_one("#ask").value = "And in hex?"
        await pilot.press("enter")
        await settle(app, pilot)
        assert source.asked == [QUESTION, "And in hex?"] and app.state.episode == 2


async def test_a_broken_file_is_refused_and_the_live_chat_stays(tui_dirs):
    folder = saved_folder(tui_dirs)
    bad = folder / "bad.jsonl"
    bad.write_text('{"type": "header", "schema": "orchestra-tui.trajectory", "version": "9.0"}\n')
    app = OrchestraApp(ScriptedSource(), cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        assert not await app.open_trajectory(bad)
        await pilot.pause()
        assert app.replay is None and app.query_one("#ask")
        assert any("newer than this orchestra-tui reads" in n.message for n in app._notifications)


async def test_no_trajectory_is_opened_while_an_episode_runs(tui_dirs):
    old, _ = two_saved(tui_dirs)
    source = ScriptedSource(hold_at_round=2)
    app = OrchestraApp(source, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#ask").value = QUESTION
        await pilot.press("enter")
        await source.holding.wait()
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert not isinstance(app.screen, TrajectoryPicker)
        assert not await app.open_trajectory(old)
        assert app.replay is None
        source.resume.set()
        await settle(app, pilot)
        assert app.state.status == "answered"


async def test_a_replay_started_from_the_command_line_opens_another_file(tui_dirs):
    _, new = two_saved(tui_dirs)
    app = OrchestraApp(None, recorded_events(), header={"profile": "balanced"}, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("end")
        await pilot.pause()
        assert QUESTION in app.query_one(Transcript).text()
        assert not app.check_action("leave_replay", ())  # there is no live chat to go back to
        assert await app.open_trajectory(new)
        await pilot.press("end")
        await pilot.pause()
        text = app.query_one(Transcript).text()
        assert OTHER in text and QUESTION not in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.replay is not None


async def test_the_picker_says_when_there_is_nothing_to_open(tui_dirs):
    app = OrchestraApp(ScriptedSource(), cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, TrajectoryPicker)
        assert "No saved trajectories yet" in plain(app.screen.query_one(".empty"))
        await pilot.press("escape")
        await pilot.pause()
        assert app.replay is None and len(app.screen_stack) == 1

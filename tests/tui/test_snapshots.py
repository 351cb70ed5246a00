"""How the main states look, as SVG snapshots at fixed sizes.

Deterministic by construction: the scripted engine has fixed tokens, prices, durations and timestamps, the
input cursor does not blink, no user config is read, and nothing renders the wall clock.
Regenerate with `pytest tests/tui/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

from fixtures_tui import QUESTION, ScriptedSource, recorded_events

from orchestra_tui.tui.app import OrchestraApp

LARGE = (120, 40)
SMALL = (80, 24)
HEADER = {"profile": "balanced", "policy": {"backend": "llama.cpp", "model": "Orchestrator-8B-Q8_0"}}
NO_KEYS = [("answer-1", "OPENAI_API_KEY is not set"), ("search-1", "OPENAI_API_KEY is not set")]


def live_app() -> OrchestraApp:
    return OrchestraApp(ScriptedSource(unavailable=NO_KEYS), cursor_blink=False)


async def answer_one_question(pilot) -> None:
    pilot.app.query_one("#ask").value = QUESTION
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def test_idle_empty(snap_compare):
    assert snap_compare(live_app(), terminal_size=LARGE)


def test_after_an_answer(snap_compare):
    assert snap_compare(live_app(), terminal_size=LARGE, run_before=answer_one_question)


def test_after_an_answer_at_80x24(snap_compare):
    assert snap_compare(live_app(), terminal_size=SMALL, run_before=answer_one_question)


def test_after_an_answer_with_a_row_open(snap_compare):
    async def open_code_row(pilot) -> None:
        await answer_one_question(pilot)
        pilot.app.query_one("#tool-calls").row("c2").collapsed = False
        await pilot.pause()

    assert snap_compare(live_app(), terminal_size=LARGE, run_before=open_code_row)


def test_replay_at_round_2(snap_compare):
    app = OrchestraApp(None, recorded_events(), header=HEADER, cursor_blink=False)
    assert snap_compare(app, terminal_size=LARGE, press=["2", "right", "right"])


def test_help_screen(snap_compare):
    assert snap_compare(live_app(), terminal_size=SMALL, press=["f1"])


def test_after_an_answer_light_theme(snap_compare):
    app = OrchestraApp(ScriptedSource(unavailable=NO_KEYS), cursor_blink=False, theme="textual-light")
    assert snap_compare(app, terminal_size=LARGE, run_before=answer_one_question)


def test_profile_editor_at_80x24(snap_compare, tui_dirs):
    from fixtures_tui import SHIPPED_PROFILES

    app = OrchestraApp(ScriptedSource(profiles=SHIPPED_PROFILES), cursor_blink=False)
    # Focus on the second slider, moved down a tenth: the focused look and a changed value in one picture.
    assert snap_compare(app, terminal_size=SMALL, press=["f5", "down", "left"])


def test_trajectory_picker(snap_compare, tui_dirs, monkeypatch):
    import os
    import time

    from fixtures_tui import episode_script, write_trajectory

    monkeypatch.setenv("TZ", "UTC")  # dates are shown in local time
    time.tzset()
    folder = tui_dirs["state"] / "trajectories"
    folder.mkdir(parents=True)
    for i, question in enumerate([QUESTION, "Which river runs through Paris?"]):
        path = write_trajectory(folder / f"run-{i}.jsonl",
                                [e for e in episode_script(question, episode=i + 1) if not e.transient])
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    try:
        assert snap_compare(live_app(), terminal_size=LARGE, press=["ctrl+o"])
    finally:
        monkeypatch.undo()
        time.tzset()

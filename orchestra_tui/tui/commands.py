"""Command palette entries. Each is offered only when it makes sense now: cancel while an episode runs,
profiles when the engine can switch, replay moves in replay mode, back to live in a replay opened from it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.app import SystemCommand

if TYPE_CHECKING:
    from orchestra_tui.tui.app import OrchestraApp


class ProfileCommands(Provider):
    """`Profile: NAME` for every other profile the engine knows, and `Edit profile: NAME` for every one."""

    def _entries(self) -> list[tuple[str, Callable[[], object], str]]:
        app: OrchestraApp = self.app  # type: ignore[assignment]
        current = app.handler.state.profile
        names = app.profile_names()
        entries = [(f"Profile: {name}", partial(app.switch_profile, name), "Use this profile from the next round")
                   for name in names if name != current]
        if app.can_edit_profiles():
            entries += [(f"Edit profile: {name}", partial(app.action_edit_profile, name),
                         "Sliders, budgets and hard rules; saves to your profiles folder") for name in names]
        return entries

    async def discover(self) -> Hits:
        for text, run, help_text in self._entries():
            yield DiscoveryHit(text, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, run, help_text in self._entries():
            if (score := matcher.match(text)) > 0:
                yield Hit(score, matcher.highlight(text), run, help=help_text)


def app_commands(app: OrchestraApp) -> Iterable[SystemCommand]:
    yield SystemCommand("Help", "What the panes show and the keys (F1)", app.action_help)
    yield SystemCommand("Cost breakdown", "Show or hide the breakdown by kind, model and profile (F4)",
                        app.action_toggle_breakdown)
    if app.replay is None:
        if app.handler.state.running:
            yield SystemCommand(
                "Cancel episode", "Stop the running episode cleanly (Esc)", app.action_cancel_episode
            )
        else:
            yield SystemCommand("Open trajectory…", "Replay a saved episode in these panes (Ctrl+O)",
                                app.action_open_trajectory)
        if app.can_switch_profiles():
            yield SystemCommand(
                "Switch profile…", "Pick the profile for the next round (F2)", app.action_pick_profile
            )
        if app.can_edit_profiles():
            yield SystemCommand("Edit profile…", "The active profile: sliders, budgets, hard rules (F5)",
                                app.action_edit_profile)
        return
    yield SystemCommand("Open trajectory…", "Replay another saved episode (Ctrl+O)", app.action_open_trajectory)
    if app.can_leave_replay:
        yield SystemCommand("Back to live chat", "Leave the replay; the conversation is as it was (Esc)",
                            app.action_leave_replay)
    cursor = app.replay
    yield SystemCommand("Pause replay" if cursor.playing else "Play replay", "Space", app.action_play_pause)
    yield SystemCommand("Replay: first event", "Home", partial(app.replay_seek, 0))
    yield SystemCommand("Replay: last event", "End", partial(app.replay_seek, cursor.total))
    for i, chapter in enumerate(cursor.chapters):
        yield SystemCommand(f"Jump to {chapter.label}", f"Replay from the start of round {chapter.round}",
                            partial(app.replay_chapter, i))

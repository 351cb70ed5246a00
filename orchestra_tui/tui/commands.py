"""Command palette entries. Each is offered only when it makes sense now: cancel while an episode runs,
profiles when the engine can switch, replay moves in replay mode."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.app import SystemCommand

if TYPE_CHECKING:
    from orchestra_tui.tui.app import OrchestraApp


class ProfileCommands(Provider):
    """`Profile: NAME` for every profile the engine knows."""

    def _entries(self) -> list[tuple[str, str]]:
        app: OrchestraApp = self.app  # type: ignore[assignment]
        current = app.handler.state.profile
        return [(f"Profile: {name}", name) for name in app.profile_names() if name != current]

    async def discover(self) -> Hits:
        app: OrchestraApp = self.app  # type: ignore[assignment]
        for text, name in self._entries():
            yield DiscoveryHit(text, partial(app.switch_profile, name), help="Use this profile from the next round")

    async def search(self, query: str) -> Hits:
        app: OrchestraApp = self.app  # type: ignore[assignment]
        matcher = self.matcher(query)
        for text, name in self._entries():
            if (score := matcher.match(text)) > 0:
                yield Hit(score, matcher.highlight(text), partial(app.switch_profile, name),
                          help="Use this profile from the next round")


def app_commands(app: OrchestraApp) -> Iterable[SystemCommand]:
    yield SystemCommand("Help", "What the panes show and the keys (F1)", app.action_help)
    yield SystemCommand("Cost breakdown", "Show or hide the breakdown by kind, model and profile (F4)",
                        app.action_toggle_breakdown)
    if app.replay is None:
        if app.handler.state.running:
            yield SystemCommand(
                "Cancel episode", "Stop the running episode cleanly (Esc)", app.action_cancel_episode
            )
        if app.profile_names():
            yield SystemCommand(
                "Switch profile…", "Pick the profile for the next round (F2)", app.action_pick_profile
            )
        if app.profile_editor is not None:
            yield SystemCommand("Edit profiles…", "Sliders per alias and for cost, latency, quality",
                                app.action_edit_profiles)
        return
    cursor = app.replay
    yield SystemCommand("Pause replay" if cursor.playing else "Play replay", "Space", app.action_play_pause)
    yield SystemCommand("Replay: first event", "Home", partial(app.replay_seek, 0))
    yield SystemCommand("Replay: last event", "End", partial(app.replay_seek, cursor.total))
    for i, chapter in enumerate(cursor.chapters):
        yield SystemCommand(f"Jump to {chapter.label}", f"Replay from the start of round {chapter.round}",
                            partial(app.replay_chapter, i))

"""Opening a saved trajectory from inside the app (Ctrl+O), and going back to the live chat (Esc).

A mixin of `OrchestraApp`. A replay opened here runs through exactly the path `orchestra-tui replay FILE`
takes: a `ReplayCursor` over the loaded events, folded by a replay-mode `EventHandler` into freshly composed
panes. The live chat's handler is kept aside untouched, so going back shows the conversation as it was and
the next question follows up on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestra_tui.core.trajectory import TrajectoryError, load_trajectory
from orchestra_tui.paths import trajectories_dir
from orchestra_tui.tui.event_handler import EventHandler
from orchestra_tui.tui.replay import ReplayCursor
from orchestra_tui.tui.screens.trajectory_picker import TrajectoryPicker
from orchestra_tui.tui.trajectory_index import list_trajectories

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen
    from textual.timer import Timer

    from orchestra_tui.tui.state import SessionView

    _AppBase = App[int]
else:
    _AppBase = object


class ModeSwitch(_AppBase):
    # Provided by the app this is mixed into.
    source: Any
    replay: ReplayCursor | None
    handler: EventHandler
    header_info: dict[str, Any]
    state: SessionView
    _initial: dict[str, Any]
    _play_timer: Timer | None
    # The live chat while a replay opened from it is shown: (handler, initial view, header).
    _live: tuple[EventHandler, dict[str, Any], dict[str, Any]] | None = None
    replay_path: Path | None = None

    if TYPE_CHECKING:
        main_screen: Screen

        def _initial_view(self) -> dict[str, Any]: ...

        def setup_panes(self) -> None: ...

    @property
    def can_leave_replay(self) -> bool:
        return self.replay is not None and self._live is not None

    def action_open_trajectory(self) -> None:
        if self.replay is None and self.state.running:
            self.notify("An episode is running; Esc cancels it, then Ctrl+O opens a trajectory.", severity="warning")
            return
        folder = trajectories_dir()
        self.push_screen(TrajectoryPicker(list_trajectories(folder), folder), self._trajectory_picked)

    async def _trajectory_picked(self, path: Path | None) -> None:
        if path is not None:
            await self.open_trajectory(path)

    async def open_trajectory(self, path: Path) -> bool:
        """Replay `path` in the panes. The live chat (if that is what was shown) is kept for `leave_replay`."""
        if self.replay is None and self.state.running:
            self.notify("An episode is running; cancel it before opening a trajectory.", severity="warning")
            return False
        try:
            trajectory = load_trajectory(path)
        except TrajectoryError as error:
            self.notify(str(error), severity="error", title="Cannot open", markup=False)
            return False
        self._stop_playing()
        if self.replay is None:
            self._live = (self.handler, self._initial, self.header_info)
        self.handler.panes = []  # the old panes are about to go; nothing may paint into them
        self.replay = ReplayCursor(trajectory.events)
        self.replay_path = Path(path)
        self.header_info = dict(trajectory.header)
        self._initial = self._initial_view()
        self.handler = EventHandler(mode="replay")
        self.handler.reset(**self._initial)
        await self._recompose_main()
        if trajectory.torn_tail:
            self.notify("The last line was incomplete: the run was killed while writing it.", severity="warning")
        return True

    async def action_leave_replay(self) -> None:
        await self.leave_replay()

    async def leave_replay(self) -> bool:
        """Back to the live chat a replay was opened from, as it was."""
        if self._live is None or self.replay is None:
            return False
        self._stop_playing()
        self.handler.panes = []
        self.handler, self._initial, self.header_info = self._live
        self._live = None
        self.replay = None
        self.replay_path = None
        await self._recompose_main()
        return True

    def _stop_playing(self) -> None:
        if self.replay is not None:
            self.replay.playing = False
        if self._play_timer is not None:
            self._play_timer.stop()
            self._play_timer = None

    async def _recompose_main(self) -> None:
        await self.main_screen.query_one("#main").recompose()
        self.setup_panes()
        self.refresh_bindings()

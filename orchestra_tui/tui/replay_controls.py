"""Replay controls of the app: seek, step, rounds, play and speed, the timeline.

A mixin so the app module stays about layout and live chat. It relies on the App it is mixed into for
`query_one` and `set_timer`, and on the app's `replay` cursor, `handler` and `_initial` view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestra_tui.tui.widgets.timeline import Timeline

if TYPE_CHECKING:
    from textual.app import App
    from textual.timer import Timer

    from orchestra_tui.tui.event_handler import EventHandler
    from orchestra_tui.tui.replay import ReplayCursor

    _AppBase = App[int]
else:
    _AppBase = object


class ReplayControls(_AppBase):
    replay: ReplayCursor | None
    handler: EventHandler
    _initial: dict[str, Any]
    _play_timer: Timer | None = None

    def _timeline(self) -> Timeline:
        # The main screen's, also while a dialog is on top (playback goes on under the help screen).
        return self.screen_stack[0].query_one(Timeline)

    def replay_seek(self, position: int) -> None:
        """Show the state as of `position` events. One step forward folds one event; any other move
        re-folds from the start, which is exact by construction."""
        cursor = self.replay
        if cursor is None:
            return
        before = cursor.position
        after = cursor.seek(position)
        if after == before + 1 and after > 0:
            self.handler.handle(cursor.events[before])
        elif after != before or position == 0:
            self.handler.reset(**self._initial)
            self.handler.handle_all(cursor.events[:after])
        self.handler.flush()
        self._timeline().refresh()

    def replay_chapter(self, index: int) -> None:
        if self.replay is not None:
            self.replay_seek(self.replay.chapter_position(index))

    def action_step(self, delta: int) -> None:
        if self.replay is not None:
            self.replay_seek(self.replay.position + delta)

    def action_round_step(self, direction: int) -> None:
        if self.replay is not None:
            self.replay_seek(self.replay.neighbour_chapter_position(direction))

    def action_jump_round(self, number: int) -> None:
        if self.replay is not None and (position := self.replay.round_position(number)) is not None:
            self.replay_seek(position)

    def action_seek_edge(self, end: int) -> None:
        if self.replay is not None:
            self.replay_seek(self.replay.total if end else 0)

    def action_speed(self, direction: int) -> None:
        if self.replay is not None:
            self.replay.change_speed(direction)
            self._timeline().refresh()

    def action_play_pause(self) -> None:
        cursor = self.replay
        if cursor is None:
            return
        cursor.playing = not cursor.playing
        if cursor.playing:
            if cursor.at_end:
                self.replay_seek(0)
            self._play_timer = self.set_timer(cursor.delay_to_next(), self._play_tick)
        elif self._play_timer is not None:
            self._play_timer.stop()
        self._timeline().refresh()

    def _play_tick(self) -> None:
        cursor = self.replay
        if cursor is None or not cursor.playing:
            return
        self.replay_seek(cursor.position + 1)
        if cursor.at_end:
            cursor.playing = False
            self._timeline().refresh()
        else:
            self._play_timer = self.set_timer(cursor.delay_to_next(), self._play_tick)

    # Named, not @on-decorated: Textual collects decorated handlers only from App subclasses, and finds
    # `on_<message>` methods through the whole MRO, mixins included.
    def on_timeline_seek(self, event: Timeline.Seek) -> None:
        self.replay_seek(event.position)

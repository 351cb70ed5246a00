"""The replay timeline: a bar over the recorded events with a tick per round; a click jumps there."""

from __future__ import annotations

from textual import events
from textual.content import Content
from textual.message import Message
from textual.widget import Widget

from orchestra_tui.tui.replay import ReplayCursor


class Timeline(Widget):
    DEFAULT_CSS = "Timeline { height: 2; }"

    class Seek(Message):
        def __init__(self, position: int) -> None:
            super().__init__()
            self.position = position

    def __init__(self, cursor: ReplayCursor, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cursor = cursor

    def _column(self, position: int, width: int) -> int:
        total = max(self.cursor.total, 1)
        return min(width - 1, round(position * (width - 1) / total))

    def render(self) -> Content:
        width = max(self.size.width, 10)
        cursor = self.cursor
        ticks = {self._column(cursor.chapter_start(c), width) for c in cursor.chapters}
        here = self._column(cursor.position, width)
        cells = []
        for x in range(width):
            if x == here:
                cells.append(("●", "bold $accent"))
            elif x in ticks:
                cells.append(("┃", "$secondary"))
            elif x < here:
                cells.append(("━", "$accent"))
            else:
                cells.append(("─", "$text-muted"))
        # Runs of one style become one span; a bar of single-cell spans is needlessly slow to render.
        bar: list[tuple[str, str]] = []
        for char, style in cells:
            if bar and bar[-1][1] == style:
                bar[-1] = (bar[-1][0] + char, style)
            else:
                bar.append((char, style))
        current = cursor.current_chapter()
        where = (
            f"{cursor.chapters[current].label} ({current + 1} of {len(cursor.chapters)})"
            if current is not None
            else f"before round 1 (of {len(cursor.chapters)})"
        )
        state = "▶ playing" if cursor.playing else "⏸ paused"
        speed = f"{cursor.speed:g}×"
        status = f"{state} · {speed} · event {cursor.position}/{cursor.total} · {where}"
        return Content.assemble(*bar, "\n", (status, "bold"))

    def on_click(self, event: events.Click) -> None:
        width = max(self.size.width, 10)
        position = round(event.x * max(self.cursor.total, 1) / (width - 1))
        self.post_message(self.Seek(position))

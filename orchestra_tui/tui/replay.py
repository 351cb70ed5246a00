"""Where a replay stands: a position in the recorded events, the rounds as chapters, play speed.

The cursor only moves through `seek`; the `*_position` methods say where a move would land.
Position k means "the first k events have happened". The panes show the fold of events[:k], so stepping
back is as exact as stepping forward. No Textual here: the app drives this and renders the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestra_tui.core.events import EpisodeStarted, Event, RoundStarted

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# Recorded gaps can be a minute long (a slow expert); playback caps them so something always moves.
MIN_GAP_S = 0.05
MAX_GAP_S = 1.5


@dataclass(frozen=True)
class Chapter:
    """A round: where it starts in the event list and how to name it."""

    index: int  # position of its RoundStarted event
    episode: int
    round: int

    @property
    def label(self) -> str:
        return f"Q{self.episode}·R{self.round}" if self.episode > 1 else f"R{self.round}"


class ReplayCursor:
    def __init__(self, events: list[Event]) -> None:
        self.events = list(events)
        self.position = 0
        self.playing = False
        self.speed_index = SPEEDS.index(1.0)
        self.chapters = self._chapters(self.events)

    @staticmethod
    def _chapters(events: list[Event]) -> list[Chapter]:
        chapters, episode = [], 0
        for index, event in enumerate(events):
            if isinstance(event, EpisodeStarted):
                episode += 1
            elif isinstance(event, RoundStarted):
                chapters.append(Chapter(index, max(episode, 1), event.round))
        return chapters

    @property
    def total(self) -> int:
        return len(self.events)

    @property
    def speed(self) -> float:
        return SPEEDS[self.speed_index]

    @property
    def at_end(self) -> bool:
        return self.position >= self.total

    def seek(self, position: int) -> int:
        self.position = max(0, min(self.total, position))
        return self.position

    def step(self, delta: int) -> int:
        return self.seek(self.position + delta)

    def chapter_start(self, chapter: Chapter) -> int:
        """A round is entered once its RoundStarted has happened."""
        return chapter.index + 1

    def current_chapter(self) -> int | None:
        """Index into `chapters` of the round the position is in, None before the first round."""
        current = None
        for i, chapter in enumerate(self.chapters):
            if self.chapter_start(chapter) <= self.position:
                current = i
        return current

    def chapter_position(self, i: int) -> int:
        """Where chapter `i` (clamped to the existing ones) starts."""
        if not self.chapters:
            return self.position
        i = max(0, min(len(self.chapters) - 1, i))
        return self.chapter_start(self.chapters[i])

    def round_position(self, number: int, episode: int | None = None) -> int | None:
        """Where round `number` starts (in the first episode that has it, unless one is named)."""
        for chapter in self.chapters:
            if chapter.round == number and (episode is None or chapter.episode == episode):
                return self.chapter_start(chapter)
        return None

    def neighbour_chapter_position(self, direction: int) -> int:
        """Where the next (+1) or previous (-1) round starts, seen from the current position."""
        current = self.current_chapter()
        if direction > 0:
            return self.chapter_position(0 if current is None else current + 1)
        if current is None:
            return 0
        # Going back from inside a round first returns to its start, like a media player.
        if self.position > self.chapter_start(self.chapters[current]):
            return self.chapter_position(current)
        return self.chapter_position(current - 1) if current > 0 else 0

    def change_speed(self, direction: int) -> float:
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + direction))
        return self.speed

    def delay_to_next(self) -> float:
        """Seconds to wait before applying the next event while playing: recorded gap, capped, sped up."""
        if self.position == 0 or self.at_end:
            return MIN_GAP_S
        gap = self.events[self.position].ts - self.events[self.position - 1].ts
        return min(max(gap, MIN_GAP_S), MAX_GAP_S) / self.speed

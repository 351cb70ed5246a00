"""Reading episodes back out of a trajectory's events: where each one starts and ends, which round every
event belongs to, and the few totals that export, fork, diff and eval all need.

Round attribution is what fork and diff rest on, so the rule is explicit. An event carrying `round` (round
started, policy output, rejection, tool call started, charge, profile switch) belongs to that round; an
event carrying only `call_id` (expert output, query, documents, code, finished, final answer) belongs to
the round of the call it is part of; a notice carries neither and belongs to the round of the next event
that does — it always announces something about to happen in that round (a failing expert, an overrun,
a last-resort answer) — or, when only the episode's end follows it, to the episode's last round.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from orchestra_tui.core.events import (
    Judged,
    EpisodeEnded,
    EpisodeStarted,
    Event,
    ToolCallStarted,
)


@dataclass
class EpisodeRecord:
    """One episode as recorded: its opening event, everything after it, and its end (None if cut off)."""

    started: EpisodeStarted
    events: list[Event]  # after `started`, up to and excluding `ended`
    ended: EpisodeEnded | None
    rounds_of: list[int] = field(default_factory=list)  # the round of each of `events`
    verdict: Judged | None = None  # the last verdict after its end (eval trajectories)

    @property
    def finished(self) -> bool:
        return self.ended is not None

    def round_events(self, number: int) -> list[Event]:
        return [e for e, r in zip(self.events, self.rounds_of, strict=True) if r == number]

    def rounds(self) -> list[int]:
        """Round numbers that left at least one event, in order."""
        return sorted(set(self.rounds_of))

    def prefix(self, last_round: int) -> list[Event]:
        """`started` and every event of rounds 1..last_round, in their recorded order."""
        return [self.started, *(e for e, r in zip(self.events, self.rounds_of, strict=True) if r <= last_round)]

    def calls_per_alias(self) -> Counter[str]:
        return Counter(e.alias for e in self.events if isinstance(e, ToolCallStarted))


def split_episodes(events: list[Event]) -> list[EpisodeRecord]:
    """Every episode in order. Events between episodes (availability notices, a switch between
    questions) belong to none and are left out; a file cut off mid-episode yields an unfinished record."""
    records: list[EpisodeRecord] = []
    current: EpisodeRecord | None = None
    for event in events:
        if isinstance(event, EpisodeStarted):
            current = EpisodeRecord(event, [], None)
            records.append(current)
        elif isinstance(event, Judged):
            if current is not None:
                current.verdict = event  # a later verdict (a re-judge) replaces an earlier one
        elif current is not None and current.ended is None:
            if isinstance(event, EpisodeEnded):
                current.ended = event
            else:
                current.events.append(event)
    for record in records:
        record.rounds_of = attribute_rounds(record.events, record.ended)
    return records


def attribute_rounds(events: list[Event], ended: EpisodeEnded | None = None) -> list[int]:
    """The round each event belongs to (see the module docstring)."""
    call_round: dict[str, int] = {}
    known: list[int | None] = []
    for event in events:
        number = getattr(event, "round", None)
        call_id = getattr(event, "call_id", None)
        if isinstance(number, int):
            if isinstance(event, ToolCallStarted):
                call_round[event.call_id] = number
            known.append(number)
        elif isinstance(call_id, str) and call_id in call_round:
            known.append(call_round[call_id])
        else:
            known.append(None)
    # Fill the gaps backwards: each unattributed event takes the round of the next attributed one.
    last_seen = max((n for n in known if n is not None), default=0)
    following = ended.rounds if ended is not None and ended.rounds else last_seen
    out: list[int] = [0] * len(known)
    for i in range(len(known) - 1, -1, -1):
        if known[i] is None:
            out[i] = following
        else:
            out[i] = following = known[i]  # type: ignore[assignment]
    return out


def pick_episode(records: list[EpisodeRecord], number: int | None, source: str) -> EpisodeRecord:
    """Episode `number` (1-based) of a file, or its only/last one when None."""
    if not records:
        raise ValueError(f"{source}: no episode in this trajectory")
    if number is None:
        return records[-1]
    if not 1 <= number <= len(records):
        raise ValueError(f"{source}: episode {number} does not exist (the file holds {len(records)})")
    return records[number - 1]

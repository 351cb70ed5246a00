"""Forking a recorded episode: its state at the end of round k, rebuilt from the trajectory, continued live.

The state the loop carries between its stateless rounds is small and all of it is in the trajectory:
the documents (every `documents_retrieved`, added in the same order and with the same de-duplication as
live), the code results (every `code_executed` whose stdout was not blank), the spend (the `charged`
entries, booked into the ledger and the budgets), the calls per alias (for `max_calls_per_alias`) and the
problem text (the opening event's, minus the profile's preference statement). Rebuilding it by replaying
those events through the same `Evidence` methods is what makes round k+1 of a fork see exactly what round
k+1 of the original saw — the fork test holds this to account.

The fork's trajectory starts with the original's opening event and rounds 1..k copied verbatim, then a
`profile_switched` at round k+1 (when the profile changes) — exactly what a live switch would record — and
the live rounds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from orchestra_tui.core.context import Evidence
from orchestra_tui.core.episode_record import EpisodeRecord, pick_episode, split_episodes
from orchestra_tui.core.events import (
    Charged,
    CodeExecuted,
    DocumentsRetrieved,
    Event,
    FinalAnswer,
    Notice,
    ProfileSwitched,
    ToolCallStarted,
)
from orchestra_tui.core.trajectory import Trajectory

if TYPE_CHECKING:
    from orchestra_tui.core.catalog import Catalog
    from orchestra_tui.core.episode import Episode
    from orchestra_tui.core.ledger import Ledger
    from orchestra_tui.core.steering import Steering


class ForkError(ValueError):
    pass


@dataclass
class Resume:
    """An episode's state at the end of round `rounds`, and the events that led there."""

    source: str  # the original trajectory's file name, for the record
    question: str
    base_problem: str  # the problem text without any profile's preference statement
    profile: str  # the profile active at the end of the round
    variant: str
    rounds: int
    events: list[Event]  # the opening event and every event of rounds 1..rounds, verbatim
    evidence: Evidence = field(default_factory=Evidence)
    charges: list[Charged] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def restore(self, steering: Steering, ledger: Ledger) -> int:
        """Book the copied rounds' spend and calls; returns how many ledger entries that added."""
        ledger.entries.extend(self.charges)
        known = sum((Decimal(c.cost_usd) for c in self.charges if c.cost_usd is not None), Decimal(0))
        unpriced = sum(1 for c in self.charges if c.cost_usd is None)
        for level in steering.budget.chain:
            level.spent += known
            level.unpriced += unpriced
        steering.counts.counts.update(self.calls)
        return len(self.charges)

    def preamble(self, episode: Episode, catalog: Catalog) -> list[Event]:
        """What the fork's trajectory holds before its first live round."""
        events: list[Event] = [*self.events,
                               Notice(level="info", message=f"forked from {self.source} after round {self.rounds}")]
        if episode.profile != self.profile:
            steering = episode.steering
            events.append(ProfileSwitched(
                round=self.rounds + 1, old=self.profile, new=episode.profile,
                withheld=steering.withheld(catalog),
                preference=steering.profile.preference_statement(steering.infos(catalog))))
        return events


def _base_problem(problem: str, preference: str | None) -> str:
    """Undo `prompts.with_preference`: the fork states its own profile's preference."""
    suffix = f"\n\n{preference}" if preference else ""
    return problem[: -len(suffix)] if suffix and problem.endswith(suffix) else problem


def _check_round(record: EpisodeRecord, at: int, source: str) -> list[Event]:
    last = max(record.rounds_of, default=0)
    if at < 0:
        raise ForkError(f"--at must be a round number >= 0, got {at}")
    if at > last:
        raise ForkError(f"{source}: the episode has {last} round(s); cannot fork after round {at}")
    prefix = record.prefix(at)
    answered = [e for e in prefix if isinstance(e, FinalAnswer)]
    if answered:
        raise ForkError(f"{source}: the episode already answered in round {record.rounds_of[record.events.index(answered[0])]};"
                        " fork after an earlier round")
    return prefix


def resume_point(trajectory: Trajectory, at: int, episode: int | None = None) -> Resume:
    """The state of an episode of `trajectory` at the end of round `at` (0: before round 1)."""
    source = trajectory.path.name
    try:
        record = pick_episode(split_episodes(trajectory.events), episode, source)
    except ValueError as exc:
        raise ForkError(str(exc)) from None
    prefix = _check_round(record, at, source)
    started = record.started
    resume = Resume(source=source, question=started.question,
                    base_problem=_base_problem(started.problem, started.preference),
                    profile=started.profile, variant=started.variant, rounds=at, events=prefix)
    for event in prefix[1:]:
        if isinstance(event, DocumentsRetrieved):
            resume.evidence.add_search_results([r.get("content", "") for r in event.results])
        elif isinstance(event, CodeExecuted):
            resume.evidence.add_code(event.code, event.stdout)
        elif isinstance(event, Charged):
            resume.charges.append(event)
        elif isinstance(event, ToolCallStarted):
            resume.calls[event.alias] += 1
        elif isinstance(event, ProfileSwitched):
            resume.profile = event.new
    resume.elapsed_s = max(prefix[-1].ts - started.ts, 0.0)
    return resume


def fork_path(original: Path, at: int, profile: str) -> Path:
    """A new file beside the original; never an existing one (trajectories are append-only)."""
    stem = f"{original.stem}.fork-r{at}-{profile}"
    candidate = original.with_name(f"{stem}.jsonl")
    n = 2
    while candidate.exists():
        candidate = original.with_name(f"{stem}-{n}.jsonl")
        n += 1
    return candidate

"""What the panes show, as plain data: the session as seen through its events.

The event handler folds events into a `SessionView`; the widgets render from it. Keeping this layer free of
Textual is what makes replay exact (fold the first k events, render) and lets the fold be tested alone.
Each view carries a `version`: the sequence number of the last event that changed it. Folding the same
prefix again yields the same versions, so after a replay jump a pane re-renders only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orchestra_tui.core.events import CodeExecuted

RoundKey = tuple[int, int]  # (episode number, round number), both 1-based


@dataclass(eq=False)
class Tally:
    """A running sum of ledger charges. Unpriced calls are counted, never added as zero."""

    cost: Decimal = field(default_factory=Decimal)
    priced: int = 0
    unpriced: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0

    def add(self, amount: Decimal | None, input_tokens: int, output_tokens: int, seconds: float) -> None:
        """`amount`: the charge as parsed by `format.parse_usd` once (None: unpriced)."""
        if amount is None:
            self.unpriced += 1
        else:
            self.priced += 1
            self.cost += amount
        self.input_tokens += input_tokens or 0
        self.output_tokens += output_tokens or 0
        self.seconds += seconds or 0.0

    @property
    def calls(self) -> int:
        return self.priced + self.unpriced


@dataclass(eq=False)
class RoundView:
    key: RoundKey
    context_tokens: int | None = None
    streamed: list[str] = field(default_factory=list)
    reasoning: str | None = None  # set by PolicyOutput; replaces the streamed text
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    seconds: float | None = None
    reused_tokens: int | None = None  # prompt tokens served from a prefix cache, when the backend says
    rejected: tuple[str, str] | None = None  # (reason, detail)
    call_ids: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)  # the policy's own charges for this round
    version: int = 0

    @property
    def episode(self) -> int:
        return self.key[0]

    @property
    def number(self) -> int:
        return self.key[1]

    @property
    def thinking(self) -> str:
        if self.reasoning is not None:
            return self.reasoning
        # The live stream carries the raw tags; the split-out reasoning does not.
        return "".join(self.streamed).replace("<think>", "").replace("</think>", "").lstrip("\n")

    @property
    def finished(self) -> bool:
        return self.reasoning is not None or self.rejected is not None


@dataclass(eq=False)
class CallView:
    call_id: str
    round_key: RoundKey
    tool: str
    alias: str
    model: str
    arguments: dict[str, Any]
    ignored: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running | ok | empty | error | cancelled
    summary: str = ""
    error: str | None = None
    seconds: float | None = None
    expert_stream: list[str] = field(default_factory=list)
    expert_content: str | None = None
    expert_seconds: float | None = None
    query: str | None = None
    query_source: str | None = None
    retriever: str | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)
    documents_added: int = 0
    retrieval_seconds: float | None = None
    code_runs: list[CodeExecuted] = field(default_factory=list)
    answer: str | None = None
    extracted_by: str | None = None
    tally: Tally = field(default_factory=Tally)
    version: int = 0

    @property
    def expert_text(self) -> str:
        return self.expert_content if self.expert_content is not None else "".join(self.expert_stream)


@dataclass(eq=False)
class Entry:
    """One item of the chat transcript."""

    key: str
    kind: str  # question | answer | notice | outcome
    text: str = ""
    level: str = "info"  # info | warning | error | success
    meta: str = ""
    streaming: bool = False
    pending: bool = False  # a question typed here, not yet acknowledged by the engine
    version: int = 0


@dataclass(eq=False)
class SessionView:
    mode: str = "live"  # live | replay
    profile: str | None = None
    pending_profile: str | None = None  # asked for here; the engine applies it from the next round
    policy: str | None = None
    episode: int = 0
    status: str = "idle"  # idle | running | cancelling | answered | no_answer | cancelled | error | budget
    current_round: RoundKey | None = None
    rounds: dict[RoundKey, RoundView] = field(default_factory=dict)
    calls: dict[str, CallView] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    question: Tally = field(default_factory=Tally)
    session: Tally = field(default_factory=Tally)
    by_kind: dict[str, Tally] = field(default_factory=dict)
    by_model: dict[str, Tally] = field(default_factory=dict)
    by_profile: dict[str, Tally] = field(default_factory=dict)
    budget: Decimal | None = None
    version: int = 0  # header and ledger changes
    seq: int = 0  # events folded so far (plus local changes live); the clock of every `version`
    entry_count: int = 0  # source of unique transcript keys

    def touch(self) -> int:
        """Record a change made here rather than by an event (a typed question, a cancel, a profile pick)."""
        self.seq += 1
        self.version = self.seq
        return self.seq

    def next_key(self, prefix: str) -> str:
        self.entry_count += 1
        return f"{prefix}:{self.entry_count}"

    @property
    def running(self) -> bool:
        return self.status in ("running", "cancelling")

    def round(self, number: int) -> RoundView:
        """The round `number` of the current episode, created if the engine skipped RoundStarted."""
        key = (max(self.episode, 1), number)
        view = self.rounds.get(key)
        if view is None:
            view = self.rounds[key] = RoundView(key)
        return view

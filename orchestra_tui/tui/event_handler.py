"""The one place where engine events become what the panes show.

`apply` is a single `match` over event types that folds an event into the `SessionView`. `EventHandler`
wraps it for the app: live events are folded as they arrive and the panes are re-rendered at most once per
flush interval, so a 2,000 tokens/s stream costs one repaint per tick, not one per token. Replay folds a
prefix of the recorded events through the same `apply` and flushes once, so it shows exactly what live did.
Unknown event types are ignored: the engine grows new events faster than the UI learns them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from orchestra_tui.core.events import (
    Charged,
    CodeExecuted,
    DocumentsRetrieved,
    EpisodeEnded,
    EpisodeStarted,
    Event,
    ExpertDelta,
    ExpertOutput,
    FinalAnswer,
    Notice,
    PolicyDelta,
    PolicyOutput,
    ProfileSwitched,
    RoundRejected,
    RoundStarted,
    SearchQuery,
    ToolCallFinished,
    ToolCallStarted,
)
from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.state import CallView, Entry, SessionView, Tally

ANSWER_TOOL = "answer"

_OUTCOMES = {
    "answered": ("answered", "success"),
    "no_answer": ("no answer", "warning"),
    "cancelled": ("cancelled", "warning"),
    "error": ("failed", "error"),
    "budget": ("stopped by the budget", "warning"),
}


def policy_label(policy: object) -> str | None:
    """EpisodeStarted.policy is a dict of backend facts; the header wants `backend · model`."""
    if isinstance(policy, dict):
        parts = [str(policy[k]) for k in ("backend", "kind", "model") if policy.get(k)]
        return " · ".join(dict.fromkeys(parts)) or None
    return str(policy) if policy else None


def apply(state: SessionView, event: Event) -> None:
    """Fold one event into the view. Pure: no widgets, no clocks."""
    state.seq += 1
    match event:
        case EpisodeStarted():
            _start_episode(state, event)
        case RoundStarted():
            view = state.round(event.round)
            view.context_tokens = event.context_tokens
            view.version = state.seq
            state.current_round = view.key
            state.version = state.seq
        case PolicyDelta():
            view = state.round(event.round)
            view.streamed.append(event.text)
            view.version = state.seq
        case PolicyOutput():
            view = state.round(event.round)
            view.reasoning = event.reasoning
            view.content = event.content
            view.tool_calls = list(event.tool_calls)
            view.seconds = event.seconds
            view.reused_tokens = event.cached_tokens
            view.streamed.clear()
            view.version = state.seq
        case RoundRejected():
            view = state.round(event.round)
            view.rejected = (event.reason, event.detail)
            view.version = state.seq
        case ToolCallStarted():
            _start_call(state, event)
        case ExpertDelta():
            if call := state.calls.get(event.call_id):
                call.expert_stream.append(event.text)
                _touch_call(state, call)
        case ExpertOutput():
            if call := state.calls.get(event.call_id):
                call.expert_content = event.content
                call.expert_seconds = event.seconds
                call.expert_stream.clear()
                _touch_call(state, call)
        case SearchQuery():
            if call := state.calls.get(event.call_id):
                call.query, call.query_source = event.query, event.source
                call.version = state.seq
        case DocumentsRetrieved():
            if call := state.calls.get(event.call_id):
                call.retriever = event.retriever
                call.documents = list(event.results)
                call.documents_added = event.added
                call.retrieval_seconds = event.seconds
                call.version = state.seq
        case CodeExecuted():
            if call := state.calls.get(event.call_id):
                call.code_runs.append(event)
                call.version = state.seq
        case ToolCallFinished():
            if call := state.calls.get(event.call_id):
                call.status = event.status
                call.summary = event.summary
                call.error = event.error
                call.seconds = event.seconds
                call.version = state.seq
        case FinalAnswer():
            _final_answer(state, event)
        case Charged():
            _charge(state, event)
        case ProfileSwitched():
            _profile_switched(state, event.new, event.old, event.round)
        case Notice():
            _notice(state, event.level, event.message)
        case EpisodeEnded():
            _end_episode(state, event)
        case _:
            _newer_event(state, event)


def _start_episode(state: SessionView, event: EpisodeStarted) -> None:
    state.episode += 1
    state.status = "running"
    state.current_round = None
    state.question = Tally()
    state.profile = event.profile or state.profile
    if state.pending_profile == state.profile:
        state.pending_profile = None  # a source that switches without a ProfileSwitched event
    state.policy = policy_label(event.policy) or state.policy
    state.version = state.seq
    pending = next((e for e in reversed(state.entries) if e.kind == "question" and e.pending), None)
    if pending is not None and pending.text == event.question:
        pending.pending = False
        pending.version = state.seq
    else:
        state.entries.append(Entry(state.next_key("question"), "question", event.question))


def _start_call(state: SessionView, event: ToolCallStarted) -> None:
    view = state.round(event.round)
    call = CallView(
        call_id=event.call_id,
        round_key=view.key,
        tool=event.tool,
        alias=event.alias,
        model=event.model,
        arguments=dict(event.arguments),
        ignored=list(event.ignored),
    )
    state.calls[event.call_id] = call
    view.call_ids.append(event.call_id)
    view.version = state.seq
    if event.tool == ANSWER_TOOL:
        state.entries.append(
            Entry(f"answer:{event.call_id}", "answer", meta=f"{event.alias} → {event.model}", streaming=True)
        )


def _answer_entry(state: SessionView, call_id: str) -> Entry | None:
    key = f"answer:{call_id}"
    return next((e for e in reversed(state.entries) if e.key == key), None)


def _touch_call(state: SessionView, call: CallView) -> None:
    """Expert text also streams into the transcript when the expert is the one answering."""
    call.version = state.seq
    if call.tool == ANSWER_TOOL and (entry := _answer_entry(state, call.call_id)) and entry.streaming:
        entry.text = call.expert_text
        entry.version = state.seq


def _final_answer(state: SessionView, event: FinalAnswer) -> None:
    entry = _answer_entry(state, event.call_id)
    if entry is None:
        entry = Entry(f"answer:{event.call_id}", "answer", meta=f"{event.alias} → {event.model}")
        state.entries.append(entry)
    entry.text = event.answer if event.answer is not None else "(the expert gave no extractable answer)"
    entry.level = "info" if event.answer is not None else "warning"
    entry.streaming = False
    entry.version = state.seq
    if call := state.calls.get(event.call_id):
        call.answer, call.extracted_by = event.answer, event.extracted_by
        call.version = state.seq


def _charge(state: SessionView, event: Charged) -> None:
    tallies: list[Tally] = [state.question, state.session]
    tallies.append(state.by_kind.setdefault(event.kind, Tally()))
    tallies.append(state.by_model.setdefault(event.model, Tally()))
    tallies.append(state.by_profile.setdefault(event.profile, Tally()))
    if call := state.calls.get(event.call_id):
        tallies.append(call.tally)
        call.version = state.seq
    elif event.kind == "policy":
        view = state.round(event.round)
        tallies.append(view.tally)
        view.version = state.seq
    amount = fmt.parse_usd(event.cost_usd)  # once, not once per tally: a replay jump folds every charge
    for tally in tallies:
        tally.add(amount, event.input_tokens, event.output_tokens, event.seconds)
    state.version = state.seq


def _notice(state: SessionView, level: str, message: str) -> None:
    state.entries.append(Entry(state.next_key("notice"), "notice", message, level=level))


def _end_episode(state: SessionView, event: EpisodeEnded) -> None:
    state.status = event.status
    state.version = state.seq
    for call in state.calls.values():
        if call.status == "running":
            call.status = "cancelled" if event.status == "cancelled" else "error"
            call.version = state.seq
    for entry in state.entries:
        if entry.streaming:
            entry.streaming = False
            entry.version = state.seq
    label, level = _OUTCOMES.get(event.status, (event.status, "info"))
    rounds = f"{event.rounds} round" + ("" if event.rounds == 1 else "s")
    tally = state.question
    cost = fmt.cost_label(tally.cost, tally.priced, tally.unpriced)
    if tally.unpriced:
        cost += f" + {tally.unpriced} unpriced"
    meta = f"{rounds} · {fmt.seconds(event.latency_s)} · {cost}"
    text = f"{label}: {event.error}" if event.error else label
    state.entries.append(Entry(state.next_key("outcome"), "outcome", text, level=level, meta=meta))


def _profile_switched(state: SessionView, new: str, old: str | None, round_number: int | None) -> None:
    """The engine applied a switch (at a round boundary, or before an episode): the header stops showing it
    as pending. Switching to the same name means the profile's file was edited and read again."""
    state.profile = new
    if state.pending_profile == new:
        state.pending_profile = None
    state.version = state.seq
    what = f"profile {new} reloaded" if old == new else f"profile switched to {new}"
    _notice(state, "info", f"{what} from round {round_number}" if round_number else what)


def _newer_event(state: SessionView, event: Event) -> None:
    """Events this UI predates, matched by their tag so the app runs against a newer engine."""
    kind = getattr(event, "type", "")
    if kind == "budget_exhausted":
        _notice(state, "warning", getattr(event, "message", None) or "the budget is exhausted")


class Pane(Protocol):
    def show(self, state: SessionView) -> None: ...


class EventHandler:
    """Owns the SessionView and pushes it to the panes, coalescing bursts of events into one repaint."""

    def __init__(
        self,
        panes: Sequence[Pane] = (),
        schedule: Callable[[Callable[[], None]], object] | None = None,
        mode: str = "live",
    ) -> None:
        self.panes = list(panes)
        self._schedule = schedule
        self._flush_pending = False
        self.state = SessionView(mode=mode)

    def reset(self, **initial: object) -> None:
        """Start from an empty view (replay re-folds a prefix of the trajectory from here)."""
        self.state = SessionView(mode=self.state.mode, **initial)  # type: ignore[arg-type]

    def handle(self, event: Event) -> None:
        apply(self.state, event)
        self.request_flush()

    def handle_all(self, events: Iterable[Event]) -> None:
        for event in events:
            apply(self.state, event)
        self.request_flush()

    def ask(self, question: str) -> None:
        """Show a typed question at once; EpisodeStarted confirms it."""
        state = self.state
        state.status = "running"
        version = state.touch()
        state.entries.append(Entry(state.next_key("question"), "question", question, pending=True, version=version))
        self.request_flush()

    def abandon(self, status: str, latency_s: float) -> None:
        """Close an episode the engine left open (it raised, or was stopped hard), as EpisodeEnded would."""
        state = self.state
        for entry in state.entries:
            if entry.pending:
                entry.pending = False
                entry.version = state.seq + 1
        rounds = state.current_round[1] if state.current_round else 0
        self.handle(EpisodeEnded(status=status, answer=None, rounds=rounds, cost_usd=None, latency_s=latency_s))

    def request_flush(self) -> None:
        if self._schedule is None:
            return
        if not self._flush_pending:
            self._flush_pending = True
            self._schedule(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        for pane in self.panes:
            pane.show(self.state)

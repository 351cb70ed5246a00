"""Typed events: the only output of the engine.

Every consumer — the TUI, the trajectory writer, the headless printer, the eval runner, the tests — sees
the same stream. Each event is a frozen dataclass with a `type` tag; `to_dict`/`from_dict` give the JSON
form written to trajectories, so a replay rebuilds the very objects the live run produced.

Events marked `transient` (streamed text deltas) are not persisted: the full text arrives in the event
that closes the stream, and replay re-streams it from there.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

_REGISTRY: dict[str, type[Event]] = {}


def _now() -> float:
    return time.time()


@dataclass(frozen=True, kw_only=True)
class Event:
    type: ClassVar[str] = "event"
    transient: ClassVar[bool] = False
    ts: float = field(default_factory=_now)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.type] = cls

    def to_dict(self) -> dict[str, Any]:
        """The JSON form. Events hold only JSON values, so this is a shallow copy: the top-level dict is
        new, nested lists and dicts are the event's own (never mutate them). `dataclasses.asdict` would
        deep-copy every message and tool list of a round only for `json.dumps` to walk them again."""
        data: dict[str, Any] = {"type": self.type}
        for name in _field_names(type(self)):
            data[name] = getattr(self, name)
        return data


class UnknownEvent(ValueError):
    pass


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON form; unknown fields are ignored (forward-compatible minor versions)."""
    kind = data.get("type")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UnknownEvent(f"unknown event type {kind!r}")
    names = _field_names(cls)
    return cls(**{k: v for k, v in data.items() if k in names})


@functools.cache
def _field_names(cls: type[Event]) -> tuple[str, ...]:
    # dataclasses.fields() rebuilds its tuple on every call; a replay of 10,000 events asks 10,000 times.
    return tuple(f.name for f in dataclasses.fields(cls))


# --- episode ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EpisodeStarted(Event):
    type: ClassVar[str] = "episode_started"
    episode_id: str
    question: str
    problem: str  # what the policy sees after "Problem: " (question plus any follow-up history)
    variant: str
    max_rounds: int
    profile: str
    policy: dict[str, Any]  # backend kind and model of the policy
    preference: str | None = None  # the profile's soft preferences as stated to the policy (best effort)
    withheld: dict[str, str] = field(default_factory=dict)  # alias → why the policy may not use it


@dataclass(frozen=True, kw_only=True)
class EpisodeEnded(Event):
    type: ClassVar[str] = "episode_ended"
    status: str  # answered | no_answer | cancelled | error | budget
    answer: str | None
    rounds: int
    cost_usd: str | None  # Decimal as string; None when any call was unpriced
    latency_s: float
    error: str | None = None


# --- rounds and the policy -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RoundStarted(Event):
    type: ClassVar[str] = "round_started"
    round: int  # 1-based
    messages: list[dict[str, Any]]  # exactly what the policy receives
    tools: list[dict[str, Any]]  # exactly the tool list the policy receives
    context_tokens: int  # tokens of the context block before truncation


@dataclass(frozen=True, kw_only=True)
class PolicyDelta(Event):
    type: ClassVar[str] = "policy_delta"
    transient: ClassVar[bool] = True
    round: int
    text: str


@dataclass(frozen=True, kw_only=True)
class PolicyOutput(Event):
    type: ClassVar[str] = "policy_output"
    round: int
    content: str  # raw message content (holds the <think> text on a hermes server)
    reasoning: str  # the thinking, split out of content or from reasoning_content
    tool_calls: list[dict[str, Any]]  # as produced: [{"name", "arguments"(str)}]; repaired when `repaired`
    usage: dict[str, Any]
    seconds: float
    repaired: str | None = None  # what the optional repair changed to get `tool_calls`; None: the model's own

    @property
    def cached_tokens(self) -> int | None:
        """Prompt tokens the backend served from its prefix cache; None when it did not say."""
        cached = self.usage.get("cached_tokens")
        return cached if isinstance(cached, int) else None


@dataclass(frozen=True, kw_only=True)
class RoundRejected(Event):
    """The round's output held no runnable call: recorded, never hidden. The round is consumed."""

    type: ClassVar[str] = "round_rejected"
    round: int
    reason: str  # empty | invalid | refused | error
    detail: str
    calls: list[dict[str, Any]] = field(default_factory=list)


# --- tool calls ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ToolCallStarted(Event):
    type: ClassVar[str] = "tool_call_started"
    round: int
    call_id: str
    tool: str
    alias: str
    model: str
    arguments: dict[str, Any]
    ignored: list[dict[str, Any]] = field(default_factory=list)  # other calls of the round, not run


@dataclass(frozen=True, kw_only=True)
class ExpertDelta(Event):
    type: ClassVar[str] = "expert_delta"
    transient: ClassVar[bool] = True
    call_id: str
    text: str


@dataclass(frozen=True, kw_only=True)
class ExpertOutput(Event):
    type: ClassVar[str] = "expert_output"
    call_id: str
    messages: list[dict[str, Any]]  # what the expert received
    content: str
    usage: dict[str, Any]
    seconds: float
    served_by: str = ""  # the model name the endpoint reported in its response


@dataclass(frozen=True, kw_only=True)
class SearchQuery(Event):
    type: ClassVar[str] = "search_query"
    call_id: str
    query: str
    source: str  # expert | problem (expert failed)


@dataclass(frozen=True, kw_only=True)
class DocumentsRetrieved(Event):
    type: ClassVar[str] = "documents_retrieved"
    call_id: str
    retriever: str
    results: list[dict[str, Any]]  # [{"id", "score", "content"}] best first
    added: int  # how many were new to the episode's document list
    seconds: float


@dataclass(frozen=True, kw_only=True)
class CodeExecuted(Event):
    type: ClassVar[str] = "code_executed"
    call_id: str
    code: str
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    seconds: float
    runner: str  # which runner ran it (subprocess, bubblewrap, ...)


@dataclass(frozen=True, kw_only=True)
class ToolCallFinished(Event):
    type: ClassVar[str] = "tool_call_finished"
    call_id: str
    status: str  # ok | empty | error
    summary: str
    seconds: float
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class FinalAnswer(Event):
    type: ClassVar[str] = "final_answer"
    call_id: str
    alias: str
    model: str
    answer: str | None
    extracted_by: str  # boxed | answer_tag | fallback | none


# --- money and notices -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Charged(Event):
    """One ledger entry: every external call is charged, priced or explicitly unpriced."""

    type: ClassVar[str] = "charged"
    call_id: str
    round: int
    kind: str  # policy | expert | retrieval | code | web
    alias: str | None
    model: str
    input_tokens: int
    output_tokens: int
    seconds: float
    cost_usd: str | None  # None = unpriced
    price_source: str
    profile: str


@dataclass(frozen=True, kw_only=True)
class ProfileSwitched(Event):
    """A profile switch took effect (at the start of `round`; None between episodes)."""

    type: ClassVar[str] = "profile_switched"
    round: int | None
    old: str
    new: str
    withheld: dict[str, str]
    preference: str | None


@dataclass(frozen=True, kw_only=True)
class Notice(Event):
    type: ClassVar[str] = "notice"
    level: str  # info | warning | error
    message: str


# --- conversational function calling (core/conversation.py) ----------------------------------------
# A conversation is a sequence of user turns; within a turn the policy replies in steps (one policy call
# each). Steps are numbered across the whole conversation, so `round` in the shared policy events
# (PolicyDelta, PolicyOutput, Charged) is the step number and every call id stays unique.


@dataclass(frozen=True, kw_only=True)
class ConversationStarted(Event):
    type: ClassVar[str] = "conversation_started"
    conversation_id: str
    system: str  # the system message the policy receives, verbatim
    tools: list[dict[str, Any]]  # exactly the tool list the policy receives (declared tools, then call_expert)
    experts: dict[str, dict[str, str]]  # expert-N → {"alias", "model"} behind call_expert
    functions: str  # name of the declarations file
    policy: dict[str, Any]  # backend kind and model of the policy
    withheld: dict[str, str] = field(default_factory=dict)  # expert-N → why it is not offered


@dataclass(frozen=True, kw_only=True)
class TurnStarted(Event):
    type: ClassVar[str] = "turn_started"
    turn: int  # 1-based
    user_text: str


@dataclass(frozen=True, kw_only=True)
class ConversationMessage(Event):
    """One message of the chat the policy sees, exactly as it enters the history. The policy's input at
    any step is the ConversationStarted system message followed by these messages, in order (less any
    middle cut announced by a Notice)."""

    type: ClassVar[str] = "conversation_message"
    turn: int
    role: str  # user | assistant | tool
    content: str
    name: str | None = None  # tool messages: the function that produced it
    tool_call_id: str | None = None  # tool messages: the call answered
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # assistant: OpenAI-style calls kept
    source: str = ""  # assistant: "policy" or the expert (expert-1 …) whose reply replaced the policy's
    dropped_calls: list[dict[str, Any]] = field(default_factory=list)  # assistant: calls over the cap

    def message(self) -> dict[str, Any]:
        """The chat-API form of this message, as the policy receives it (a tool message carries only its
        call id: `name` is not part of the API's tool message)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass(frozen=True, kw_only=True)
class FunctionCallStarted(Event):
    type: ClassVar[str] = "function_call_started"
    turn: int
    step: int
    call_id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it
    executor: str  # python | http | command | expert | none (unknown tool)
    target: str = ""  # the entry point, URL, program, or "alias (model)" of an expert


@dataclass(frozen=True, kw_only=True)
class FunctionCallFinished(Event):
    type: ClassVar[str] = "function_call_finished"
    call_id: str
    status: str  # ok | error
    seconds: float
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # executor facts: HTTP status, exit code, runner


@dataclass(frozen=True, kw_only=True)
class TurnEnded(Event):
    type: ClassVar[str] = "turn_ended"
    turn: int
    status: str  # answered | empty | max_steps | error | cancelled
    message: str | None  # what the user is shown
    steps: int
    calls: int  # tool calls run in this turn (call_expert included)
    cost_usd: str | None  # Decimal as string; None when any call of the turn was unpriced
    latency_s: float
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Judged(Event):
    """The eval's verdict on an episode's answer, appended after `episode_ended` by eval/judge.py."""

    type: ClassVar[str] = "judged"
    question_id: str
    reference: str  # the reference answer from the questions file
    prediction: str  # the episode's answer ("" when it gave none)
    correct: bool | None  # None: unjudged
    method: str  # empty | too_long | exact | judge | judge_failed | unjudged
    judge: str | None = None  # the alias that judged
    judge_model: str | None = None
    judge_reply: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: str | None = None  # the judge call's cost; "0" when no judge ran; None = unpriced
    seconds: float = 0.0

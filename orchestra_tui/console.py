"""The headless consumer of events: a readable account on a text stream (progress on stderr for `run`,
the whole account for `replay --print`). Live and replayed events print the same way."""

from __future__ import annotations

from typing import TextIO

from orchestra_tui.core.events import (
    Charged,
    CodeExecuted,
    DocumentsRetrieved,
    EpisodeEnded,
    EpisodeStarted,
    Event,
    FinalAnswer,
    Notice,
    PolicyOutput,
    RoundRejected,
    RoundStarted,
    SearchQuery,
    ToolCallFinished,
    ToolCallStarted,
)
from orchestra_tui.core.ledger import parse_usd, usd_label


def _short(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _money(value: str | None) -> str:
    amount = parse_usd(value)
    return "unpriced" if amount is None else usd_label(amount)


def _prompt_reuse(event: PolicyOutput) -> str:
    """", prompt 1879 tokens, 1878 reused" when the backend reported its prefix cache; "" otherwise."""
    prompt, cached = event.usage.get("prompt_tokens"), event.cached_tokens
    if not isinstance(prompt, int) or cached is None:
        return ""
    return f", prompt {prompt} tokens, {cached} reused"


def describe(event: Event) -> str | None:
    """One line (or a few) per event worth showing; None for events that add nothing to an account."""
    match event:
        case EpisodeStarted():
            return f"question: {_short(event.question)}  [profile {event.profile}, {event.variant}]"
        case RoundStarted():
            names = ", ".join(t["function"]["name"] for t in event.tools)
            return f"round {event.round}: context {event.context_tokens} tokens; tools offered: {names}"
        case PolicyOutput():
            calls = "; ".join(f"{c['name']} {c['arguments']}" for c in event.tool_calls) or "no call"
            return f"  policy ({event.seconds:.1f}s{_prompt_reuse(event)}): {_short(calls)}"
        case RoundRejected():
            return f"  round {event.round} rejected ({event.reason}): {_short(event.detail)}"
        case ToolCallStarted():
            return f"  → {event.tool} via {event.alias} ({event.model})"
        case SearchQuery():
            return f"    query ({event.source}): {_short(event.query)}"
        case DocumentsRetrieved():
            return f"    {len(event.results)} results from {event.retriever}, {event.added} new documents"
        case CodeExecuted():
            state = "timed out" if event.timed_out else f"exit {event.exit_code}"
            return f"    code ran ({state}, {event.seconds:.1f}s, {event.runner}): {_short(event.stdout) or '(no output)'}"
        case ToolCallFinished():
            return f"  ← {event.status}: {_short(event.summary)} ({event.seconds:.1f}s)"
        case FinalAnswer():
            return f"  answer by {event.alias} ({event.extracted_by}): {event.answer}"
        case Charged():
            return None
        case Notice():
            return f"  [{event.level}] {event.message}"
        case EpisodeEnded():
            error = f" — {event.error}" if event.error else ""
            return (f"ended: {event.status} after {event.rounds} rounds, {event.latency_s:.1f}s, "
                    f"cost {_money(event.cost_usd)}{error}")
    return None


class Printer:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        line = describe(event)
        if line is not None:
            print(line, file=self.stream, flush=True)

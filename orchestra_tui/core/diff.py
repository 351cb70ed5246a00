"""`orchestra-tui diff A B`: where two runs of a question part ways, and what that cost.

Each round is reduced to what the conductor decided and what came of it — rejected or not, tool, alias,
arguments, the search query, the answer — and the first round where those differ is the divergence. Below
it, a table puts the two runs side by side: outcome, rounds, calls per tool and per alias, tokens, cost
and latency, with B − A where a difference is a number.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orchestra_tui.core.episode_record import EpisodeRecord
from orchestra_tui.core.events import (
    Charged,
    FinalAnswer,
    ProfileSwitched,
    RoundRejected,
    SearchQuery,
    ToolCallStarted,
)

COMPARED = ("outcome", "tool", "alias", "arguments", "query", "answer")


@dataclass(frozen=True)
class RoundView:
    number: int
    outcome: str  # "call", or "rejected (<reason>)", or "nothing"
    tool: str | None = None
    alias: str | None = None
    model: str | None = None
    arguments: dict[str, Any] | None = None
    query: str | None = None
    answer: str | None = None

    def describe(self) -> str:
        if self.outcome != "call":
            return self.outcome
        text = f"{self.tool} via {self.alias} ({self.model}) {json.dumps(self.arguments, sort_keys=True)}"
        if self.query is not None:
            text += f"; query: {self.query!r}"
        if self.answer is not None:
            text += f"; answer: {self.answer!r}"
        return text


def round_view(record: EpisodeRecord, number: int) -> RoundView:
    events = record.round_events(number)
    rejected = next((e for e in events if isinstance(e, RoundRejected)), None)
    if rejected is not None:
        return RoundView(number, f"rejected ({rejected.reason}): {rejected.detail}")
    started = next((e for e in events if isinstance(e, ToolCallStarted)), None)
    if started is None:
        return RoundView(number, "nothing")
    query = next((e.query for e in events if isinstance(e, SearchQuery)), None)
    answer = next((e.answer for e in events if isinstance(e, FinalAnswer)), None)
    return RoundView(number, "call", started.tool, started.alias, started.model, started.arguments, query, answer)


def views(record: EpisodeRecord) -> list[RoundView]:
    return [round_view(record, n) for n in record.rounds() if n >= 1]


@dataclass
class RunStats:
    status: str
    rounds: int
    answer: str | None
    profile: str
    cost_usd: Decimal | None
    latency_s: float | None
    tools: Counter[str] = field(default_factory=Counter)
    aliases: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0


def run_stats(record: EpisodeRecord) -> RunStats:
    ended = record.ended
    profile = record.started.profile
    for event in record.events:
        if isinstance(event, ProfileSwitched):
            profile = event.new
    charges = [e for e in record.events if isinstance(e, Charged)]
    started = [e for e in record.events if isinstance(e, ToolCallStarted)]
    return RunStats(
        status=ended.status if ended else "unfinished",
        rounds=ended.rounds if ended else max(record.rounds_of, default=0),
        answer=ended.answer if ended else None,
        profile=profile,
        cost_usd=Decimal(ended.cost_usd) if ended and ended.cost_usd is not None else None,
        latency_s=ended.latency_s if ended else None,
        tools=Counter(e.tool for e in started),
        aliases=Counter(e.alias for e in started),
        input_tokens=sum(c.input_tokens for c in charges),
        output_tokens=sum(c.output_tokens for c in charges),
    )


@dataclass
class Divergence:
    round: int
    fields: list[str]  # which of COMPARED differ; ["rounds"] when one run simply stopped earlier
    a: RoundView | None
    b: RoundView | None


def first_divergence(a: EpisodeRecord, b: EpisodeRecord) -> Divergence | None:
    views_a, views_b = views(a), views(b)
    for va, vb in zip(views_a, views_b):
        differing = [name for name in COMPARED if getattr(va, name) != getattr(vb, name)]
        if differing:
            return Divergence(va.number, differing, va, vb)
    if len(views_a) != len(views_b):
        shorter = min(len(views_a), len(views_b))
        longer = views_a if len(views_a) > shorter else views_b
        number = longer[shorter].number
        return Divergence(number, ["rounds"], views_a[shorter] if len(views_a) > shorter else None,
                          views_b[shorter] if len(views_b) > shorter else None)
    return None


def _delta(a: Any, b: Any) -> str:
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        difference = b - a
        if isinstance(difference, float):
            return f"{difference:+.1f}"
        return f"{difference:+}"
    return ""


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def comparison_rows(a: RunStats, b: RunStats) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, Any, Any]] = [
        ("profile", a.profile, b.profile),
        ("status", a.status, b.status),
        ("answer", a.answer, b.answer),
        ("rounds", a.rounds, b.rounds),
        ("cost (USD)", a.cost_usd, b.cost_usd),
        ("latency (s)", a.latency_s, b.latency_s),
        ("input tokens", a.input_tokens, b.input_tokens),
        ("output tokens", a.output_tokens, b.output_tokens),
    ]
    for tool in sorted(set(a.tools) | set(b.tools)):
        rows.append((f"calls: {tool}", a.tools[tool], b.tools[tool]))
    for alias in sorted(set(a.aliases) | set(b.aliases)):
        rows.append((f"  via {alias}", a.aliases[alias], b.aliases[alias]))
    return [(label, _cell(x), _cell(y), _delta(x, y)) for label, x, y in rows]


def table(rows: list[tuple[str, str, str, str]], header: tuple[str, str, str, str]) -> str:
    def clip(text: str) -> str:
        flat = " ".join(text.split())  # a multi-line answer must not break the table's rows
        return flat if len(flat) <= 48 else flat[:47] + "…"

    lines = [header, *((r[0], clip(r[1]), clip(r[2]), r[3]) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines)


def render(a: EpisodeRecord, b: EpisodeRecord, name_a: str, name_b: str) -> str:
    out = [f"A: {name_a}", f"B: {name_b}", ""]
    divergence = first_divergence(a, b)
    if divergence is None:
        out.append("no divergence: every round made the same decision with the same result")
    else:
        out.append(f"first divergence: round {divergence.round} — differs in {', '.join(divergence.fields)}")
        for side, view in (("A", divergence.a), ("B", divergence.b)):
            text = view.describe() if view else "(no such round: the run had ended)"
            out.append(f"  {side}: {text if len(text) <= 200 else text[:199] + '…'}")
    out.append("")
    out.append(table(comparison_rows(run_stats(a), run_stats(b)), ("", "A", "B", "B − A")))
    return "\n".join(out) + "\n"

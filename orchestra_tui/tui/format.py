"""How numbers read on screen: money, tokens and durations, formatted in one place.

Money is `Decimal` end to end; a sum that misses unpriced calls says so instead of pretending they were free.
"""

from __future__ import annotations

from decimal import Decimal

# Money is parsed and labelled by the ledger, its one owner; the panes reach it through these names.
from orchestra_tui.core.ledger import parse_usd as parse_usd
from orchestra_tui.core.ledger import usd_label as usd


def cost_label(amount: Decimal, priced: int, unpriced: int) -> str:
    """A sum of charges: `—` with no calls, `unpriced` when nothing had a price, a lower bound otherwise."""
    if priced == 0 and unpriced == 0:
        return "—"
    if priced == 0:
        return "unpriced"
    if unpriced:
        return f"≥{usd(amount)}"
    return usd(amount)


def tokens(count: int) -> str:
    if count < 1000:
        return str(count)
    if count < 100_000:
        return f"{count / 1000:.1f}k"
    if count < 1_000_000:
        return f"{count // 1000}k"
    return f"{count / 1_000_000:.1f}M"


def seconds(value: float | None) -> str:
    if value is None:
        return "…"
    if value < 10:
        return f"{value:.1f}s"
    if value < 60:
        return f"{value:.0f}s"
    minutes, rest = divmod(int(round(value)), 60)
    return f"{minutes}m{rest:02d}s"


def clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters, for titles and summaries."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: max(limit - 1, 0)] + "…"

"""The cost meter: this question, this session, the budget, and where the money and tokens went.

Sums are Decimal. A call without a price is counted and shown as unpriced, so a total that misses some calls
reads as a lower bound (`≥$…`) with the count next to it — never as if those calls were free.
"""

from __future__ import annotations

from decimal import Decimal

from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.state import SessionView, Tally

BAR_WIDTH = 20


def tally_line(label: str, tally: Tally) -> Content:
    cost = fmt.cost_label(tally.cost, tally.priced, tally.unpriced)
    parts: list[Content | tuple[str, str] | str] = [(f"{label:<9}", "$text-muted"), (cost, "bold")]
    if tally.unpriced:
        parts.append((f" + {tally.unpriced} unpriced", "bold $warning"))
    if tally.calls:
        parts.append(
            (
                f" · {tally.calls} calls · {fmt.tokens(tally.input_tokens)} in"
                f" · {fmt.tokens(tally.output_tokens)} out",
                "$text-muted",
            )
        )
    return Content.assemble(*parts)


def budget_line(spent: Decimal, budget: Decimal) -> Content:
    ratio = float(spent / budget) if budget > 0 else 1.0
    filled = min(BAR_WIDTH, int(round(ratio * BAR_WIDTH)))
    style = "$error" if ratio >= 1 else "$warning" if ratio >= 0.8 else "$success"
    return Content.assemble(
        ("budget   ", "$text-muted"),
        ("█" * filled, style),
        ("░" * (BAR_WIDTH - filled), "$text-muted"),
        f" {fmt.usd(spent)} of {fmt.usd(budget)}",
    )


def breakdown(state: SessionView) -> Content:
    """Session spend grouped by kind of call, by real model and by profile."""
    lines: list[Content] = []
    for title, groups in (("by kind", state.by_kind), ("by model", state.by_model), ("by profile", state.by_profile)):
        if not groups:
            continue
        lines.append(Content.styled(title, "bold $accent"))
        for name, tally in sorted(groups.items()):
            cost = fmt.cost_label(tally.cost, tally.priced, tally.unpriced)
            unpriced = f" +{tally.unpriced}?" if tally.unpriced else ""
            lines.append(
                Content.assemble(
                    f"  {fmt.clip(name, 24):<24} {tally.calls:>3}× "
                    f"{fmt.tokens(tally.input_tokens):>6} in {fmt.tokens(tally.output_tokens):>6} out ",
                    (f"{cost:>10}", "bold"),
                    (unpriced, "$warning"),
                )
            )
    return Content("\n").join(lines)


class CostMeter(Vertical):
    def compose(self):
        yield Static(classes="totals")
        yield Static(classes="budget")
        yield Static(classes="breakdown")

    def on_mount(self) -> None:
        self._shown = -1

    def show(self, state: SessionView) -> None:
        if getattr(self, "_shown", -1) == state.version:
            return
        self._shown = state.version
        totals = [tally_line("question", state.question), tally_line("session", state.session)]
        self.query_one(".totals", Static).update(Content("\n").join(totals))
        budget = self.query_one(".budget", Static)
        budget.display = state.budget is not None
        if state.budget is not None:
            budget.update(budget_line(state.session.cost, state.budget))
        self.query_one(".breakdown", Static).update(breakdown(state))

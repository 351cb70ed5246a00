"""The cost meter: this question, this session, the budget, and where the money and tokens went.

Sums are Decimal. A call without a price is counted and shown as unpriced, so a total that misses some calls
reads as a lower bound (`≥$…`) with the count next to it — never as if those calls were free.
"""

from __future__ import annotations

from decimal import Decimal

from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Static

from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.state import SessionView, Tally

BAR_WIDTH = 20


def tally_line(label: str, tally: Tally, compact: bool = False) -> Content:
    cost = fmt.cost_label(tally.cost, tally.priced, tally.unpriced)
    parts: list[Content | tuple[str, str] | str] = [(f"{label:<9}", "$text-muted"), (cost, "bold")]
    if tally.unpriced:
        parts.append((f" + {tally.unpriced} unpriced", "bold $warning"))
    if tally.calls and not compact:
        parts.append(
            (f" · {tally.calls} calls · {fmt.tokens(tally.input_tokens)}/{fmt.tokens(tally.output_tokens)} tok",
             "$text-muted")
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
    """Session spend grouped by kind of call, by real model and by profile; one line per group member."""
    lines: list[Content] = [
        Content.styled(f"{'':8}{'':26}{'calls':>5} {'in/out tok':>11} {'cost':>12}", "$text-muted")
    ]
    for title, groups in (("kind", state.by_kind), ("model", state.by_model), ("profile", state.by_profile)):
        for i, (name, tally) in enumerate(sorted(groups.items())):
            cost = fmt.cost_label(tally.cost, tally.priced, tally.unpriced)
            tokens = f"{fmt.tokens(tally.input_tokens)}/{fmt.tokens(tally.output_tokens)}"
            lines.append(
                Content.assemble(
                    (f"{title if i == 0 else '':8}", "bold $accent"),
                    f"{fmt.clip(name, 25):<26}{tally.calls:>5} {tokens:>11} ",
                    (f"{cost:>12}", "bold"),
                    # "unpriced" alone already says it all when nothing in the group had a price.
                    (f" +{tally.unpriced} unpriced" if tally.unpriced and tally.priced else "", "$warning"),
                )
            )
    return Content("\n").join(lines)


COMPACT_WIDTH = 60  # below this the call and token counts move to the breakdown


class CostMeter(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._state: SessionView | None = None
        self._shown: tuple[int, bool] | None = None

    def compose(self):
        yield Static(classes="totals")
        yield Static(classes="budget")
        with VerticalScroll(classes="breakdown"):
            yield Static()

    def on_resize(self) -> None:
        if self._state is not None:
            self.show(self._state)

    def show(self, state: SessionView) -> None:
        self._state = state
        compact = self.size.width < COMPACT_WIDTH
        if self._shown == (state.version, compact):
            return
        self._shown = (state.version, compact)
        totals = [tally_line("question", state.question, compact), tally_line("session", state.session, compact)]
        self.query_one(".totals", Static).update(Content("\n").join(totals))
        budget = self.query_one(".budget", Static)
        budget.display = state.budget is not None
        if state.budget is not None:
            budget.update(budget_line(state.session.cost, state.budget))
        self.query_one(".breakdown Static", Static).update(breakdown(state))

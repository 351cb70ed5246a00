"""One row per tool call — round, tool, alias → model, status and time, tokens, cost — opening to details.

Rows are folds whose title is laid out in columns; columns that do not fit the pane's width are dropped
tier by tier (tokens, then the route and the tool, which the alias implies), so an 80-column terminal still
shows who ran, how it went, how long it took and what it cost; an opened row shows everything.
"""

from __future__ import annotations

from textual import events
from textual.markup import escape
from textual.widgets import Collapsible, Static

from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.state import CallView, SessionView
from orchestra_tui.tui.widgets.call_details import call_details
from orchestra_tui.tui.widgets.follow import FollowingScroll
from orchestra_tui.tui.widgets.keyed import KeyedChildren

EMPTY_HINT = "Tool calls appear here, one row each; Enter or a click opens a row."

# The status column is a mark plus the duration; the word is in the opened row and the help screen.
STATUS_MARKS = {
    "running": ("◌", "$accent"),
    "ok": ("✓", "$success"),
    "empty": ("○", "$warning"),
    "error": ("✗", "$error"),
    "cancelled": ("⊘", "$warning"),
}

# Column sets from wide to narrow: (name, width, right-aligned); width 0 takes what is left.
_TIERS = [
    (80, [("round", 4, False), ("tool", 17, False), ("route", 0, False), ("status", 7, False),
          ("tokens", 11, True), ("cost", 12, True)]),
    (56, [("round", 4, False), ("tool", 17, False), ("route", 0, False), ("status", 7, False),
          ("cost", 12, True)]),
    # Narrowest: the alias alone, which names its tool too (reasoner-2 is enhance_reasoning) and says who ran.
    (0, [("round", 4, False), ("alias", 0, False), ("status", 7, False), ("cost", 10, True)]),
]
_TITLE_CHROME = 5  # fold symbol and padding, scrollbar


def _layout(width: int) -> list[tuple[str, int, bool]]:
    columns = next(cols for least, cols in _TIERS if width >= least)
    rest = width - sum(w + 1 for _, w, _ in columns if w)
    return [(name, max(rest, 6) if w == 0 else w, right) for name, w, right in columns]


def short_model(model: str) -> str:
    """`Qwen/Qwen2.5-Coder-32B-Instruct` reads as `Qwen2.5-Coder-32B-Instruct` in a row; details keep it whole."""
    return model.rsplit("/", 1)[-1]


def _cells(call: CallView) -> dict[str, tuple[str, str]]:
    episode, number = call.round_key
    mark, style = STATUS_MARKS.get(call.status, ("?", ""))
    took = "…" if call.status == "running" else fmt.seconds(call.seconds)
    tally = call.tally
    return {
        "round": (f"Q{episode}R{number}" if episode > 1 else f"R{number}", "bold"),
        "tool": (call.tool, ""),
        "alias": (call.alias, ""),
        "route": (f"{call.alias} → {short_model(call.model)}", "$text-muted"),
        "status": (f"{mark} {took}", style),
        "tokens": (f"{fmt.tokens(tally.input_tokens)}/{fmt.tokens(tally.output_tokens)}" if tally.calls else "", ""),
        "cost": (fmt.cost_label(tally.cost, tally.priced, tally.unpriced) if tally.calls else "", ""),
    }


def _row(cells: dict[str, tuple[str, str]], columns: list[tuple[str, int, bool]]) -> str:
    out = []
    for name, width, right in columns:
        text, style = cells[name]
        text = fmt.clip(text, width)
        text = text.rjust(width) if right else text.ljust(width)
        out.append(f"[{style}]{escape(text)}[/]" if style else escape(text))
    return " ".join(out)


def call_title(call: CallView, width: int) -> str:
    return _row(_cells(call), _layout(width))


def header_line(width: int) -> str:
    names = {"round": "rnd", "tool": "tool", "alias": "alias", "route": "alias → model", "status": "status",
             "tokens": "in/out tok", "cost": "cost"}
    return _row({k: (v, "") for k, v in names.items()}, _layout(width))


class CallFold(Collapsible):
    details_stale = False

    def __init__(self, call: CallView, width: int) -> None:
        self.details = Static(call_details(call), classes="call-details")
        super().__init__(self.details, title=call_title(call, width), collapsed=True)
        self.call_id = call.call_id
        self.shown = (call.version, width)

    def show(self, call: CallView, width: int) -> None:
        if self.shown == (call.version, width):
            return
        self.shown = (call.version, width)
        self.title = call_title(call, width)
        if self.collapsed:
            # Rendering the details of a folded row is wasted work; they are refreshed when it opens.
            self.details_stale = True
        else:
            self.details.update(call_details(call))


class ToolCallPane(FollowingScroll):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._state: SessionView | None = None
        self._rows: KeyedChildren[CallView, CallFold] = KeyedChildren(
            self,
            key=lambda call: call.call_id,
            make=lambda call: CallFold(call, self.title_width),
            update=lambda fold, call: fold.show(call, self.title_width),
        )

    def compose(self):
        yield Static("", classes="columns", markup=True)
        yield Static(EMPTY_HINT, classes="empty-hint")

    @property
    def title_width(self) -> int:
        return max(self.size.width - _TITLE_CHROME, 24)

    def show(self, state: SessionView) -> None:
        self._state = state
        self.set_class(bool(state.calls), "-has-content")
        self.query_one(".columns", Static).update(header_line(self.title_width))
        with self.following():
            self._rows.sync(list(state.calls.values()))

    def on_resize(self, event: events.Resize) -> None:
        if self._state is not None:
            self.show(self._state)

    def on_collapsible_expanded(self, event: Collapsible.Expanded) -> None:
        fold = event.collapsible
        if isinstance(fold, CallFold) and fold.details_stale and self._state is not None:
            if call := self._state.calls.get(fold.call_id):
                fold.details.update(call_details(call))
                fold.details_stale = False

    def row(self, call_id: str) -> CallFold | None:
        return self._rows.get(call_id)

    @property
    def rows(self) -> list[CallFold]:
        return [fold for _, fold in self._rows.views]

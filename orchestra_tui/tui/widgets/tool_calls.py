"""One row per tool call — round, tool, alias → model, status, time, tokens, cost — opening to its details.

Rows are folds whose title is laid out in columns; columns that do not fit the pane's width are dropped
in a fixed order (tokens first, then time, then the alias → model route), so an 80-column terminal still
shows what ran, how it went and what it cost.
"""

from __future__ import annotations

from textual import events
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widgets import Collapsible, Static

from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.state import CallView, SessionView
from orchestra_tui.tui.widgets.call_details import call_details
from orchestra_tui.tui.widgets.keyed import KeyedChildren

EMPTY_HINT = "Tool calls appear here, one row each; Enter or a click opens a row."

STATUS_MARKS = {
    "running": ("◌ running", "$accent"),
    "ok": ("✓ ok", "$success"),
    "empty": ("○ empty", "$warning"),
    "error": ("✗ error", "$error"),
    "cancelled": ("⊘ cancel", "$warning"),
}

# (name, width, right-aligned); `route` takes whatever width is left.
_COLUMNS = [("round", 5, False), ("tool", 17, False), ("route", 0, False), ("status", 9, False),
            ("time", 6, True), ("tokens", 11, True), ("cost", 10, True)]
_DROP_ORDER = ["tokens", "time", "route"]
_ROUTE_MIN = 12
_TITLE_CHROME = 8  # fold symbol, padding, scrollbar


def _layout(width: int) -> list[tuple[str, int, bool]]:
    columns = list(_COLUMNS)
    for drop in [None, *_DROP_ORDER]:
        if drop is not None:
            columns = [c for c in columns if c[0] != drop]
        fixed = sum(w + 1 for name, w, _ in columns if name != "route")
        has_route = any(name == "route" for name, _, _ in columns)
        if not has_route and fixed <= width:
            return columns
        if has_route and width - fixed >= _ROUTE_MIN:
            return [(n, width - fixed if n == "route" else w, r) for n, w, r in columns]
    return columns


def _cells(call: CallView) -> dict[str, tuple[str, str]]:
    episode, number = call.round_key
    status, style = STATUS_MARKS.get(call.status, (call.status, ""))
    tally = call.tally
    return {
        "round": (f"Q{episode}R{number}" if episode > 1 else f"R{number}", "bold"),
        "tool": (call.tool, ""),
        "route": (f"{call.alias} → {call.model}", "$text-muted"),
        "status": (status, style),
        "time": (fmt.seconds(call.seconds), ""),
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
    names = {"round": "round", "tool": "tool", "route": "alias → model", "status": "status",
             "time": "time", "tokens": "in/out tok", "cost": "cost"}
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


class ToolCallPane(VerticalScroll):
    ALLOW_MAXIMIZE = True

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

    def on_mount(self) -> None:
        self.anchor()

    @property
    def title_width(self) -> int:
        return max(self.size.width - _TITLE_CHROME, 20)

    def show(self, state: SessionView) -> None:
        self._state = state
        self.set_class(bool(state.calls), "-has-content")
        self.query_one(".columns", Static).update(header_line(self.title_width))
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

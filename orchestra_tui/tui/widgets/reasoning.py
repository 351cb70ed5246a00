"""The policy's thinking, one fold per round: the current round open and streaming, earlier ones folded."""

from __future__ import annotations

import json

from textual.content import Content
from textual.markup import escape
from textual.widgets import Collapsible, Static

from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.state import RoundKey, RoundView, SessionView
from orchestra_tui.tui.widgets.chunked_text import ChunkedText
from orchestra_tui.tui.widgets.follow import FollowingScroll
from orchestra_tui.tui.widgets.keyed import KeyedChildren

EMPTY_HINT = "The policy's thinking streams here, folded per round."


def round_title(view: RoundView, current: bool) -> str:
    """Markup for the fold's title: which round, what it decided, what it cost."""
    name = f"Q{view.episode} · round {view.number}" if view.episode > 1 else f"Round {view.number}"
    parts = [f"[b]{name}[/b]"]
    if view.rejected:
        parts.append(f"[$warning]rejected: {escape(view.rejected[0])}[/]")
    elif view.tool_calls:
        call = view.tool_calls[0]
        parts.append(f"→ {escape(_call_label(call))}")
    elif not view.finished and current:
        parts.append("[$text-muted]thinking…[/]")
    stats = []
    if view.context_tokens:
        stats.append(f"{fmt.tokens(view.context_tokens)} ctx")
    if view.reused_tokens:
        stats.append(f"{fmt.tokens(view.reused_tokens)} reused")
    if view.tally.output_tokens:
        stats.append(f"{fmt.tokens(view.tally.output_tokens)} out")
    if view.seconds is not None:
        stats.append(fmt.seconds(view.seconds))
    if view.tally.calls:
        stats.append(fmt.cost_label(view.tally.cost, view.tally.priced, view.tally.unpriced))
    if stats:
        parts.append(f"[$text-muted]{escape(' · '.join(stats))}[/]")
    return "  ".join(parts)


def _call_label(call: dict) -> str:
    """`search(search-2)` from a produced call; arguments arrive as a JSON string or a dict."""
    arguments = call.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {}
    model = arguments.get("model") if isinstance(arguments, dict) else None
    return f"{call.get('name', '?')}({model})" if model else str(call.get("name", "?"))


REPLY_CHARS = 600


def _without_thinking(view: RoundView) -> Content:
    """A round with no thinking text still says something: a model that does not think (the embedded
    default) replies with the tool call alone, and an empty pane would read as a broken stream."""
    if not view.finished:
        return Content.styled("waiting for the policy…", "$text-muted italic")
    reply = view.content.strip()
    if not reply:
        return Content.styled("(no thinking text)", "$text-muted italic")
    if len(reply) > REPLY_CHARS:
        reply = reply[:REPLY_CHARS] + "…"
    return Content.assemble(("(no thinking text) the policy replied:\n", "$text-muted italic"), (reply, "$text-muted"))


def round_note(view: RoundView) -> Content | None:
    """What is said about a round below its thinking: no thinking yet, a rejection, calls not run."""
    parts: list[Content] = []
    if not view.thinking.strip():
        parts.append(_without_thinking(view))
    if view.rejected:
        reason, detail = view.rejected
        parts.append(Content.styled(f"⚠ rejected ({reason}): {detail}", "$warning"))
    if len(view.tool_calls) > 1:
        extra = ", ".join(_call_label(call) for call in view.tool_calls[1:])
        parts.append(Content.styled(f"also proposed, not run: {extra}", "$text-muted"))
    return Content("\n").join(parts) if parts else None


class RoundFold(Collapsible):
    """One round: the thinking (streamed into pieces, so a long round stays cheap to repaint) and a note."""

    def __init__(self, view: RoundView, current: bool) -> None:
        self.body = ChunkedText(classes="thinking")
        self.note = Static(classes="round-note")
        super().__init__(self.body, self.note, title=round_title(view, current), collapsed=not current)
        self.key = view.key
        self._paint(view, current)

    def show(self, view: RoundView, current: bool) -> None:
        if view.version == self.shown_version and current == self.shown_current:
            return
        self.title = round_title(view, current)
        self._paint(view, current)

    def _paint(self, view: RoundView, current: bool) -> None:
        self.shown_version, self.shown_current = view.version, current
        thinking = view.thinking.strip()
        self.body.update(thinking)
        self.body.display = bool(thinking)
        note = round_note(view)
        self.note.update(note or "")
        self.note.display = note is not None
        self._note_text = note.plain if note is not None else ""

    def text(self) -> str:
        """The thinking and the note as plain text (for tests and copying)."""
        return "\n".join(part for part in (self.body.text, self._note_text) if part)


class ReasoningPane(FollowingScroll):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._current: RoundKey | None = None
        self._folds: KeyedChildren[RoundView, RoundFold] = KeyedChildren(
            self,
            key=lambda view: view.key,
            make=lambda view: RoundFold(view, view.key == self._current),
            update=lambda fold, view: fold.show(view, view.key == self._current),
        )

    def compose(self):
        yield Static(EMPTY_HINT, classes="empty-hint")

    def show(self, state: SessionView) -> None:
        rounds = list(state.rounds.values())
        self.set_class(bool(rounds), "-has-content")
        current = state.current_round or (rounds[-1].key if rounds else None)
        previous, self._current = self._current, current
        with self.following():
            self._folds.sync(rounds)
        if current != previous:
            # A new round folds the last one away; folds the user opened by hand stay as they are.
            if previous is not None and (fold := self._folds.get(previous)):
                fold.collapsed = True
            if current is not None and (fold := self._folds.get(current)):
                fold.collapsed = False

    def fold(self, number: int, episode: int | None = None) -> RoundFold | None:
        """The fold of round `number` (of the latest episode unless one is named)."""
        for key, fold in reversed(self._folds.views):
            if key[1] == number and (episode is None or key[0] == episode):
                return fold
        return None

    @property
    def folds(self) -> list[RoundFold]:
        return [fold for _, fold in self._folds.views]

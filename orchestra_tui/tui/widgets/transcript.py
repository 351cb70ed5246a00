"""The chat transcript: questions, the answering expert's reply (streamed, then final), notices, outcomes."""

from __future__ import annotations

from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Markdown, Static

from orchestra_tui.tui.state import Entry, SessionView
from orchestra_tui.tui.widgets.follow import FollowingScroll
from orchestra_tui.tui.widgets.keyed import KeyedChildren

EMPTY_HINT = "Ask a question below. The policy picks a tool each round until an expert answers."

_NOTICE_MARKS = {"info": "ℹ", "warning": "⚠", "error": "✗", "success": "✓"}


def _entry_key(entry: Entry) -> object:
    # A finished answer is a different widget (Markdown) from the streaming one (plain text).
    return (entry.key, entry.streaming)


class EntryView(Vertical):
    """One transcript item; remembers the version it last showed so unchanged items cost nothing."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(classes=f"entry {entry.kind} -{entry.level}")
        self.entry_version = -1
        self._entry = entry

    def compose(self):
        entry = self._entry
        if entry.kind == "answer":
            yield Static(Content.styled(entry.meta, "$text-muted"), classes="meta")
            if entry.streaming:
                yield Static(entry.text or "…", markup=False, classes="body")
            else:
                yield Markdown(entry.text, classes="body")
        else:
            yield Static(self._line(entry), classes="body")
        self.entry_version = entry.version

    @staticmethod
    def _line(entry: Entry) -> Content:
        if entry.kind == "question":
            mark = "… " if entry.pending else "› "
            return Content.assemble((mark, "bold $accent"), (entry.text, "bold"))
        if entry.kind == "outcome":
            return Content.assemble((entry.text, "bold"), "  ", (entry.meta, "$text-muted"))
        return Content.assemble(f"{_NOTICE_MARKS.get(entry.level, '·')} ", entry.text)

    def on_mount(self) -> None:
        # The entry may have moved on between compose and mount (a fast stream).
        self._repaint()

    def show(self, entry: Entry) -> None:
        self._entry = entry
        if self.is_mounted:
            self._repaint()

    def _repaint(self) -> None:
        entry = self._entry
        if entry.version == self.entry_version:
            return
        self.entry_version = entry.version
        body = self.query_one(".body", Widget)
        if isinstance(body, Markdown):
            body.update(entry.text)
        elif isinstance(body, Static):
            body.update(self._line(entry) if entry.kind != "answer" else (entry.text or "…"))


class Transcript(FollowingScroll):
    """Scrolls with the conversation while the user is at the bottom ; stays put when scrolled up."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._entries: KeyedChildren[Entry, EntryView] = KeyedChildren(
            self, _entry_key, EntryView, lambda view, entry: view.show(entry)
        )

    def compose(self):
        yield Static(EMPTY_HINT, classes="empty-hint")

    def show(self, state: SessionView) -> None:
        self.set_class(bool(state.entries), "-has-content")
        with self.following():
            self._entries.sync(state.entries)

    def text(self) -> str:
        """Everything the transcript holds as plain text (for tests and copying)."""
        lines = []
        for _, view in self._entries.views:
            entry = view._entry
            lines.append(" ".join(part for part in (entry.text, entry.meta) if part))
        return "\n".join(lines)

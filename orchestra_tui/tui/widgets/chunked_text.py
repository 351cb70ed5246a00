"""Long streamed text, shown as a stack of pieces so that a repaint costs the tail, not the whole text.

A single Static re-wraps and re-measures all of its text on every update: with a round of thinking that
grows token by token, each repaint costs more than the last, and at a few thousand tokens the repaints alone
starve key presses (benchmarks/bench_ui_stream.py measured it). Here the text is cut into pieces of about
`CHUNK_CHARS`; a piece, once followed by another, never changes again, so only the last one is updated.
"""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import Static

CHUNK_CHARS = 1500


def split_chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Cut `text` into pieces of at most about `size` characters, at a line break where the piece has one,
    else at a space. Prefix-stable: appending to the text changes only the last piece (a cut is decided only
    once `size + 1` characters past the previous cut exist), which is what lets the earlier ones stay put.
    The separator a piece was cut at becomes the break between two pieces."""
    chunks: list[str] = []
    pos = 0
    while len(text) - pos > size:
        window = text[pos : pos + size + 1]
        cut = window.rfind("\n")
        if cut <= 0:
            cut = window.rfind(" ")
        if cut <= 0:  # one unbroken run of characters: cut it anywhere
            chunks.append(text[pos : pos + size])
            pos += size
        else:
            chunks.append(text[pos : pos + cut])
            pos += cut + 1
    chunks.append(text[pos:])
    return chunks


class ChunkedText(Widget):
    DEFAULT_CSS = """
    ChunkedText { height: auto; layout: vertical; }
    ChunkedText > Static { height: auto; }
    """

    def __init__(self, text: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._text = text
        self._shown: list[str] = []
        self._pieces: list[Static] = []

    @property
    def text(self) -> str:
        return self._text

    def on_mount(self) -> None:
        self._sync()

    def update(self, text: str) -> None:
        self._text = text
        # Before mounting, nothing can be mounted into this widget; on_mount shows the latest text.
        if self.is_mounted:
            self._sync()

    def _sync(self) -> None:
        chunks = split_chunks(self._text)
        for i, chunk in enumerate(chunks[: len(self._pieces)]):
            if i >= len(self._shown) or self._shown[i] != chunk:
                self._pieces[i].update(chunk)
        if len(self._pieces) > len(chunks):  # replay stepped back to a shorter text
            surplus = self._pieces[len(chunks) :]
            del self._pieces[len(chunks) :]
            self.remove_children(surplus)
        fresh = [Static(chunk, markup=False) for chunk in chunks[len(self._pieces) :]]
        if fresh:
            self._pieces.extend(fresh)
            self.mount_all(fresh)
        self._shown = chunks

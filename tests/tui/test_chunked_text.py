"""Long streamed text is shown in pieces that never change once followed by another, so a repaint costs
the tail only; the pieces always add up to the text."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from textual.app import App

from orchestra_tui.tui.widgets.chunked_text import ChunkedText, split_chunks

SIZE = 40


def joined_back(chunks: list[str], text: str) -> bool:
    """The pieces are the text less the single separators it was cut at."""
    pos = 0
    for i, chunk in enumerate(chunks):
        if i > 0 and text[pos : pos + len(chunk)] != chunk:
            if text[pos : pos + 1] not in (" ", "\n"):
                return False
            pos += 1  # the separator the previous piece was cut at
        if text[pos : pos + len(chunk)] != chunk:
            return False
        pos += len(chunk)
    return pos == len(text)


@given(st.text(alphabet="ab \n", max_size=400), st.text(alphabet="ab \n", max_size=200))
def test_pieces_are_bounded_cover_the_text_and_only_the_last_changes_when_text_grows(text, more):
    chunks = split_chunks(text, SIZE)
    assert all(len(chunk) <= SIZE for chunk in chunks)
    assert joined_back(chunks, text)
    grown = split_chunks(text + more, SIZE)
    assert grown[: len(chunks) - 1] == chunks[:-1]  # every piece but the last stays exactly as it was


def test_a_separator_right_at_the_limit_is_dropped_not_carried():
    text = "a" * SIZE + "\n" + "b" * SIZE + "c"
    assert split_chunks(text, SIZE) == ["a" * SIZE, "b" * SIZE, "c"]
    assert joined_back(split_chunks(text, SIZE), text)


def test_a_cut_prefers_a_line_break_then_a_space():
    text = "first line\n" + "word " * 10
    assert split_chunks(text, 20)[0] == "first line"
    assert split_chunks("aaaa bbbb cccc dddd eeee", 12)[0] == "aaaa bbbb"
    assert split_chunks("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


class Holder(App):
    def compose(self):
        yield ChunkedText("before mount", id="text")


async def test_the_widget_shows_growing_and_shrinking_text_with_stable_pieces():
    app = Holder()
    async with app.run_test() as pilot:
        widget = app.query_one(ChunkedText)
        await pilot.pause()
        assert [str(s.content) for s in widget.query("Static")] == ["before mount"]
        rng = random.Random(7)
        words = [rng.choice(["alpha", "beta", "gamma\n"]) for _ in range(2000)]
        text = ""
        first_piece = None
        for word in words:
            text += word + " "
            widget.update(text)
        await pilot.pause()
        pieces = list(widget.query("Static"))
        assert len(pieces) > 5 and [str(p.content) for p in pieces] == split_chunks(text)
        first_piece = pieces[0]
        widget.update(text + "more")
        await pilot.pause()
        assert widget.query("Static").first() is first_piece  # the frozen pieces are the same widgets
        widget.update("short again")  # replay stepping back
        await pilot.pause()
        assert [str(s.content) for s in widget.query("Static")] == ["short again"]
        assert widget.text == "short again"

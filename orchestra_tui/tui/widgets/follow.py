"""A scroll pane that follows new content while the reader is at the bottom, and stays put otherwise.

Textual's `anchor()` would do this but also pins short content to the bottom edge; the panes read better
filled from the top.
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

from textual.containers import VerticalScroll


class FollowingScroll(VerticalScroll):
    ALLOW_MAXIMIZE = True

    @contextmanager
    def following(self) -> Iterator[None]:
        """Wrap a content change; scrolls to the new end if the view was at the end before it."""
        at_end = self.scroll_y >= self.max_scroll_y - 1
        yield
        if at_end:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)

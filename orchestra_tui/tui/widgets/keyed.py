"""Keep a container's children in step with a list of keyed items.

Panes render from the whole SessionView on every flush. Live, the list only grows; in replay a step back
shortens it. Matching the longest common prefix of keys covers both without remounting what is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from textual.widget import Widget

Item = TypeVar("Item")
View = TypeVar("View", bound=Widget)


class KeyedChildren(Generic[Item, View]):
    def __init__(
        self,
        container: Widget,
        key: Callable[[Item], object],
        make: Callable[[Item], View],
        update: Callable[[View, Item], None],
    ) -> None:
        self.container = container
        self._key = key
        self._make = make
        self._update = update
        self.views: list[tuple[object, View]] = []

    def sync(self, items: Sequence[Item]) -> list[View]:
        """Update the common prefix, replace the rest; returns the widgets newly mounted."""
        keys = [self._key(item) for item in items]
        common = 0
        limit = min(len(keys), len(self.views))
        while common < limit and self.views[common][0] == keys[common]:
            common += 1
        stale = [view for _, view in self.views[common:]]
        if stale:
            self.container.remove_children(stale)
        del self.views[common:]
        for (_, view), item in zip(self.views, items):
            self._update(view, item)
        fresh = [self._make(item) for item in items[common:]]
        if fresh:
            self.container.mount_all(fresh)
            self.views.extend(zip(keys[common:], fresh))
        return fresh

    def get(self, key: object) -> View | None:
        return next((view for k, view in self.views if k == key), None)

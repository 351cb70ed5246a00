"""The Textual front end. The engine below it never imports Textual; this package knows the engine only
through `EpisodeSource` and the events it yields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestra_tui.core.events import Event
    from orchestra_tui.core.session import EpisodeSource


def run_app(
    source: EpisodeSource | None = None,
    replay_events: list[Event] | None = None,
    header: dict[str, Any] | None = None,
) -> int:
    """Open the app: a live chat over `source`, or a replay of `replay_events` (with the trajectory's
    `header`). Returns the process exit code."""
    # Imported here so that `import orchestra_tui.tui` stays cheap for headless callers.
    from orchestra_tui.tui.app import OrchestraApp

    app = OrchestraApp(source, replay_events, header=header)
    app.run()
    return app.return_code or 0


__all__ = ["run_app"]

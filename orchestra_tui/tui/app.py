"""The orchestra-tui app: a chat over a live engine, or a replay of a recorded trajectory, in the same panes.

Live, each question runs one episode in an async worker on the app's loop. The worker only folds events into
the SessionView (through the EventHandler); widgets are touched in the handler's flush, which runs on a
short timer so streamed text is painted in batches. Replay folds a prefix of the recorded events through
the same handler. The engine is reached only through `EpisodeSource`; optional abilities (profiles,
unavailable aliases, a budget) are used when the source has them.

Profiles (picker, editor) and switching between live chat and a replay opened from inside the app live in
the mixins `ProfileActions` and `ModeSwitch`; replay moves in `ReplayControls`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from orchestra_tui.core.events import Event, Notice
from orchestra_tui.core.session import EpisodeSource
from orchestra_tui.tui.app_modes import ModeSwitch
from orchestra_tui.tui.app_profiles import ProfileActions
from orchestra_tui.tui.commands import ProfileCommands, app_commands
from orchestra_tui.tui.event_handler import EventHandler, policy_label
from orchestra_tui.tui.format import parse_usd
from orchestra_tui.tui.replay import ReplayCursor
from orchestra_tui.tui.replay_controls import ReplayControls
from orchestra_tui.tui.screens.help import HelpScreen
from orchestra_tui.tui.state import SessionView
from orchestra_tui.tui.widgets.cost_meter import CostMeter
from orchestra_tui.tui.widgets.header import SessionHeader
from orchestra_tui.tui.widgets.reasoning import ReasoningPane
from orchestra_tui.tui.widgets.timeline import Timeline
from orchestra_tui.tui.widgets.tool_calls import ToolCallPane
from orchestra_tui.tui.widgets.transcript import Transcript

# Streamed text is painted at most this often; fast enough to read as live, slow enough to stay cheap.
FLUSH_INTERVAL_S = 1 / 30
NARROW_WIDTH = 100
TALL_HEIGHT = 50  # tall enough to show the cost breakdown without being asked
PANE_IDS = ("transcript", "reasoning", "tool-calls")
REPLAY_ACTIONS = {"play_pause", "step", "round_step", "seek_edge", "speed", "jump_round"}
MAIN_SCREEN_ACTIONS = {"zoom", "toggle_breakdown"}


def _header_policy(header: dict[str, Any]) -> dict[str, Any] | None:
    """A trajectory header names the policy's backend; its spec says which kind and model that is."""
    spec = (header.get("backends") or {}).get(header.get("policy_backend"))
    if not isinstance(spec, dict):
        return None
    model = spec.get("model_name") or spec.get("model") or Path(str(spec.get("model_path", ""))).stem
    return {"backend": spec.get("kind"), "model": model or header.get("policy_backend")}


class MainView(Widget):
    """Everything of the main screen above the footer. Switching between live chat and replay recomposes
    this one widget, so every pane starts empty instead of comparing versions across two histories."""

    DEFAULT_CSS = "MainView { height: 1fr; layout: vertical; }"

    def compose(self) -> ComposeResult:
        app: OrchestraApp = self.app  # type: ignore[assignment]
        yield from app.compose_main()


class OrchestraApp(ProfileActions, ModeSwitch, ReplayControls, App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "orchestra-tui"
    COMMANDS = App.COMMANDS | {ProfileCommands}
    BINDINGS = [
        Binding("f1", "help", "Help", id="help"),
        Binding("escape", "cancel_episode", "Cancel", id="cancel"),
        Binding("f2", "pick_profile", "Profile", id="profile"),
        Binding("f3", "zoom", "Zoom", id="zoom"),
        Binding("f4", "toggle_breakdown", "Costs", id="costs"),
        Binding("f5", "edit_profile", "Edit profile", id="edit_profile"),
        Binding("ctrl+o", "open_trajectory", "Open", id="open_trajectory"),
        # The same key as cancel: check_action lets only one of them act (this one in an opened replay).
        Binding("escape", "leave_replay", "Back to live", id="replay.live"),
        # Replay keys are priority bindings so a focused scroll pane does not take the arrows;
        # check_action switches them off outside replay, where the keys fall through to the input.
        Binding("space", "play_pause", "Play/Pause", priority=True, id="replay.play"),
        Binding("left", "step(-1)", "Back", priority=True, id="replay.back"),
        Binding("right", "step(1)", "Step", priority=True, id="replay.step"),
        Binding("left_square_bracket", "round_step(-1)", "Prev round", priority=True, id="replay.prev_round"),
        Binding("right_square_bracket", "round_step(1)", "Next round", priority=True, id="replay.next_round"),
        Binding("home", "seek_edge(0)", "First", show=False, priority=True, id="replay.first"),
        Binding("end", "seek_edge(1)", "Last", show=False, priority=True, id="replay.last"),
        Binding("minus", "speed(-1)", "Slower", show=False, priority=True, id="replay.slower"),
        Binding("plus,equals_sign", "speed(1)", "Faster", show=False, priority=True, id="replay.faster"),
        *[Binding(str(n), f"jump_round({n})", show=False, priority=True, id=f"replay.round{n}") for n in range(1, 10)],
    ]

    def __init__(
        self,
        source: EpisodeSource | None = None,
        replay_events: list[Event] | None = None,
        header: dict[str, Any] | None = None,
        *,
        cursor_blink: bool = True,
        theme: str | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.header_info = dict(header or {})
        self.replay = ReplayCursor(replay_events) if replay_events is not None else None
        self.cursor_blink = cursor_blink
        self._initial = self._initial_view()
        mode = "replay" if self.replay is not None else "live"
        self.handler = EventHandler(schedule=self._schedule_flush if mode == "live" else None, mode=mode)
        self.handler.reset(**self._initial)
        self._cancel_presses = 0
        self._asked_at = 0.0
        if theme:
            self.theme = theme

    # --- layout --------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield MainView(id="main")
        yield Footer()

    def compose_main(self) -> ComposeResult:
        """The panes and, below them, the question box (live) or the timeline (replay)."""
        yield SessionHeader(id="header")
        with Horizontal(id="body"):
            yield Transcript(id="transcript", classes="pane")
            with Vertical(id="inspector"):
                yield ReasoningPane(id="reasoning", classes="pane")
                yield ToolCallPane(id="tool-calls", classes="pane")
                yield CostMeter(id="cost", classes="pane")
        if self.replay is not None:
            yield Timeline(self.replay, id="timeline")
        else:
            yield Input(placeholder="Ask a question — Enter sends, Esc cancels, F1 help", id="ask")

    def on_mount(self) -> None:
        self.setup_panes()
        if self.replay is None:
            self._announce_unavailable()
            if self.source is None:
                message = "No engine is attached: questions cannot be asked."
                self.handler.handle(Notice(level="warning", message=message))
            self.handler.flush()

    @property
    def main_screen(self) -> Screen:
        """The screen holding the panes, whatever dialog is on top of it."""
        return self.screen_stack[0]

    def setup_panes(self) -> None:
        """Wire freshly composed panes to the handler and show the current state in them."""
        main = self.main_screen
        titles = {"transcript": "Transcript", "reasoning": "Reasoning", "tool-calls": "Tool calls", "cost": "Cost"}
        for pane_id, title in titles.items():
            main.query_one(f"#{pane_id}").border_title = title
        self.handler.panes = [
            main.query_one(SessionHeader),
            main.query_one(Transcript),
            main.query_one(ReasoningPane),
            main.query_one(ToolCallPane),
            main.query_one(CostMeter),
        ]
        self._fit_to_size()
        main.set_class(self.size.height >= TALL_HEIGHT, "-breakdown")
        if self.replay is not None:
            # Nothing focused, as when replay starts from the command line: a widget removed by a switch
            # from live must not keep the focus (keys would go nowhere).
            main.set_focus(None)
            self.replay_seek(0)
            return
        ask = main.query_one("#ask", Input)
        ask.cursor_blink = self.cursor_blink
        ask.focus()
        self.handler.flush()

    def on_resize(self) -> None:
        self._fit_to_size()

    def _fit_to_size(self) -> None:
        # Every screen on the stack, so the panes under a dialog are laid out right when it closes.
        for screen in self.screen_stack:
            screen.set_class(self.size.width < NARROW_WIDTH, "-narrow")

    def _initial_view(self) -> dict[str, Any]:
        """What the header and meter show before any event: from the source live, the header in replay."""
        info, source = self.header_info, self.source
        if self.replay is not None:
            # Only the trajectory speaks in replay, even when a live session is kept aside behind it.
            profile, policy = info.get("profile"), info.get("policy") or _header_policy(info)
            budget = info.get("budget_usd")
        else:
            profile, policy = getattr(source, "profile_name", None), getattr(source, "policy_label", None)
            budget = info.get("budget_usd", getattr(source, "budget_usd", None))
        return {"profile": profile or None, "policy": policy_label(policy), "budget": parse_usd(budget)}

    def _announce_unavailable(self) -> None:
        """Aliases that cannot run (a missing key, a server that is down) are said once, grouped by reason."""
        unavailable = getattr(self.source, "unavailable", None)
        if not callable(unavailable):
            return
        try:
            problems = list(unavailable())
        except Exception as error:  # a broken check must not keep the app from opening
            problems = [("some aliases", f"the availability check failed: {error}")]
        by_reason: dict[str, list[str]] = {}
        for alias, reason in problems:
            by_reason.setdefault(reason, []).append(alias)
        for reason, aliases in by_reason.items():
            self.handler.handle(Notice(level="warning", message=f"unavailable ({reason}): {', '.join(aliases)}"))

    # --- painting ------------------------------------------------------------------------------------

    def _schedule_flush(self, flush: Callable[[], None]) -> None:
        self.set_timer(FLUSH_INTERVAL_S, lambda: self.paint(flush))

    def paint(self, flush: Callable[[], None] | None = None) -> None:
        """Paint the current state now (the flush timer calls this too). The profile shown changes only by
        events: `Session.profile_name` already names a pending switch, which the header shows as pending."""
        (flush or self.handler.flush)()

    @property
    def state(self) -> SessionView:
        return self.handler.state

    # --- live chat -----------------------------------------------------------------------------------

    @on(Input.Submitted, "#ask")
    def ask(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question:
            return
        if self.source is None:
            self.notify("No engine is attached.", severity="error")
            return
        if self.state.running:
            self.notify("An episode is running; Esc cancels it.", severity="warning")
            return
        event.input.clear()
        self._cancel_presses = 0
        self._asked_at = time.monotonic()
        self.handler.ask(question)
        self.run_episode(question)
        self.refresh_bindings()

    @work(group="episode", exclusive=True, exit_on_error=False)
    async def run_episode(self, question: str) -> None:
        assert self.source is not None
        async for event in self.source.ask(question):
            self.handler.handle(event)

    @on(Worker.StateChanged)
    def _episode_state(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "episode" or event.state not in (
            WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED
        ):
            return
        state = self.state
        if event.state == WorkerState.ERROR:
            self.handler.handle(Notice(level="error", message=f"engine error: {event.worker.error!r}"))
        if state.running:
            # The engine stopped without saying how (it raised, or a second Esc stopped it hard).
            hard_stop = event.state == WorkerState.CANCELLED or state.status == "cancelling"
            self.handler.abandon("cancelled" if hard_stop else "error", time.monotonic() - self._asked_at)
        self.paint()
        self.refresh_bindings()

    def action_cancel_episode(self) -> None:
        if not self.state.running:
            return
        self._cancel_presses += 1
        if self._cancel_presses == 1 and self.source is not None:
            self.source.cancel()
            self.state.status = "cancelling"
            self.state.touch()
            self.handler.request_flush()
        else:
            self.workers.cancel_group(self, "episode")

    # --- conventions ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # App bindings reach every screen; these act on the main screen and wait while a dialog is open.
        on_main = len(self.screen_stack) == 1
        if action in REPLAY_ACTIONS:
            return self.replay is not None and on_main
        if action == "cancel_episode":
            return self.replay is None and self.state.running
        if action == "leave_replay":
            return self.can_leave_replay and on_main
        if action == "pick_profile":
            return on_main and self.can_switch_profiles()
        if action == "edit_profile":
            return on_main and self.can_edit_profiles()
        if action == "open_trajectory":
            # Not while the live episode runs: its panes are the only record of it until it ends.
            return on_main and not (self.replay is None and self.state.running)
        if action in MAIN_SCREEN_ACTIONS:
            return on_main
        return True

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        yield from app_commands(self)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(replay=self.replay is not None))

    def action_toggle_breakdown(self) -> None:
        self.screen.toggle_class("-breakdown")

    def action_zoom(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
            return
        pane = self.query_one("#transcript")
        for node in (self.focused, *(self.focused.ancestors if self.focused else ())):
            if getattr(node, "id", None) in PANE_IDS:
                pane = node
                break
        self.screen.maximize(pane, container=False)

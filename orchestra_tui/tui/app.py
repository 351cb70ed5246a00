"""The orchestra-tui app: a chat over a live engine, or a replay of a recorded trajectory, in the same panes.

Live, each question runs one episode in an async worker on the app's loop. The worker only folds events into
the SessionView (through the EventHandler); widgets are touched in the handler's flush, which runs on a
short timer so streamed text is painted in batches. Replay folds a prefix of the recorded events through
the same handler. The engine is reached only through `EpisodeSource`; optional abilities (profiles,
unavailable aliases, a budget) are used when the source has them.
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
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from orchestra_tui.core.events import Event, Notice
from orchestra_tui.core.session import EpisodeSource
from orchestra_tui.tui.commands import ProfileCommands, app_commands
from orchestra_tui.tui.event_handler import EventHandler, policy_label
from orchestra_tui.tui.format import parse_usd
from orchestra_tui.tui.replay import ReplayCursor
from orchestra_tui.tui.replay_controls import ReplayControls
from orchestra_tui.tui.screens.help import HelpScreen
from orchestra_tui.tui.screens.profile_picker import ProfilePicker
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


def _header_policy(header: dict[str, Any]) -> dict[str, Any] | None:
    """A trajectory header names the policy's backend; its spec says which kind and model that is."""
    spec = (header.get("backends") or {}).get(header.get("policy_backend"))
    if not isinstance(spec, dict):
        return None
    model = spec.get("model_name") or spec.get("model") or Path(str(spec.get("model_path", ""))).stem
    return {"backend": spec.get("kind"), "model": model or header.get("policy_backend")}


class OrchestraApp(ReplayControls, App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "orchestra-tui"
    COMMANDS = App.COMMANDS | {ProfileCommands}
    BINDINGS = [
        Binding("f1", "help", "Help", id="help"),
        Binding("escape", "cancel_episode", "Cancel", id="cancel"),
        Binding("f2", "pick_profile", "Profile", id="profile"),
        Binding("f3", "zoom", "Zoom", id="zoom"),
        Binding("f4", "toggle_breakdown", "Costs", id="costs"),
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
        # Hook for the profile editor screen (sliders per alias, cost/latency/quality, budgets, hard rules).
        self.profile_editor: Callable[[], Screen] | None = None
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
        yield Footer()

    def on_mount(self) -> None:
        titles = {"transcript": "Transcript", "reasoning": "Reasoning", "tool-calls": "Tool calls", "cost": "Cost"}
        for pane_id, title in titles.items():
            self.query_one(f"#{pane_id}").border_title = title
        self.handler.panes = [
            self.query_one(SessionHeader),
            self.query_one(Transcript),
            self.query_one(ReasoningPane),
            self.query_one(ToolCallPane),
            self.query_one(CostMeter),
        ]
        self._fit_to_size()
        self.screen.set_class(self.size.height >= TALL_HEIGHT, "-breakdown")
        if self.replay is not None:
            self.replay_seek(0)
            return
        ask = self.query_one("#ask", Input)
        ask.cursor_blink = self.cursor_blink
        ask.focus()
        self._announce_unavailable()
        if self.source is None:
            self.handler.handle(Notice(level="warning", message="No engine is attached: questions cannot be asked."))
        self.handler.flush()

    def on_resize(self) -> None:
        self._fit_to_size()

    def _fit_to_size(self) -> None:
        self.screen.set_class(self.size.width < NARROW_WIDTH, "-narrow")

    def _initial_view(self) -> dict[str, Any]:
        """What the header and meter show before any event: from the source live, the header in replay."""
        info, source = self.header_info, self.source
        if self.replay is not None:
            profile, policy = info.get("profile"), info.get("policy") or _header_policy(info)
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
        """Paint the current state now (the flush timer calls this too)."""
        state = self.handler.state
        # Live, the source is the authority on its profile: a switch lands there at a round boundary.
        name = getattr(self.source, "profile_name", None)
        if state.mode == "live" and name and name != state.profile:
            state.profile = name
            state.touch()
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

    # --- profiles ------------------------------------------------------------------------------------

    def profile_names(self) -> list[str]:
        names = getattr(self.source, "profile_names", None)
        if self.replay is not None or not callable(names) or not callable(getattr(self.source, "switch_profile", None)):
            return []
        return list(names())

    def switch_profile(self, name: str) -> None:
        switch = getattr(self.source, "switch_profile", None)
        if not callable(switch):
            self.notify("This engine cannot switch profiles.", severity="warning")
            return
        try:
            switch(name)
        except Exception as error:  # a bad profile must not take the app down
            self.notify(f"Cannot switch to {name}: {error}", severity="error")
            return
        self.state.pending_profile = name
        self.state.touch()
        self.paint()

    def action_pick_profile(self) -> None:
        names = self.profile_names()
        if names:
            picker = ProfilePicker(names, self.state.profile, self.state.running)
            self.push_screen(picker, lambda name: self.switch_profile(name) if name else None)

    def action_edit_profiles(self) -> None:
        if self.profile_editor is not None:
            self.push_screen(self.profile_editor())

    # --- conventions ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in REPLAY_ACTIONS:
            return self.replay is not None and len(self.screen_stack) == 1
        if action == "cancel_episode":
            return self.replay is None and self.state.running
        if action == "pick_profile":
            return bool(self.profile_names())
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

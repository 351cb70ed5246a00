"""F1: what the panes mean and which keys do what, for the mode the app is in."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

PANES = """\
## orchestra-tui

A small **policy** model (Orchestrator-8B) runs the episode: each **round** it thinks, then calls one tool —
`search`, `enhance_reasoning` (an expert writes Python that is run) or `answer` (an expert answers, which
ends the episode). The model only sees **aliases** such as `answer-2`; the active **profile** maps them to
real models and prices.

- **Transcript** — your questions, the answering expert's reply, notices and each episode's outcome.
- **Reasoning** — the policy's thinking, one fold per round; the current round is open.
- **Tool calls** — one row per call: round, tool, alias → model, status and time, tokens, cost. Enter opens a
  row. Status marks: ◌ running, ✓ ok, ○ empty result, ✗ error, ⊘ cancelled.
- **Cost** — this question and this session, the budget, and a breakdown by kind, model and profile.
  Calls without a known price are counted as *unpriced*; totals that miss them read as `≥$…`.
"""

LIVE_KEYS = """\
| key | action |
| --- | --- |
| Enter | ask (a follow-up carries the conversation) |
| Esc | cancel the running episode (twice: stop at once) |
| F2 | switch profile (applies from the next round); `e` in the list edits one |
| F3 | zoom the focused pane (Esc restores) |
| F4 | show or hide the cost breakdown |
| F5 | edit the active profile: sliders, budgets, hard rules (Ctrl+S saves) |
| Ctrl+O | open a saved trajectory and replay it here |
| Tab / Shift+Tab | move between panes |
| Ctrl+P | command palette |
| Ctrl+Q | quit |
"""

REPLAY_KEYS = """\
| key | action |
| --- | --- |
| Space | play / pause |
| ← / → | step one event back / forward |
| [ / ] | previous / next round |
| 1 … 9 | jump to round N |
| Home / End | first / last event |
| - / + | slower / faster |
| Ctrl+O | open another saved trajectory |
| Esc | back to the live chat (a replay opened from it) |
| F3 | zoom the focused pane |
| F4 | show or hide the cost breakdown |
| Ctrl+P | command palette |
| Ctrl+Q | quit |
"""


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("help.tcss")
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, replay: bool) -> None:
        super().__init__()
        self.replay = replay

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(PANES + "\n### Keys\n\n" + (REPLAY_KEYS if self.replay else LIVE_KEYS))

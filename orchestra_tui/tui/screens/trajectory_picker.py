"""Ctrl+O: pick a saved trajectory to replay in the same panes. Newest first, with the first question and
when it was asked; the app loads the chosen file and switches to replay."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.trajectory_index import TrajectoryInfo

QUESTION_CHARS = 60


def option_text(info: TrajectoryInfo) -> Content:
    question = fmt.clip(info.question, QUESTION_CHARS) if info.question else "(no question recorded)"
    profile = f"  {info.profile}" if info.profile else ""
    return Content.assemble(
        (info.date_label(), "bold"),
        "  ",
        (question, "" if info.question else "$text-muted italic"),
        (profile, "$text-muted"),
        "\n",
        (f"  {info.path.name}", "$text-muted"),
    )


class TrajectoryPicker(ModalScreen[Path | None]):
    CSS_PATH = Path(__file__).with_name("trajectory_picker.tcss")
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, trajectories: list[TrajectoryInfo], folder: Path) -> None:
        super().__init__()
        self.trajectories = trajectories
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(id="trajectories-box"):
            yield Label("Open a saved trajectory", classes="title")
            if self.trajectories:
                options = [Option(option_text(info), id=str(i)) for i, info in enumerate(self.trajectories)]
                yield OptionList(*options, id="trajectories")
                yield Label("Enter replays it here · Esc closes", classes="note")
            else:
                yield Label(f"No saved trajectories yet in {self.folder}. Ask a question first; every episode "
                            "is recorded.", classes="note empty")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.trajectories[int(event.option.id or 0)].path)

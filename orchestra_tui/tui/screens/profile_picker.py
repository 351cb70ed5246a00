"""F2: pick the profile the engine uses from the next round on.

The profile editor (a slider per alias and for cost, latency and quality, budget fields, hard rules) will be
its own screen; the app opens it through `OrchestraApp.profile_editor` when one is provided.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class ProfilePicker(ModalScreen[str | None]):
    CSS_PATH = Path(__file__).with_name("profile_picker.tcss")
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, names: list[str], current: str | None, running: bool) -> None:
        super().__init__()
        self.names = names
        self.current = current
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label("Switch profile", classes="title")
            options = [Option(f"{'● ' if n == self.current else '  '}{n}", id=n) for n in self.names]
            yield OptionList(*options, id="profiles")
            note = (
                "applies from the next round of the running episode" if self.running else "applies to the next question"
            )
            yield Label(note, classes="note")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.current in self.names:
            options.highlighted = self.names.index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

"""F2: pick the profile the engine uses from the next round on, or open one in the editor.

Returns `("use", name)`, `("edit", name)` or None; the app does the switching and the editing.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class ProfilePicker(ModalScreen[tuple[str, str] | None]):
    CSS_PATH = Path(__file__).with_name("profile_picker.tcss")
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("e", "edit", "Edit"),
    ]

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
            yield Label(f"Enter {note} · e edits", classes="note")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.current in self.names:
            options.highlighted = self.names.index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(("use", str(event.option.id)))

    def action_edit(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None:
            self.dismiss(("edit", self.names[options.highlighted]))

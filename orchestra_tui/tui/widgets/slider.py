"""A one-line slider for a weight from 0 to 1: arrow keys move it by a tenth, a click sets it.

Textual has no slider, and the profile editor needs fifteen-odd of them in an 80×24 terminal, so this one
is a single row: a track, a knob, and the value printed at the end so it reads without a mouse or colour.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

STEP = 0.1
VALUE_WIDTH = 5  # " 0.55"


def clamp(value: float) -> float:
    # Two decimals: repeated tenths must land on 0.3, not 0.30000000000000004, or the saved file shows it.
    return round(min(1.0, max(0.0, value)), 2)


class Slider(Widget, can_focus=True):
    DEFAULT_CSS = """
    Slider {
        height: 1;
        width: 1fr;
        min-width: 12;
    }
    Slider:focus {
        background: $boost;
    }
    """
    BINDINGS = [
        Binding("left,minus", "nudge(-1)", "Less", show=False),
        Binding("right,plus,equals_sign", "nudge(1)", "More", show=False),
        Binding("home", "set(0)", "Zero", show=False),
        Binding("end", "set(1)", "One", show=False),
    ]

    value: reactive[float] = reactive(0.0)

    class Changed(Message):
        def __init__(self, slider: Slider, value: float) -> None:
            super().__init__()
            self.slider = slider
            self.value = value

        @property
        def control(self) -> Slider:
            return self.slider

    def __init__(self, value: float = 0.0, *, id: str | None = None, classes: str | None = None,
                 tooltip: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(Slider.value, clamp(value))
        if tooltip:
            self.tooltip = tooltip

    def validate_value(self, value: float) -> float:
        return clamp(value)

    def watch_value(self, old: float, new: float) -> None:
        if old != new:
            self.post_message(self.Changed(self, new))

    @property
    def track_width(self) -> int:
        return max(self.size.width - VALUE_WIDTH, 4)

    def render(self) -> Content:
        width = self.track_width
        knob = round(self.value * (width - 1))
        focused = self.has_focus
        return Content.assemble(
            ("━" * knob, "$accent" if focused else "$secondary"),
            ("●", "bold $accent" if focused else "bold $foreground"),
            ("─" * (width - 1 - knob), "$text-muted"),
            (f"{self.value:>{VALUE_WIDTH}.2f}", "bold" if focused else ""),
        )

    def action_nudge(self, direction: int) -> None:
        self.value = self.value + direction * STEP

    def action_set(self, value: float) -> None:
        self.value = value

    def on_click(self, event: events.Click) -> None:
        # A click lands on the nearest tenth: the files stay readable and the knob goes where it was put.
        width = self.track_width
        x = min(max(event.x, 0), width - 1)
        self.value = round(x / (width - 1), 1)
        self.focus()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

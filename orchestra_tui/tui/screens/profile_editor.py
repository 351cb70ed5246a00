"""The profile editor: a slider per alias and per tool, cost/latency/quality, budgets and hard rules.

A full screen rather than a dialog so it fits 80×24: one scrolling form, one error line, one row of actions.
Everything is reachable from the keyboard — Tab or ↑/↓ move between fields, ←/→ move a slider by a tenth,
Space ticks a box, Ctrl+S saves. Saving goes through the engine's checks (`profile_form`); a refused value
leaves the form as it was and says what is wrong on the error line.

The screen returns a `Saved` (or None when cancelled); the app decides what a save means for the running
session (a saved active profile is switched to again so it applies from the next round).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from orchestra_tui.core.profiles import Profile, ProfileError, profile_files, save_profile, user_dir
from orchestra_tui.tui.profile_form import (
    ALIAS_GROUPS,
    BUDGET_FIELDS,
    PREFERENCES,
    FormError,
    ProfileForm,
    form_from_profile,
    profile_from_form,
)
from orchestra_tui.tui.widgets.slider import Slider

NARROW_WIDTH = 100  # below this the model column and the hints make way for the sliders
BUDGET_LABELS = {"usd_per_question": "USD per question", "usd_per_session": "USD per session",
                 "max_rounds": "max rounds"}
PREFERENCE_HINTS = {
    "cost": "≥ 0.7 asks to keep cost low, ≤ 0.3 says it matters less",
    "latency": "≥ 0.7 asks to keep latency low, ≤ 0.3 says it matters less",
    "quality": "≥ 0.7 asks to put quality first, ≤ 0.3 says it matters less",
    "remote": "multiplies every remote alias's weight; 0 = never remote",
}


@dataclass(frozen=True)
class Saved:
    name: str
    path: Path
    profile: Profile


class FormScroll(VerticalScroll, can_focus=False, inherit_bindings=False):
    """The form's scroller: scrolling follows the focus, and only the page keys scroll by themselves.
    The stock bindings would spend ↑/↓ on scrolling (the screen uses them to move between rows)."""

    BINDINGS = [
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
    ]


def _row(label: str, *widgets: Widget, classes: str = "row") -> Horizontal:
    return Horizontal(Label(label, classes="name"), *widgets, classes=classes)


class ProfileEditor(Screen[Saved | None]):
    CSS_PATH = Path(__file__).with_name("profile_editor.tcss")
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
        Binding("up", "move_row(-1)", "Up", show=False),
        Binding("down", "move_row(1)", "Down", show=False),
    ]

    def __init__(self, profile: Profile, *, active: bool = False, models: dict[str, str] | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.active = active
        self.models = dict(models or {})
        self.form = form_from_profile(profile)
        self._refused: ProfileForm | None = None

    # --- layout --------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="editor-title")
        form = self.form
        with FormScroll(id="editor-body"):
            yield _row("description", Input(form.description, id="description", compact=True,
                                            placeholder="one line for the picker"))
            yield Static("Aliases · 0 hides it from the policy; < 0.4 of its tool's best: avoid",
                         classes="section")
            for tool, aliases in ALIAS_GROUPS:
                yield Static(tool, classes="group")
                for alias in aliases:
                    model = [Label(self.models.get(alias, "—"), classes="model", markup=False)] if self.models else []
                    yield Horizontal(
                        Label(alias, classes="name"),
                        *model,
                        Slider(form.aliases[alias], id=f"alias-{alias}"),
                        Checkbox("exclude", alias in form.exclude, id=f"exclude-{alias}", compact=True),
                        classes="row alias",
                    )
            yield Static("Tools · 0 removes the tool; < 0.4: avoid", classes="section")
            for tool in form.tools:
                yield _row(tool, Slider(form.tools[tool], id=f"tool-{tool}"))
            yield Static("Preferences · 0.5 says nothing; asked of the policy, best effort", classes="section")
            for key in PREFERENCES:
                yield _row(key, Slider(form.preferences[key], id=f"pref-{key}", tooltip=PREFERENCE_HINTS[key]),
                           classes="row pref")
                yield Static(PREFERENCE_HINTS[key], classes="pref-hint")
            yield Static("Budget · spend never exceeds a limit; empty = no limit", classes="section")
            for key in BUDGET_FIELDS:
                yield _row(BUDGET_LABELS[key],
                           Input(form.budget.get(key, ""), id=f"budget-{key}", compact=True,
                                 placeholder="no limit"))
            yield Static("Hard rules · enforced, not asked", classes="section")
            yield Checkbox("local only — only aliases served on this machine or the local network",
                           form.local_only, id="rule-local_only", compact=True)
            yield Checkbox("no web — never the public web", form.no_web, id="rule-no_web", compact=True)
        yield Static("", id="editor-error")
        with Horizontal(id="editor-actions"):
            yield Button("Save", id="save", variant="primary", compact=True)
            yield Input(id="save-as-name", placeholder="new profile name", compact=True)
            yield Button("Save as", id="save-as", compact=True)
            yield Button("Cancel", id="cancel", compact=True)
        yield Footer()

    def _title(self) -> str:
        source = self.profile.source
        mine = source is not None and source.parent == user_dir()
        where = "your file" if mine else "shipped; Save writes your copy"
        active = " · active" if self.active else ""
        return f"[b]Edit profile {self.profile.name}[/b][$text-muted]{active} · {where}[/]"

    def on_mount(self) -> None:
        self._fit()
        self.query_one("#description", Input).cursor_position = 0  # show the start of a long line
        self.query_one(Slider).focus()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        self.set_class(self.app.size.width < NARROW_WIDTH, "-narrow")

    # --- reading the form back -----------------------------------------------------------------------

    def read_form(self) -> ProfileForm:
        form = ProfileForm(description=self.query_one("#description", Input).value)
        for _, aliases in ALIAS_GROUPS:
            for alias in aliases:
                form.aliases[alias] = self.query_one(f"#alias-{alias}", Slider).value
                if self.query_one(f"#exclude-{alias}", Checkbox).value:
                    form.exclude.add(alias)
        form.tools = {tool: self.query_one(f"#tool-{tool}", Slider).value for tool in self.form.tools}
        form.preferences = {key: self.query_one(f"#pref-{key}", Slider).value for key in PREFERENCES}
        form.budget = {key: self.query_one(f"#budget-{key}", Input).value for key in BUDGET_FIELDS}
        form.local_only = self.query_one("#rule-local_only", Checkbox).value
        form.no_web = self.query_one("#rule-no_web", Checkbox).value
        return form

    def show_error(self, message: str) -> None:
        error = self.query_one("#editor-error", Static)
        error.update(Content(message))  # literal: messages quote values, which may hold brackets
        error.tooltip = message or None  # the whole line, should a narrow terminal cut it
        error.set_class(bool(message), "-shown")
        # What the complaint was about: it stays until the form differs from this.
        self._refused = self.read_form() if message else None

    def save_as(self, name: str, *, new: bool) -> Saved | None:
        """Check and write the form as profile `name`; on a problem say it on the error line, keep the form."""
        name = name.strip()
        if new:
            if not name:
                self.show_error("Save as: type the new profile's name first")
                self.query_one("#save-as-name", Input).focus()
                return None
            if name in profile_files():
                self.show_error(f"Save as: a profile named {name!r} exists; pick another name or edit that one")
                return None
        try:
            profile = profile_from_form(self.profile, self.read_form(), name)
            path = save_profile(profile, user_dir() / f"{name}.toml")
        except (FormError, ProfileError) as error:
            self.show_error(f"Not saved — {error}")
            return None
        except OSError as error:
            self.show_error(f"Not saved — cannot write: {error.strerror or error}")
            return None
        saved = Saved(name, path, profile)
        self.dismiss(saved)
        return saved

    # --- actions -------------------------------------------------------------------------------------

    def _rows(self) -> list[list[Widget]]:
        """The focusable fields grouped by the row they sit on, in focus order."""
        rows: list[list[Widget]] = []
        keys: list[Widget] = []
        for widget in self.focus_chain:
            parent = widget.parent
            on_row = isinstance(parent, Horizontal)
            key = parent if on_row and parent is not None else widget
            if keys and keys[-1] is key:
                rows[-1].append(widget)
            else:
                rows.append([widget])
                keys.append(key)
        return rows

    def action_move_row(self, direction: int) -> None:
        """↑/↓ go to the row above or below, keeping the column (a slider to a slider, an exclude box to
        the next exclude box); Tab still visits every field in turn."""
        rows = self._rows()
        focused = self.focused
        here = next(((r, row.index(focused)) for r, row in enumerate(rows) if focused in row), None)
        if here is None:
            if rows:
                rows[0][0].focus()
            return
        r, column = here
        target = rows[max(0, min(len(rows) - 1, r + direction))]
        target[min(column, len(target) - 1)].focus()

    def action_save(self) -> None:
        self.save_as(self.profile.name, new=False)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#save-as")
    @on(Input.Submitted, "#save-as-name")
    def _save_as_pressed(self) -> None:
        self.save_as(self.query_one("#save-as-name", Input).value, new=True)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Checkbox.Changed)
    @on(Slider.Changed)
    @on(Input.Changed)
    def _edited(self) -> None:
        # A complaint is stale once the form has changed; the next save says whether it still holds.
        # Compared by content: a change message can arrive after the save it preceded.
        if self._refused is not None and self.read_form() != self._refused:
            self.show_error("")

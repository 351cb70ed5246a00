"""Profiles in the app: the picker (F2), the editor (F5), and switching the engine to a profile.

A mixin of `OrchestraApp`. Switching goes through the source (`switch_profile`), which applies it from the
next round; the header shows it as pending until the engine says it took effect. The editor reads and writes
the profile files through the engine's `core.profiles`; saving the active profile switches to it again so
the engine re-reads the file from the next round on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestra_tui.core.profiles import ProfileError, find_profile
from orchestra_tui.tui.screens.profile_editor import ProfileEditor, Saved
from orchestra_tui.tui.screens.profile_picker import ProfilePicker

if TYPE_CHECKING:
    from textual.app import App

    from orchestra_tui.tui.event_handler import EventHandler
    from orchestra_tui.tui.replay import ReplayCursor
    from orchestra_tui.tui.state import SessionView

    _AppBase = App[int]
else:
    _AppBase = object


class ProfileActions(_AppBase):
    # Provided by the app this is mixed into.
    source: Any
    replay: ReplayCursor | None
    handler: EventHandler
    state: SessionView

    if TYPE_CHECKING:
        def paint(self) -> None: ...

    def can_switch_profiles(self) -> bool:
        """Whether the engine can switch at all (cheap: bindings ask this on every refresh; listing the
        names reads the profile files)."""
        return (self.replay is None and callable(getattr(self.source, "profile_names", None))
                and callable(getattr(self.source, "switch_profile", None)))

    def profile_names(self) -> list[str]:
        return list(self.source.profile_names()) if self.can_switch_profiles() else []

    def active_profile_name(self) -> str | None:
        """The profile the next round will use: a pending switch counts."""
        return getattr(self.source, "profile_name", None) or self.state.profile

    def switch_profile(self, name: str) -> bool:
        switch = getattr(self.source, "switch_profile", None)
        if not callable(switch):
            self.notify("This engine cannot switch profiles.", severity="warning")
            return False
        try:
            switch(name)
        except Exception as error:  # a bad profile must not take the app down
            self.notify(f"Cannot switch to {name}: {error}", severity="error", markup=False)
            return False
        self.state.pending_profile = name
        self.state.touch()
        self.paint()
        return True

    def action_pick_profile(self) -> None:
        names = self.profile_names()
        if names:
            picker = ProfilePicker(names, self.state.profile, self.state.running)
            self.push_screen(picker, self._picked)

    def _picked(self, choice: tuple[str, str] | None) -> None:
        if choice is None:
            return
        what, name = choice
        if what == "edit":
            self.action_edit_profile(name)
        else:
            self.switch_profile(name)

    # --- the editor ----------------------------------------------------------------------------------

    def can_edit_profiles(self) -> bool:
        return self.can_switch_profiles()

    def _alias_models(self) -> dict[str, str]:
        """Alias → the real model behind it in the session's catalog, shown beside each slider."""
        experts = getattr(getattr(self.source, "catalog", None), "experts", None)
        if not isinstance(experts, dict):
            return {}
        return {alias: str(getattr(spec, "model", "")) for alias, spec in experts.items()}

    def action_edit_profile(self, name: str = "") -> None:
        if not self.can_edit_profiles():
            self.notify("Profiles can be edited in a live session.", severity="warning")
            return
        active = self.active_profile_name()
        name = name or active or ""
        try:
            profile = find_profile(name)
        except ProfileError as error:
            self.notify(f"Cannot edit {name}: {error}", severity="error", markup=False)
            return
        editor = ProfileEditor(profile, active=name == active, models=self._alias_models())
        self.push_screen(editor, lambda saved: self._profile_saved(saved, name if name == active else None))

    def _profile_saved(self, saved: Saved | None, active: str | None) -> None:
        """After a save: the active profile saved under its own name is switched to again (the engine reads
        the file anew at the next round); a copy under a new name is only announced."""
        if saved is None:
            return
        if saved.name == active and self.switch_profile(saved.name):
            # The engine read the file again; the header shows the switch as pending until the next round.
            self.notify(f"Saved {saved.name}; it applies from the next round.")
        else:
            self.notify(f"Saved {saved.name} to {saved.path}. F2 switches to it.", markup=False)

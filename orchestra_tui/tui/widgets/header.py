"""One line at the top: the active profile, the policy's backend and model, and what the episode is doing."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from orchestra_tui.tui.state import SessionView

_STATUS = {
    "idle": ("idle", "$text-muted"),
    "running": ("● running", "$accent"),
    "cancelling": ("● cancelling…", "$warning"),
    "answered": ("✓ answered", "$success"),
    "no_answer": ("○ no answer", "$warning"),
    "cancelled": ("⊘ cancelled", "$warning"),
    "error": ("✗ error", "$error"),
    "budget": ("$ budget reached", "$warning"),
}


class SessionHeader(Static):
    def show(self, state: SessionView) -> None:
        label, style = _STATUS.get(state.status, (state.status, ""))
        if state.running and state.current_round is not None:
            label += f" · round {state.current_round[1]}"
        # Most telling first: a narrow terminal cuts the line from the right.
        parts: list[Content | tuple[str, str] | str] = [
            ("orchestra-tui", "bold"),
            ("  replay" if state.mode == "replay" else "", "bold $warning"),
            "  ",
            (label, style),
            ("  profile ", "$text-muted"),
            (state.profile or "—", "bold"),
        ]
        pending = state.pending_profile
        if pending and pending != state.profile:
            parts.append((f" → {pending} (next round)", "$warning"))
        elif pending:
            parts.append((" (edited; reloads next round)", "$warning"))
        parts += [("  policy ", "$text-muted"), state.policy or "—"]
        self.update(Content.assemble(*parts))

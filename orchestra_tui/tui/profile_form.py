"""What the profile editor edits, as plain data, and the way back to a checked `Profile`.

The editor shows only part of a profile (sliders, budgets, hard rules); everything else a file may say —
model weights, sampling, max calls per alias, prompt variant, catalog — is carried over untouched from the
profile being edited. The way back goes through the engine's own checks (`check_profile`), so the editor can
never save a file the engine would refuse, and a mistake comes back as one line naming the key.
No Textual here, so the round trip is tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestra_tui.core.profile_model import Profile, Weights
from orchestra_tui.core.profile_schema import ALL_ALIASES, Bad, check_profile, dotted
from orchestra_tui.core.toolset import REFERENCE_ALIASES, TOOL_NAMES

PREFERENCES = ("cost", "latency", "quality", "remote")
BUDGET_FIELDS = ("usd_per_question", "usd_per_session", "max_rounds")


class FormError(ValueError):
    """One line for the editor's error row: the key, then what is wrong."""


@dataclass
class ProfileForm:
    description: str = ""
    aliases: dict[str, float] = field(default_factory=dict)  # every reference alias; 1 = no preference
    tools: dict[str, float] = field(default_factory=dict)
    preferences: dict[str, float] = field(default_factory=dict)  # cost, latency, quality, remote
    budget: dict[str, str] = field(default_factory=dict)  # as typed; "" = no limit
    exclude: set[str] = field(default_factory=set)
    local_only: bool = False
    no_web: bool = False


def _text(value: object) -> str:
    return "" if value is None else str(value)


def form_from_profile(profile: Profile) -> ProfileForm:
    weights = profile.weights
    return ProfileForm(
        description=profile.description,
        aliases={alias: float(profile.aliases.get(alias, 1.0)) for alias in ALL_ALIASES},
        tools={tool: float(profile.tools.get(tool, 1.0)) for tool in TOOL_NAMES},
        preferences={key: float(getattr(weights, key)) for key in PREFERENCES},
        budget={key: _text(getattr(profile.budget, key)) for key in BUDGET_FIELDS},
        exclude=set(profile.rules.exclude),
        local_only=profile.rules.local_only,
        no_web=profile.rules.no_web,
    )


def _budget_value(key: str, text: str) -> Any:
    """A budget field as the TOML file holds it: dollars stay strings (exact), rounds become a whole number.
    Anything unreadable is passed on as typed so the engine's check names the problem."""
    text = text.strip()
    if key == "max_rounds":
        try:
            return int(text)
        except ValueError:
            return text
    return text


def _changed_weights(values: Mapping[str, float], default: float) -> dict[str, float]:
    # A slider left at its default is not written: the file says only what was chosen.
    return {name: value for name, value in values.items() if value != default}


def profile_data(base: Profile, form: ProfileForm, name: str) -> dict[str, Any]:
    """The TOML form of `base` with the editor's values in place of the parts it shows."""
    data = base.to_toml_dict()
    data["name"] = name
    if form.description.strip():
        data["description"] = form.description.strip()
    else:
        data.pop("description", None)
    defaults = Weights()
    weights = {k: v for k, v in form.preferences.items() if v != getattr(defaults, k)}
    tables: dict[str, dict[str, Any]] = {
        "weights": weights,
        "aliases": _changed_weights(form.aliases, 1.0),
        "tools": _changed_weights(form.tools, 1.0),
    }
    rules = dict(data.get("rules", {}))
    rules.pop("exclude", None)
    if form.exclude:
        rules["exclude"] = [alias for alias in ALL_ALIASES if alias in form.exclude]
    for key in ("local_only", "no_web"):
        rules.pop(key, None)
        if getattr(form, key):
            rules[key] = True
    tables["rules"] = rules
    budget = {k: v for k, v in data.get("budget", {}).items() if k not in BUDGET_FIELDS}
    for key in BUDGET_FIELDS:
        text = form.budget.get(key, "").strip()
        if text:
            budget[key] = _budget_value(key, text)
    tables["budget"] = budget
    for table, content in tables.items():
        if content:
            data[table] = content
        else:
            data.pop(table, None)
    return data


def profile_from_form(base: Profile, form: ProfileForm, name: str) -> Profile:
    """A checked profile named `name`, or a FormError naming the first thing wrong."""
    data = profile_data(base, form, name)
    try:
        checked = check_profile(data, name)
    except Bad as bad:
        key = dotted(bad.path)
        raise FormError(f"{key}: {bad.problem}" if key else bad.problem) from None
    return Profile.from_checked(checked, source=base.source)


ALIAS_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(REFERENCE_ALIASES.items())

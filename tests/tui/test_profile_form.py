"""The editor's form ↔ profile round trip, without Textual: what it does not show is kept, what it shows is
checked by the engine's own rules, and a mistake is one line naming the key."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from orchestra_tui.core.profiles import find_profile, load_profiles, save_profile
from orchestra_tui.tui.profile_form import FormError, form_from_profile, profile_data, profile_from_form


@pytest.mark.parametrize("name", sorted(load_profiles()))
def test_an_untouched_form_gives_back_the_same_profile(name):
    profile = find_profile(name)
    again = profile_from_form(profile, form_from_profile(profile), name)
    assert again == profile


def test_edits_land_in_the_profile_and_defaults_are_not_written():
    base = find_profile("avoid-gpt5")
    form = form_from_profile(base)
    form.aliases["search-3"] = 0.3
    form.tools["search"] = 0.6
    form.preferences["cost"] = 0.9
    form.exclude.add("reasoner-2")
    form.local_only = True
    form.budget["usd_per_question"] = "0.05"
    form.budget["max_rounds"] = "12"
    profile = profile_from_form(base, form, "mine")
    assert profile.name == "mine"
    assert profile.aliases["search-3"] == 0.3 and profile.tools == {"search": 0.6}
    assert profile.weights.cost == 0.9
    assert "reasoner-2" in profile.rules.exclude and profile.rules.local_only
    assert str(profile.budget.usd_per_question) == "0.05" and profile.budget.max_rounds == 12
    # What the editor does not show is carried over untouched.
    assert profile.models == base.models and profile.sampling == base.sampling
    assert profile.rules.exclude_models == base.rules.exclude_models
    data = profile_data(base, form, "mine")
    assert "search-1" not in data.get("aliases", {})  # a slider at its default says nothing


def test_clearing_a_budget_field_removes_the_limit():
    base = find_profile("cheap")
    assert base.budget.usd_per_question is not None
    form = form_from_profile(base)
    form.budget["usd_per_question"] = "  "
    assert profile_from_form(base, form, "cheap").budget.usd_per_question is None


@pytest.mark.parametrize(
    ("field", "text", "key"),
    [("usd_per_question", "five cents", "budget.usd_per_question"),
     ("usd_per_session", "-1", "budget.usd_per_session"),
     ("max_rounds", "0", "budget.max_rounds"),
     ("max_rounds", "ten", "budget.max_rounds")],
)
def test_a_bad_budget_is_one_line_naming_the_key(field, text, key):
    base = find_profile("balanced")
    form = form_from_profile(base)
    form.budget[field] = text
    with pytest.raises(FormError) as error:
        profile_from_form(base, form, "balanced")
    message = str(error.value)
    assert message.startswith(key + ":") and "\n" not in message


def test_a_bad_name_is_refused_before_anything_is_written():
    base = find_profile("balanced")
    with pytest.raises(FormError, match="name"):
        profile_from_form(base, form_from_profile(base), "My Profile")


def test_what_the_form_builds_saves_and_loads_again(tmp_path):
    base = find_profile("prefer-local")
    form = form_from_profile(base)
    form.aliases["answer-1"] = 0.2
    profile = profile_from_form(base, form, "local2")
    path = save_profile(profile, tmp_path / "local2.toml")
    data = tomllib.loads(path.read_text())
    assert data["name"] == "local2" and data["aliases"]["answer-1"] == 0.2
    assert dataclasses.replace(profile, source=None) == dataclasses.replace(find_profile_from(path), source=None)


def find_profile_from(path):
    from orchestra_tui.core.profiles import load_profile

    return load_profile(path)

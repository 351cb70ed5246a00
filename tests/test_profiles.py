"""Preference profiles: shipped ones validate, broken ones fail in one line, the user's folder wins,
saving round-trips, and the sliders become the expected sentence and alias sets."""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestra_tui.backends.base import Sampling
from orchestra_tui.core import profile_schema
from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.profiles import (
    AliasInfo,
    BudgetLimits,
    Profile,
    ProfileError,
    Rules,
    Weights,
    alias_infos,
    default_profile_name,
    find_profile,
    is_local_backend,
    load_profile,
    load_profiles,
    save_profile,
    shipped_dir,
)
from orchestra_tui.core.toolset import REFERENCE_ALIASES

REFERENCE_MAPPING = Path(__file__).parent / "golden" / "tools" / "reference-mapping.toml"
SHIPPED = ("balanced", "prefer-local", "avoid-gpt5", "cheap", "best-quality")
ALL = [a for names in REFERENCE_ALIASES.values() for a in names]


@pytest.fixture(autouse=True)
def user_config(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty user config folder: the real one is never read."""
    folder = tmp_path / "config"
    monkeypatch.setenv("ORCHESTRA_TUI_CONFIG_DIR", str(folder))
    return folder


def _schema() -> dict:
    return json.loads((shipped_dir() / "profile.schema.json").read_text(encoding="utf-8"))


def _reference() -> dict[str, AliasInfo]:
    return alias_infos(load_catalog(REFERENCE_MAPPING))


# --- shipped files ----------------------------------------------------------------------------------


def test_every_shipped_profile_validates_here_and_against_the_schema():
    profiles = load_profiles()
    assert set(SHIPPED) <= set(profiles)
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for name, profile in profiles.items():
        assert profile.name == name and profile.source == shipped_dir() / f"{name}.toml"
        jsonschema.validate(tomllib.loads(profile.source.read_text(encoding="utf-8")), schema)
    assert default_profile_name() == "balanced"


def test_the_schema_names_what_the_code_accepts():
    schema = _schema()
    props = schema["properties"]
    assert set(props) == set(profile_schema.TOP_KEYS)
    assert tuple(props["weights"]["properties"]) == profile_schema.WEIGHT_KEYS
    assert tuple(props["aliases"]["properties"]) == profile_schema.ALL_ALIASES == tuple(ALL)
    assert tuple(props["tools"]["properties"]) == tuple(REFERENCE_ALIASES)
    assert tuple(props["rules"]["properties"]) == profile_schema.RULE_KEYS
    assert tuple(props["budget"]["properties"]) == profile_schema.BUDGET_KEYS
    assert tuple(props["sampling"]["properties"]) == profile_schema.SAMPLING_KEYS
    assert schema["$defs"]["alias"]["enum"] == ALL


# --- broken files -----------------------------------------------------------------------------------

BROKEN = [
    # (file text, expected line, key, words in the message)
    ('name = "bad"\n[weights\ncost = 1', 2, None, "invalid TOML"),
    ('name = "bad"\n[wieghts]\ncost = 0.5', 2, "wieghts", "unknown key (did you mean 'weights'?)"),
    ('description = "x"\n\n[weights]\nquality = 0.9\ncots = 0.2', 5, "weights.cots", "did you mean 'cost'?"),
    ('[weights]\ncost = 2.0', 2, "weights.cost", "2.0 is outside 0..1"),
    ('[weights]\nlatency = true', 2, "weights.latency", "expected a number from 0 to 1"),
    ('[aliases]\nanswer-1 = 0.2\nanswer-7 = 0.5', 3, "aliases.answer-7", "unknown alias (did you mean 'answer-"),
    ('[rules]\nexclude = ["answer-1",\n  "reasoner-4"]', 2, "rules.exclude",
     "unknown alias 'reasoner-4' (did you mean 'reasoner-"),
    ('[tools]\nserch = 0', 2, "tools.serch", "unknown tool (did you mean 'search'?)"),
    ('[budget]\nusd_per_question = "five cents"', 2, "budget.usd_per_question", "expected an amount in dollars"),
    ('[budget]\nmax_calls_per_alias = { answer-11 = 1 }', 2, "budget.max_calls_per_alias.answer-11",
     "did you mean 'answer-1'?"),
    ('variant = "frame"', 1, "variant", "did you mean 'frames'?"),
    ('name = "other"', 1, "name", "differs from the file name 'bad.toml'"),
    ('[sampling]\ntemperature = 5', 2, "sampling.temperature", "expected a number from 0 to 2"),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), BROKEN)
def test_a_broken_file_gives_one_line_naming_file_line_and_key(tmp_path, text, line, key, words):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert "\n" not in message and words in message
    assert message.startswith(f"{path}:{line}: "), message
    if key:
        assert f": {key}: " in message
        assert (info.value.key, info.value.line) == (key, line)
    if "invalid TOML" not in message:  # the editor schema must refuse the same files
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(tomllib.loads(text.replace('name = "other"', 'name = "Bad Name"')), _schema())


def test_an_unknown_profile_name_suggests_the_nearest():
    with pytest.raises(ProfileError, match="did you mean 'avoid-gpt5'"):
        find_profile("avoid-gpt-5")


# --- the user's folder ------------------------------------------------------------------------------


def test_the_user_folder_wins_by_name_and_sets_the_default(user_config):
    mine = user_config / "profiles"
    mine.mkdir(parents=True)
    (mine / "cheap.toml").write_text('description = "mine"\n[budget]\nusd_per_question = "0.01"\n')
    (mine / "night.toml").write_text('description = "extra"\n')
    profiles = load_profiles()
    assert profiles["cheap"].description == "mine" and profiles["cheap"].source == mine / "cheap.toml"
    assert profiles["cheap"].budget.usd_per_question == Decimal("0.01")
    assert profiles["cheap"].aliases == {}  # replaced whole, never merged with the shipped file
    assert profiles["balanced"].source == shipped_dir() / "balanced.toml"
    assert "night" in profiles
    (user_config / "config.toml").write_text('default_profile = "night"\ntheme = "other settings are fine"\n')
    assert default_profile_name() == "night"
    (user_config / "config.toml").write_text('default_profile = "nigth"\n')
    with pytest.raises(ProfileError, match="did you mean 'night'"):
        default_profile_name()


def test_one_broken_user_file_is_reported_without_losing_the_others(user_config):
    mine = user_config / "profiles"
    mine.mkdir(parents=True)
    (mine / "broken.toml").write_text("[weights]\ncost = 2.0\n")
    with pytest.raises(ProfileError, match="broken.toml:2: weights.cost"):
        load_profiles()
    errors: list[ProfileError] = []
    profiles = load_profiles(errors)
    assert set(SHIPPED) <= set(profiles) and "broken" not in profiles
    assert [e.key for e in errors] == ["weights.cost"]


# --- writing back -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_round_trip(tmp_path, name):
    profile = find_profile(name)
    saved = load_profile(save_profile(profile, tmp_path / f"{name}.toml"))
    assert saved == profile


weights = st.floats(min_value=0, max_value=1, allow_nan=False)
usd = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
random_profiles = st.builds(
    Profile,
    name=st.just("random"),
    description=st.text(max_size=40),
    weights=st.builds(Weights, weights, weights, weights, weights),
    aliases=st.dictionaries(st.sampled_from(ALL), weights),
    tools=st.dictionaries(st.sampled_from(list(REFERENCE_ALIASES)), weights),
    models=st.dictionaries(st.sampled_from(["gpt-5", "Qwen/Qwen3-32B", "gpt-5-mini"]), weights),
    rules=st.builds(Rules, st.lists(st.sampled_from(ALL), unique=True).map(tuple),
                    st.lists(st.sampled_from(["gpt-5", "x/y"]), unique=True).map(tuple), st.booleans(), st.booleans()),
    budget=st.builds(BudgetLimits, st.none() | usd, st.none() | usd, st.none() | st.integers(1, 99),
                     st.none() | st.integers(0, 9) | st.dictionaries(st.sampled_from(ALL), st.integers(0, 9))),
    sampling=st.fixed_dictionaries({}, optional={"temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
                                                 "top_k": st.integers(0, 100), "max_tokens": st.integers(1, 40000)}),
    variant=st.none() | st.sampled_from(["hle", "frames", "train"]),
    catalog=st.none() | st.just("embedded"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profile=random_profiles)
def test_any_profile_round_trips(tmp_path, profile):
    path = save_profile(profile, tmp_path / "random.toml")
    assert load_profile(path) == profile


def test_saving_takes_the_file_name_and_refuses_bad_names(tmp_path):
    saved = load_profile(save_profile(find_profile("cheap"), tmp_path / "cheaper.toml"))
    assert saved.name == "cheaper" and saved.budget.usd_per_question == Decimal("0.05")
    with pytest.raises(ProfileError, match="cannot name a profile"):
        save_profile(saved, tmp_path / "config.toml")


# --- what a profile does ----------------------------------------------------------------------------


def test_preference_statements():
    aliases = _reference()
    assert find_profile("balanced").preference_statement(aliases) is None
    assert find_profile("avoid-gpt5").preference_statement(aliases) is None  # enforced, not requested
    assert find_profile("best-quality").preference_statement(aliases) == (
        "User preference: put answer quality first; cost matters less; latency matters less.")
    assert find_profile("cheap").preference_statement(aliases) == (
        "User preference: avoid answer-1, reasoner-1 and search-1 where possible; "
        "use answer-2, reasoner-2 and search-2 sparingly; keep cost low.")
    # Remote aliases in the reference mapping: the gpt-5 and gpt-5-mini ones.
    assert find_profile("prefer-local").preference_statement(aliases) == (
        "User preference: avoid answer-1, answer-2, reasoner-1, reasoner-2, search-1 and search-2 where possible.")
    assert find_profile("prefer-local").preference_statement(alias_infos(load_catalog("embedded"))) is None
    all_remote = {a: AliasInfo(a, i.tool, i.model, local=False) for a, i in aliases.items()}
    assert find_profile("prefer-local").preference_statement(all_remote) is None  # nothing to prefer
    # Weights are read against the best alias of the same tool: search-3 alone is lowered, and only it.
    relative = Profile("x", aliases={a: 0.5 for a in ALL if a != "search-3"} | {"search-3": 0.1})
    assert relative.preference_statement(aliases) == "User preference: avoid search-3 where possible."
    brief = Profile("x", aliases={"answer-1": 0.1, "reasoner-1": 0.2, "search-3": 0},
                    weights=Weights(cost=0.8, latency=0.1))
    assert brief.preference_statement(ALL) == (
        "User preference: avoid answer-1 and reasoner-1 where possible; keep cost low; latency matters less.")
    # Two spellings of one model count once, at the lower weight: 0.5 ("sparingly"), not 0.5 × 0.7 ("avoid").
    soft = Profile("x", models={"gpt-5": 0.5, "openai/GPT-5": 0.7}, tools={"search": 0.3})
    assert soft.preference_statement(aliases) == (
        "User preference: use answer-1, reasoner-1 and search-1 sparingly; avoid the search tool where possible.")


def test_rules_and_zero_weights_withhold_aliases():
    aliases = _reference()
    gpt5 = {"search-1", "reasoner-1", "answer-1"}

    def allowed(profile: Profile) -> set[str]:
        return {a for names in profile.allowed_aliases(aliases).values() for a in names}

    assert allowed(find_profile("balanced")) == set(ALL)
    assert allowed(find_profile("avoid-gpt5")) == set(ALL) - gpt5
    assert find_profile("avoid-gpt5").withheld(aliases)["answer-1"] == (
        "its model gpt-5 is excluded by rules.exclude_models")
    gpt5_mini = {"search-2", "reasoner-2", "answer-2"}
    assert allowed(Profile("x", rules=Rules(local_only=True))) == set(ALL) - gpt5 - gpt5_mini
    assert allowed(Profile("x", tools={"search": 0}, aliases={"answer-4": 0})) == (
        set(ALL) - set(REFERENCE_ALIASES["search"]) - {"answer-4"})
    assert "search" not in Profile("x", tools={"search": 0}).allowed_aliases(aliases)
    assert allowed(Profile("x", rules=Rules(exclude=("answer-2",)))) == set(ALL) - {"answer-2"}
    web = {a: AliasInfo(a, i.tool, i.model, i.local, web=i.tool == "search") for a, i in aliases.items()}
    no_web = Profile("x", rules=Rules(no_web=True))
    assert no_web.allowed_aliases(web).get("search") is None
    assert no_web.allowed_aliases(aliases)["search"] == REFERENCE_ALIASES["search"]
    fallback = {"kind": "index", "path": "idx", "web_fallback": True}
    assert no_web.retrieval_spec(fallback) == {**fallback, "web_fallback": False}
    assert Profile("x").retrieval_spec(fallback) == fallback
    # Only aliases the catalog maps can be allowed.
    few = {a: aliases[a] for a in ("answer-4", "search-3")}
    assert Profile("x").allowed_aliases(few) == {"answer": ("answer-4",), "search": ("search-3",)}


def test_helpers():
    assert is_local_backend({"kind": "embedded"}) and is_local_backend({"kind": "llamacpp"})
    assert is_local_backend({"kind": "openai", "base_url": "http://192.168.1.20:8000/v1"})
    assert is_local_backend({"kind": "openai", "base_url": "http://localhost:8000/v1"})
    assert not is_local_backend({"kind": "openai", "base_url": "https://api.example.com/v1"})
    profile = Profile("x", sampling={"temperature": 0.6, "top_k": 20})
    assert profile.apply_sampling(Sampling(temperature=1.0, max_tokens=12000)) == Sampling(
        temperature=0.6, max_tokens=12000, top_k=20)
    limits = BudgetLimits(max_calls_per_alias={"answer-1": 1})
    assert (limits.calls_limit("answer-1"), limits.calls_limit("answer-2")) == (1, None)
    assert BudgetLimits(max_calls_per_alias=3).calls_limit("search-2") == 3

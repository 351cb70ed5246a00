"""Fuzzing what reads untrusted text: the model's output, the user's files, recorded trajectories.

The contract everywhere: no input crashes the reader. The tool-call parsers and the repair never raise at
all; the loaders either load or raise their own error, one line that names the file.
"""

from __future__ import annotations

import json
import string
import uuid
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestra_tui.backends.base import BackendError, TextDelta, ToolCall
from orchestra_tui.backends.hermes import parse_tool_calls, split_thinking
from orchestra_tui.backends.openai_http import StreamAccumulator
from orchestra_tui.backends.repair import repair_tool_calls
from orchestra_tui.core.catalog import CatalogError, load_catalog
from orchestra_tui.core.events import _REGISTRY
from orchestra_tui.core.profile_schema import (
    ALL_ALIASES,
    BUDGET_KEYS,
    RULE_KEYS,
    SAMPLING_KEYS,
    TOP_KEYS,
    WEIGHT_KEYS,
)
from orchestra_tui.core.profiles import ProfileError, load_profile
from orchestra_tui.core.toolset import REFERENCE_ALIASES, check_call
from orchestra_tui.core.trajectory import SCHEMA, TrajectoryError, load_trajectory

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    # Hypothesis runs many examples per test; a module-wide folder with a fresh file name per example.
    return tmp_path_factory.mktemp("fuzz")


def fresh(folder: Path, suffix: str) -> Path:
    return folder / f"f{uuid.uuid4().hex[:8]}{suffix}"


def assert_one_line(error: Exception, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert path.name in message, message


# -- model output ---------------------------------------------------------------------------------------

# Text in the model's style: its tags, JSON punctuation, names and aliases, mixed with anything at all.
FRAGMENTS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "</tool_c", "{", "}", "[", "]", '"', "'", ":",
             ",", "\n", " ", '"name"', '"arguments"', '"model"', "search", "answer", "search-1", "answer-1",
             "```json", "```", "\\", "null", "<|im_end|>"]
model_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40).map("".join)


@FUZZ
@given(model_text)
@example("<think>" + "[" * 5000)
@example("<tool_call>" + "[" * 5000)  # nested past the recursion limit
def test_hermes_parsers_never_raise(text):
    reasoning, rest = split_thinking(text)
    assert isinstance(reasoning, str) and text.endswith(rest)
    calls = parse_tool_calls(text)
    assert all(isinstance(c, ToolCall) and isinstance(c.name, str) and isinstance(c.arguments, str) for c in calls)
    if "<tool_call>" not in text:
        assert calls == []


@FUZZ
@given(model_text)
@example("<tool_call>\n{'name': 'search', 'arguments': {'model': " + "[" * 5000 + "}}\n</tool_call>")
def test_repair_never_raises_and_only_repairs_what_is_broken(text):
    repaired = repair_tool_calls(text)
    if repaired is None:
        return
    assert repaired.fixes and all(isinstance(f, str) for f in repaired.fixes)
    assert any(c.name for c in repaired.calls)
    assert repair_tool_calls(repaired.text) is None  # what it made parses: nothing left to repair


ALIASES = {tool: aliases for tool, aliases in REFERENCE_ALIASES.items()}
ANY_NAME = st.one_of(st.sampled_from([*ALIASES, "", "web_search"]), st.text(max_size=12))
ANY_ALIAS = st.one_of(st.sampled_from([a for names in ALIASES.values() for a in names]), st.text(max_size=12))
arguments = st.one_of(
    st.text(max_size=40),
    st.builds(lambda alias, extra: json.dumps({"model": alias, **extra}), ANY_ALIAS,
              st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=10).map(json.dumps),
)


@FUZZ
@given(ANY_NAME, arguments)
def test_check_call_never_raises(name, raw):
    checked = check_call(ToolCall(name, raw), ALIASES)
    if checked.valid:
        assert checked.alias in ALIASES[name] and json.loads(raw)["model"] == checked.alias
    else:
        assert isinstance(checked.problem, str) and checked.problem


def test_check_call_survives_arguments_nested_past_the_recursion_limit():
    assert not check_call(ToolCall("search", "[" * 100_000), ALIASES).valid


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["choices", "delta", "content", "reasoning_content", "tool_calls", "function", "name",
                         "arguments", "index", "usage", "prompt_tokens", "finish_reason", "error", "model"]),
        inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.lists(st.dictionaries(st.sampled_from(["choices", "usage", "model", "error", "x"]), json_values,
                                max_size=3), max_size=5))
def test_stream_chunks_of_any_shape_are_data_or_a_backend_error(chunks):
    acc = StreamAccumulator()
    try:
        for chunk in chunks:
            assert all(isinstance(d, TextDelta) for d in acc.feed(chunk))
    except BackendError:
        return
    assert isinstance(acc.content, str) and isinstance(acc.tool_calls(), list)


# -- TOML files: profiles and catalogs ------------------------------------------------------------------

TOML_FRAGMENTS = ["[", "]", "[[", "]]", "=", '"', "'", '"""', "\n", " ", ".", ",", "{", "}", "#", "true", "1",
                  "0.5", "-", "nan", "inf", "1979-05-27", *TOP_KEYS, "weights", "budget", "cost", "exclude",
                  "backends", "experts", "policy", "kind", "openai", "search-1"]
toml_text = st.one_of(
    st.lists(st.one_of(st.sampled_from(TOML_FRAGMENTS), st.text(max_size=6)), max_size=40).map("".join),
    st.text(max_size=200),
)

KEYS = st.one_of(st.sampled_from([*TOP_KEYS, *WEIGHT_KEYS, *RULE_KEYS, *BUDGET_KEYS, *SAMPLING_KEYS,
                                  *ALL_ALIASES[:4]]), st.text(alphabet=string.printable, max_size=8))
scalars = st.one_of(st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(),
                    st.text(max_size=10), st.dates(), st.datetimes())
toml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)
profile_dicts = st.dictionaries(KEYS, toml_values, max_size=6)


@FUZZ
@given(toml_text)
@example("a = " + "[" * 2000)
def test_profile_loader_on_any_text(scratch, text):
    path = fresh(scratch, ".toml")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_profile(path)
    except ProfileError as error:
        assert_one_line(error, path)


@FUZZ
@given(profile_dicts)
@example({"weights": {"co\nst": 0.5}})
def test_profile_loader_on_any_toml(scratch, data):
    path = fresh(scratch, ".toml")
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    try:
        load_profile(path)
    except ProfileError as error:
        assert_one_line(error, path)


CATALOG_KEYS = st.one_of(st.sampled_from([
    "catalog", "policy", "backends", "expert_defaults", "experts", "retrieval", "code", "prices", "name",
    "kind", "base_url", "model", "model_path", "api_key_env", "timeout", "backend", "temperature", "max_tokens",
    "doc_chars", "answer_style", "local", "remote", *ALL_ALIASES[:4]]), st.text(max_size=6))
catalog_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(CATALOG_KEYS, inner, max_size=4), max_leaves=16)
backend_specs = st.fixed_dictionaries({"kind": st.sampled_from(["openai", "llamacpp", "embedded", "x"])},
                                      optional={"base_url": catalog_values, "model": catalog_values,
                                                "model_path": catalog_values})
catalog_dicts = st.fixed_dictionaries(
    {"backends": st.one_of(st.dictionaries(st.sampled_from(["local", "remote"]), backend_specs, max_size=2),
                           catalog_values)},
    optional={"policy": st.one_of(st.fixed_dictionaries({"backend": st.sampled_from(["local", "remote", "x"])}),
                                  catalog_values),
              "experts": st.one_of(st.dictionaries(st.sampled_from(ALL_ALIASES[:4]),
                                                   st.dictionaries(CATALOG_KEYS, catalog_values, max_size=2),
                                                   max_size=3), catalog_values),
              "catalog": catalog_values, "expert_defaults": catalog_values, "prices": catalog_values,
              "retrieval": catalog_values, "code": catalog_values},
)


@FUZZ
@given(toml_text)
@example("a = " + "[" * 2000)
def test_catalog_loader_on_any_text(scratch, text):
    path = fresh(scratch, ".toml")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_catalog(path)
    except CatalogError as error:
        assert_one_line(error, path)


@FUZZ
@given(catalog_dicts)
@example({"backends": {"local": 1}})
@example({"backends": {"local": {"kind": "embedded"}}, "policy": {"backend": "local"}, "experts": {"a\nb": {}}})
def test_catalog_loader_on_any_toml(scratch, data):
    path = fresh(scratch, ".toml")
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    try:
        load_catalog(path)
    except CatalogError as error:
        assert_one_line(error, path)


# -- trajectories ---------------------------------------------------------------------------------------

HEADER = json.dumps({"type": "header", "schema": SCHEMA, "version": "1.0", "catalog": "fuzz"})
event_like = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(sorted(_REGISTRY))},
                          optional={k: json_values for k in ("round", "ts", "call_id", "status", "answer",
                                                             "message", "level", "reason", "detail")}),
)


def check_trajectory(path: Path) -> None:
    try:
        load_trajectory(path)
    except TrajectoryError as error:
        assert_one_line(error, path)


@FUZZ
@given(st.binary(max_size=300))
@example(HEADER.encode() + b"\n" + b"[" * 5000)
def test_trajectory_reader_on_any_bytes(scratch, data):
    path = fresh(scratch, ".jsonl")
    path.write_bytes(data)
    check_trajectory(path)


@FUZZ
@given(st.lists(event_like, max_size=6), st.booleans())
@example([1, {"type": "notice"}], True)
def test_trajectory_reader_on_any_json_lines_after_a_valid_header(scratch, lines, torn):
    path = fresh(scratch, ".jsonl")
    text = "\n".join([HEADER, *(json.dumps(line) for line in lines)]) + "\n"
    path.write_text(text[:-3] if torn and lines else text, encoding="utf-8")
    check_trajectory(path)

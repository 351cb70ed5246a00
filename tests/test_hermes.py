"""The hermes text format: thinking and tool calls as Orchestrator-8B writes them."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra_tui.backends.base import ToolCall
from orchestra_tui.backends.hermes import (
    parse_tool_calls,
    split_thinking,
    tools_system_preamble,
    with_tools_in_system,
)

THINK_THEN_CALL = (
    "<think>\nThe question needs a fact I do not have. A cheap search first.\n</think>\n\n"
    '<tool_call>\n{"name": "search", "arguments": {"model": "search-2"}}\n</tool_call>'
)

SEVERAL_CALLS = (
    "<think>\nTwo things to do.\n</think>\n\n"
    '<tool_call>\n{"name": "search", "arguments": {"model": "search-3"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "answer", "arguments": {"model": "answer-math-1"}}\n</tool_call>'
)


def test_think_then_one_call():
    reasoning, rest = split_thinking(THINK_THEN_CALL)
    assert reasoning == "The question needs a fact I do not have. A cheap search first."
    assert rest.startswith("<tool_call>")
    assert parse_tool_calls(THINK_THEN_CALL) == [ToolCall("search", '{"model": "search-2"}')]


def test_several_calls_keep_their_order():
    calls = parse_tool_calls(SEVERAL_CALLS)
    assert [c.name for c in calls] == ["search", "answer"]
    assert json.loads(calls[1].arguments) == {"model": "answer-math-1"}


def test_arguments_are_reserialised_compactly_and_keep_non_ascii():
    text = '<tool_call>\n{"name":"search","arguments":{ "model" :"search-1", "q": "café" }}\n</tool_call>'
    assert parse_tool_calls(text) == [ToolCall("search", '{"model": "search-1", "q": "café"}')]


def test_arguments_given_as_a_json_string_are_kept_as_written():
    text = '<tool_call>\n{"name": "search", "arguments": "{\\"model\\": \\"search-1\\"}"}\n</tool_call>'
    assert parse_tool_calls(text) == [ToolCall("search", '{"model": "search-1"}')]


def test_unclosed_final_block_is_parsed():
    text = 'ok\n<tool_call>\n{"name": "answer", "arguments": {"model": "answer-1"}}\n'
    assert parse_tool_calls(text) == [ToolCall("answer", '{"model": "answer-1"}')]


def test_unclosed_block_cut_inside_the_closing_tag():
    text = '<tool_call>\n{"name": "answer", "arguments": {"model": "answer-1"}}\n</tool_ca'
    assert parse_tool_calls(text) == [ToolCall("answer", '{"model": "answer-1"}')]


def test_closed_then_unclosed():
    text = (
        '<tool_call>\n{"name": "search", "arguments": {"model": "search-1"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "answer", "argu'
    )
    calls = parse_tool_calls(text)
    assert calls[0] == ToolCall("search", '{"model": "search-1"}')
    assert calls[1] == ToolCall("", '{"name": "answer", "argu')


def test_bad_json_becomes_an_invalid_call_with_the_raw_text():
    text = "<tool_call>\n{name: search, arguments: {model: search-1}}\n</tool_call>"
    assert parse_tool_calls(text) == [ToolCall("", "{name: search, arguments: {model: search-1}}")]


@pytest.mark.parametrize("block", ['["search"]', '{"arguments": {}}', '{"name": 3, "arguments": {}}'])
def test_json_that_is_not_a_call_is_invalid(block):
    assert parse_tool_calls(f"<tool_call>\n{block}\n</tool_call>") == [ToolCall("", block)]


def test_missing_arguments_default_to_an_empty_object():
    assert parse_tool_calls('<tool_call>{"name": "answer"}</tool_call>') == [ToolCall("answer", "{}")]


def test_no_call_at_all():
    assert parse_tool_calls("<think>hmm</think>The answer is 4.") == []
    assert parse_tool_calls("") == []


def test_think_never_closed_is_all_reasoning():
    assert split_thinking("<think>\nstill thinking when the budget ran out") == (
        "still thinking when the budget ran out",
        "",
    )


def test_template_opened_think_leaves_only_the_close():
    # Qwen3's template can end the prompt with "<think>\n"; the completion then starts inside it.
    text = "Let me weigh the experts.\n</think>\n\n<tool_call>\n{}\n</tool_call>"
    assert split_thinking(text) == ("Let me weigh the experts.", "<tool_call>\n{}\n</tool_call>")


def test_no_thinking():
    assert split_thinking("Just an answer.") == ("", "Just an answer.")
    assert split_thinking("") == ("", "")


def test_empty_think_block():
    assert split_thinking("<think>\n\n</think>\n\nDone.") == ("", "Done.")


def test_preamble_matches_the_qwen3_template_wording():
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": {}}},
        {"type": "function", "function": {"name": "b", "description": "é"}},
    ]
    expected = (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "a", "parameters": {}}}\n'
        '{"type": "function", "function": {"name": "b", "description": "é"}}\n</tools>\n\n'
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )
    assert tools_system_preamble(tools) == expected


def test_preamble_goes_after_the_system_text_or_alone():
    tools = [{"type": "function", "function": {"name": "a"}}]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    with_system = with_tools_in_system(messages, tools)
    assert with_system[0]["content"] == "Be brief.\n\n" + tools_system_preamble(tools)
    assert with_system[1] == {"role": "user", "content": "hi"}
    alone = with_tools_in_system([{"role": "user", "content": "hi"}], tools)
    assert alone[0] == {"role": "system", "content": tools_system_preamble(tools)}


_pieces = st.sampled_from(
    ["<think>", "</think>", "<tool_call>", "</tool_call>", "{", "}", '"name"', ":", '"arguments"', "\n", "[", "]"]
)


@given(st.lists(st.one_of(_pieces, st.text(max_size=12)), max_size=30).map("".join))
def test_parsers_never_raise(text):
    calls = parse_tool_calls(text)
    assert all(isinstance(c, ToolCall) for c in calls)
    reasoning, rest = split_thinking(text)
    assert isinstance(reasoning, str) and isinstance(rest, str)
    # Every call found corresponds to an opening tag in the text.
    assert len(calls) <= text.count("<tool_call>")

"""Malformed policy output, in the model's own style, through whole episodes.

The reference handling (ORCHESTRATOR.md §2): only the first valid call of a round runs; an empty or invalid
output consumes the round, is recorded as `round_rejected` with the reason, and the same prompt is sampled
again. The reference parses tool calls from the whole content (vLLM's hermes parser, no reasoning parser),
so a call written inside the thinking counts like any other.

Then the optional repair (backends/repair.py) on the same corpus: what it fixes, and what it leaves alone.
"""

from __future__ import annotations

import json

import pytest
from engine_helpers import DATA, scripted_session
from fault_server import assert_trajectory_complete

from orchestra_tui.backends.repair import repair_tool_calls
from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text
from orchestra_tui.core import events as ev
from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.toolset import check_call, first_valid


def call(name: str, alias: str) -> str:
    return json.dumps({"name": name, "arguments": {"model": alias}})


def block(body: str) -> str:
    return f"<tool_call>\n{body}\n</tool_call>"


THINK = "<think>\nThe question needs one fact. The cheapest search first, then an answer.\n</think>\n\n"
ANSWER = block(call("answer", "answer-1"))
SEARCH = block(call("search", "search-1"))

# name → (policy output, expected). Expected is ("ran", tool, alias, calls ignored) or
# ("rejected", reason, what the detail says).
CORPUS: dict[str, tuple[str, tuple]] = {
    "unclosed block, complete JSON": (THINK + "<tool_call>\n" + call("answer", "answer-1") + "\n",
                                      ("ran", "answer", "answer-1", 0)),
    "unclosed block, cut inside the JSON": (THINK + '<tool_call>\n{"name": "search", "arguments": {"mod',
                                            ("rejected", "invalid", "unknown tool ''")),
    "cut inside the closing tag": (THINK + "<tool_call>\n" + call("answer", "answer-1") + "\n</tool_ca",
                                   ("ran", "answer", "answer-1", 0)),
    "bad JSON": (THINK + block('{"name": "search", "arguments": {"model": search-1}}'),
                 ("rejected", "invalid", "unknown tool ''")),
    "Python-style quotes": (THINK + block("{'name': 'search', 'arguments': {'model': 'search-1'}}"),
                            ("rejected", "invalid", "unknown tool ''")),
    "code fence inside the block": (THINK + block("```json\n" + call("search", "search-1") + "\n```"),
                                    ("rejected", "invalid", "unknown tool ''")),
    "JSON that is not an object": (THINK + block('["search", "search-1"]'), ("rejected", "invalid", "unknown tool")),
    "name that is not a string": (THINK + block('{"name": 3, "arguments": {"model": "search-1"}}'),
                                  ("rejected", "invalid", "unknown tool")),
    "unknown tool": (THINK + block(call("web_search", "search-1")),
                     ("rejected", "invalid", "unknown tool 'web_search'")),
    "alias of another tool": (THINK + block(call("search", "answer-1")),
                              ("rejected", "invalid", "'answer-1' is not an alias of search")),
    "alias the catalog does not map": (THINK + block(call("search", "search-3")),
                                       ("rejected", "invalid", "'search-3' is not an alias of search")),
    "made-up alias": (THINK + block(call("answer", "gpt-5")), ("rejected", "invalid", "'gpt-5' is not an alias")),
    "no model argument": (THINK + block('{"name": "search", "arguments": {"query": "France"}}'),
                          ("rejected", "invalid", "missing required argument 'model'")),
    "arguments not an object": (THINK + block('{"name": "search", "arguments": ["search-1"]}'),
                                ("rejected", "invalid", "missing required argument 'model'")),
    "arguments as a JSON string": (THINK + block('{"name": "answer", "arguments": "{\\"model\\": \\"answer-1\\"}"}'),
                                   ("ran", "answer", "answer-1", 0)),
    "several calls, all valid": (THINK + SEARCH + "\n" + ANSWER, ("ran", "search", "search-1", 1)),
    "several calls, the first invalid": (THINK + block(call("search", "search-9")) + "\n" + ANSWER,
                                         ("ran", "answer", "answer-1", 1)),
    "several calls, none valid": (THINK + block(call("fetch", "x")) + "\n" + block("{oops"),
                                  ("rejected", "invalid", "unknown tool 'fetch'")),
    "think never closed, no call": ("<think>\nA search would help, or maybe an answer right away. Let me",
                                    ("rejected", "empty", "no tool call")),
    "call inside a think never closed": ("<think>\nI will answer now.\n" + ANSWER + "\nor maybe not",
                                         ("ran", "answer", "answer-1", 0)),
    "call inside the thinking, another after it": ("<think>\n" + SEARCH + "\n</think>\n\n" + ANSWER,
                                                    ("ran", "search", "search-1", 1)),
    "empty": ("", ("rejected", "empty", "no tool call")),
    "only whitespace": ("\n\n  \n", ("rejected", "empty", "no tool call")),
    "prose, no call": (THINK + "The answer is Paris.", ("rejected", "empty", "no tool call")),
    "bare JSON call without tags": (THINK + call("answer", "answer-1"), ("rejected", "empty", "no tool call")),
    "trailing garbage": (THINK + ANSWER + "\n\nHope this helps! <|im_end|> }}} </tool_call>",
                         ("ran", "answer", "answer-1", 0)),
    "chat-template tokens around the call": ("<|im_start|>assistant\n" + ANSWER + "<|im_end|>",
                                             ("ran", "answer", "answer-1", 0)),
    "deeply nested JSON": (THINK + block("[" * 50_000), ("rejected", "invalid", "unknown tool ''")),
}

# One expert reply that serves every role: a query for search, code for reasoning, an answer for answer.
EXPERT_REPLY = "<query>capital of France</query>\n```python\nprint('Paris')\n```\n<answer>Paris</answer>"


async def episode(tmp_path, outputs: list[str], **options) -> list[ev.Event]:
    policy = ScriptedBackend(outputs, model="Qwen/Qwen3-8B")
    session = scripted_session(tmp_path, policy, ScriptedBackend(EXPERT_REPLY, model="gpt-5"), **options)
    try:
        return [e async for e in session.ask("What is the capital of France?")]
    finally:
        await session.aclose()


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("name", list(CORPUS))
async def test_malformed_output_is_handled_as_the_reference_does(tmp_path, name):
    output, expected = CORPUS[name]
    events = await episode(tmp_path, [output, tool_call_text("answer", "answer-1")])
    first = [e for e in events if getattr(e, "round", None) == 1]
    [said] = of(first, ev.PolicyOutput)
    assert said.content == output  # what the model wrote is on record, unaltered
    if expected[0] == "ran":
        _, tool, alias, ignored = expected
        assert not of(first, ev.RoundRejected)
        [started] = of(first, ev.ToolCallStarted)
        assert (started.tool, started.alias, len(started.ignored)) == (tool, alias, ignored)
    else:
        _, reason, detail = expected
        [rejected] = of(first, ev.RoundRejected)
        assert rejected.reason == reason and detail in rejected.detail, rejected
        assert not of(first, ev.ToolCallStarted)
        if reason == "invalid":
            assert rejected.calls and all(c["problem"] for c in rejected.calls)
        # The round is consumed and the same prompt is sampled again.
        rounds = of(events, ev.RoundStarted)
        assert rounds[1].round == 2 and rounds[1].messages == rounds[0].messages
    ended = events[-1]
    assert isinstance(ended, ev.EpisodeEnded) and (ended.status, ended.answer) == ("answered", "Paris")
    assert_trajectory_complete(tmp_path / "t.jsonl", events)


async def test_arguments_nested_past_the_recursion_limit_consume_the_round(tmp_path):
    # The hermes parser keeps string arguments as written, so this reaches the engine's check unparsed.
    output = THINK + block(json.dumps({"name": "search", "arguments": "[" * 100_000}))
    events = await episode(tmp_path, [output, tool_call_text("answer", "answer-1")])
    rejected = of([e for e in events if getattr(e, "round", None) == 1], ev.RoundRejected)
    assert [r.reason for r in rejected] == ["invalid"]
    assert (events[-1].status, events[-1].answer) == ("answered", "Paris")


async def test_an_episode_of_nothing_but_broken_output_ends_without_an_answer(tmp_path):
    outputs = [CORPUS[name][0] for name in ("empty", "bad JSON", "unknown tool")]
    events = await episode(tmp_path, outputs, max_rounds=3)
    assert [(r.round, r.reason) for r in of(events, ev.RoundRejected)] == [(1, "empty"), (2, "invalid"), (3, "invalid")]
    ended = events[-1]
    assert (ended.status, ended.answer, ended.rounds) == ("no_answer", None, 3)
    assert "no answer after 3 rounds" in ended.error
    assert_trajectory_complete(tmp_path / "t.jsonl", events)


# -- the optional repair ------------------------------------------------------------------------------


async def test_the_optional_repair_runs_the_fixed_call_and_says_so(tmp_path):
    output = CORPUS["Python-style quotes"][0]
    events = await episode(tmp_path, [output, tool_call_text("answer", "answer-1")], repair_tool_calls=True)
    said = of(events, ev.PolicyOutput)
    assert said[0].content == output  # what the model wrote stays on record ...
    assert said[0].repaired == "rewrote Python-style quoting as JSON"  # ... with what was changed
    assert said[0].tool_calls == [{"name": "search", "arguments": '{"model": "search-1"}'}]
    assert said[1].repaired is None  # a valid call is never touched
    assert [(s.round, s.alias) for s in of(events, ev.ToolCallStarted)] == [(1, "search-1"), (2, "answer-1")]
    assert not of(events, ev.RoundRejected)
    assert_trajectory_complete(tmp_path / "t.jsonl", events)


ALIASES = load_catalog(DATA / "scripted_catalog.toml").aliases()

REPAIRABLE = {
    "Python-style quotes": "rewrote Python-style quoting as JSON",
    "code fence inside the block": "removed a code fence around the call",
    "bare JSON call without tags": "wrapped a bare JSON call in <tool_call> tags",
}


@pytest.mark.parametrize("name", list(REPAIRABLE))
def test_repair_turns_a_rejected_round_into_a_valid_call(name):
    output, _ = CORPUS[name]
    repaired = repair_tool_calls(output)
    assert repaired is not None and REPAIRABLE[name] in repaired.fixes
    chosen, _ = first_valid([check_call(c, ALIASES) for c in repaired.calls])
    assert chosen is not None and chosen.alias in ("search-1", "answer-1")
    assert repaired.text.startswith(THINK)  # the thinking is kept as written


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        (block('{"name": "search", "arguments": {"model": "search-1"}'), "closed brackets the call left open"),
        (block('{"name": "search", "arguments": {"model": "search-1",},}'), "removed trailing commas"),
        ("<tool_call>\n" + call("search", "search-1") + "\n" + ANSWER, "closed a <tool_call> left open"),
        ("```json\n" + call("answer", "answer-1") + "\n```", "wrapped a bare JSON call"),
    ],
)
def test_each_repair_says_what_it_did(text, fix):
    repaired = repair_tool_calls(text)
    assert repaired is not None and any(f.startswith(fix) for f in repaired.fixes) and fix in repaired.note
    assert repaired.calls[0].name == ("search" if "search" in text else "answer")


@pytest.mark.parametrize("name", [n for n, (_, e) in CORPUS.items() if e[0] == "ran"]
                         + ["unknown tool", "alias of another tool", "made-up alias", "prose, no call", "empty",
                            "think never closed, no call", "unclosed block, cut inside the JSON",
                            "deeply nested JSON"])
def test_repair_leaves_alone_what_it_cannot_or_need_not_fix(name):
    # Valid output needs nothing; a wrong tool or alias is the model's choice, not its formatting; and
    # nothing is invented from prose or from half a call.
    assert repair_tool_calls(CORPUS[name][0]) is None

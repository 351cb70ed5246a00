"""The context block and the orchestrator prompt, checked against hand-written reference strings."""

from __future__ import annotations

import pytest

from orchestra_tui.backends.scripted import WordTokenizer
from orchestra_tui.core import prompts
from orchestra_tui.core.context import Evidence, ExpertLimits, PolicyLimits, cut_tail, expert_context, policy_context


async def user_text(problem, evidence, variant, limits=None):
    ctx = await policy_context(WordTokenizer(), problem, evidence, variant, limits or PolicyLimits.for_variant(variant))
    return prompts.orchestrator_messages(problem, ctx.text, variant)


def evidence(docs=(), code=()):
    e = Evidence()
    e.documents.extend(docs)
    for c, o in code:
        e.add_code(c, o)
    return e


async def test_empty_context_per_variant():
    frames = await user_text("P?", evidence(), "frames")
    assert frames == [
        {"role": "system", "content": "You are good at using tools."},
        {"role": "user", "content": "Problem: P?\n\n\npython code and execution outputs:\n\n\nChoose an appropriate tool."},
    ]
    hle = await user_text("P?", evidence(), "hle")
    assert hle[1]["content"] == "Problem: P?\n\n\n\nChoose an appropriate tool.'"
    train = await user_text("P?", evidence(), "train")
    assert train[0]["content"] == "You are good at using tools. "
    assert train[1]["content"].endswith("\n\nChoose an approriate tool.")


async def test_documents_only():
    frames = await user_text("P?", evidence(["A b", "C"]), "frames")
    assert frames[1]["content"] == (
        "Problem: P?\n\nDocuments:\nDoc 1: A b\n\nDoc 2: C\n\n\npython code and execution outputs:\n"
        "\n\nChoose an appropriate tool."
    )
    hle = await user_text("P?", evidence(["A b", "x" * 1300]), "hle")
    assert hle[1]["content"] == (
        f"Problem: P?\n\nDocuments:\nDoc 1: A b ...\n\nDoc 2: {'x' * 1200} ...\n\n\n\nChoose an appropriate tool.'"
    )


async def test_documents_and_code():
    e = evidence(["D"], [("print(1)", "1\n")])
    block = "```python\nprint(1)\n```\n\n```output\n1\n\n```\n\n"
    frames = await user_text("P?", e, "frames")
    assert frames[1]["content"] == (
        f"Problem: P?\n\nDocuments:\nDoc 1: D\n\n\npython code and execution outputs:\n{block}\n\nChoose an appropriate tool."
    )
    hle = await user_text("P?", e, "hle")
    assert hle[1]["content"] == (
        f"Problem: P?\n\nDocuments:\nDoc 1: D ...\n\n\npython code and execution outputs:\n{block}\n\nChoose an appropriate tool.'"
    )


async def test_blank_stdout_adds_nothing():
    e = evidence(code=[("x = 1", "  \n")])
    assert e.code == []


async def test_truncation_keeps_the_tail_and_reopens_the_fence():
    tok = WordTokenizer()
    cut = await cut_tail(tok, "one two three four", 2)
    assert (cut.length, cut.text) == (4, " three four")
    # A limit of zero keeps everything, as Python's ids[-0:] does in the reference.
    assert (await cut_tail(tok, "one two", 0)).text == "one two"

    e = evidence(["alpha beta gamma delta epsilon zeta eta theta"], [("print('a b c d e f')", "a b c d e f")])
    # The code part (17 tokens) is cut to its last 6; the whole block to its last 20 tokens.
    limits = PolicyLimits(doc_chars=4000, code_tokens=6, context_tokens=20)
    ctx = await policy_context(tok, "P?", e, "frames", limits)
    assert ctx.text.startswith("Documents:\n")
    body = ctx.text.removeprefix("Documents:\n")
    assert len(await tok.encode(body)) == 20 and body.endswith("```\n c d e f\n```\n\n")
    assert not body.startswith("Doc 1:") and body.endswith("theta\n\n\npython code and execution outputs:\n```\n c d e f\n```\n\n")
    code_only = await policy_context(tok, "P?", evidence(code=[("print(1)", "x " * 20)]), "frames", limits)
    assert code_only.text.startswith("```\n")  # the cut landed inside the code part


async def test_code_bigger_than_the_whole_budget_replaces_the_context():
    tok = WordTokenizer()
    e = evidence(["a doc"], [("print(1)", "w " * 50)])
    ctx = await policy_context(tok, "P?", e, "frames", PolicyLimits(doc_chars=4000, code_tokens=10, context_tokens=20))
    assert "Documents" not in ctx.text and ctx.text.startswith("```\n")


async def test_expert_context_budgets():
    tok = WordTokenizer()
    e = evidence(["x" * 50, "tail doc"], [("print(2)", "2")])
    text = await expert_context(tok, "P?", e, ExpertLimits(doc_chars=10, code_tokens=100, context_tokens=1000))
    assert text == f"Documents:\nDoc 1: {'x' * 10}\n\nDoc 2: tail doc\n\n```python\nprint(2)\n```\n\n```output\n2\n```\n\n"


@pytest.mark.parametrize("variant", ["hle", "frames"])
async def test_expert_prompts_by_variant(variant):
    q = prompts.query_writer_messages("ctx ", "P?", variant)[0]["content"]
    assert q.startswith("ctx\n\nQuestion: P?\nInstead of directly answering the question, please")
    assert q.endswith("Wrap the query within <query> and </query>.")
    a = prompts.answerer_messages("ctx", "P?", "boxed", variant)
    assert a[0]["content"] == "Please reason step by step, and put your final answer within \\boxed{}."
    assert a[1]["content"] == ("ctx\n\nProblem:\nP?" if variant == "hle" else "ctx\n\nP?")

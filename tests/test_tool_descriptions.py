"""The tool list narrowed to allowed aliases keeps the reference wording for everything that remains.

The expected texts here are built by plain string surgery on the reference (split sentences on ". ", drop
table lines), independently of the parser in core/tool_descriptions.py. The golden file for `avoid-gpt5`
is regenerated with ORCHESTRA_UPDATE_GOLDEN=1 after a deliberate change; read the diff.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.ledger import PriceBook
from orchestra_tui.core.profiles import alias_infos, load_profile, shipped_dir
from orchestra_tui.core.tool_descriptions import (
    alias_prices,
    money,
    parse_model_description,
    regenerate_tools,
    render_tools_json,
)
from orchestra_tui.core.toolset import REFERENCE_ALIASES, load_tools, reference_tools_path

GOLDEN = Path(__file__).parent / "golden" / "tools"
REFERENCE_MAPPING = GOLDEN / "reference-mapping.toml"
ALL = [a for names in REFERENCE_ALIASES.values() for a in names]


def _description(tools: list[dict], name: str) -> str:
    tool = next(t for t in tools if t["function"]["name"] == name)
    return tool["function"]["parameters"]["properties"]["model"]["description"]


def _by_surgery(text: str, keep: list[str]) -> str:
    """The reference description with every other alias cut out, by hand."""
    head, rest = text.split("Choices: [", 1)
    listed, rest = rest.split("]. ", 1)
    order = [c.strip("'") for c in listed.split(", ")]
    body, table = rest.split("\nModel | ", 1)
    sentences = body.split(". ")
    kept = [s for s in sentences if not any(s.startswith(a + " ") for a in order if a not in keep)]
    lines = table.split("\n")
    rows = [line for line in lines[1:] if line.split(" | ")[0] in keep]
    choices = ", ".join(f"'{a}'" for a in order if a in keep)
    return f"{head}Choices: [{choices}]. {'. '.join(kept)}\nModel | {chr(10).join([lines[0], *rows])}"


def test_every_alias_allowed_gives_the_reference_file_byte_for_byte():
    reference = load_tools()
    produced = regenerate_tools(reference)
    assert produced == reference
    assert render_tools_json(produced).encode("utf-8") == reference_tools_path().read_bytes()
    # Naming every alias explicitly is the same as allowing all.
    assert regenerate_tools(reference, {t: list(a) for t, a in REFERENCE_ALIASES.items()}) == reference


def test_reference_prices_from_the_shipped_price_book_change_nothing():
    """The shipped price book carries the reference tables, so re-pricing for the reference mapping is a
    no-op — including the `$$0.2` typo, which stays because the price is the reference one."""
    catalog = load_catalog(REFERENCE_MAPPING)
    book = PriceBook.default(user_file=False)
    prices = alias_prices({a: e.model for a, e in catalog.experts.items()}, book.model)
    assert set(prices) == set(ALL)
    produced = regenerate_tools(load_tools(), prices=prices)
    assert render_tools_json(produced).encode("utf-8") == reference_tools_path().read_bytes()
    assert "answer-math-2 | $$0.2 | $0.2 | 9s" in _description(produced, "answer")


def test_avoid_gpt5_matches_the_golden_file():
    catalog = load_catalog(REFERENCE_MAPPING)
    # The shipped file itself, never a same-named one in the user's folder.
    allowed = load_profile(shipped_dir() / "avoid-gpt5.toml").allowed_aliases(alias_infos(catalog))
    assert {a for names in allowed.values() for a in names} == set(ALL) - {"search-1", "reasoner-1", "answer-1"}
    produced = render_tools_json(regenerate_tools(load_tools(), allowed)) + "\n"
    golden = GOLDEN / "avoid-gpt5.json"
    if os.environ.get("ORCHESTRA_UPDATE_GOLDEN"):
        golden.write_text(produced, encoding="utf-8")
    assert produced == golden.read_text(encoding="utf-8")


@given(st.sets(st.sampled_from(ALL)))
def test_dropping_aliases_removes_exactly_their_parts(keep):
    reference = load_tools()
    allowed = {t: [a for a in names if a in keep] for t, names in REFERENCE_ALIASES.items()}
    produced = regenerate_tools(reference, allowed)
    assert [t["function"]["name"] for t in produced] == [
        t["function"]["name"] for t in reference if allowed[t["function"]["name"]]
    ]
    for tool in produced:
        name = tool["function"]["name"]
        original = _description(reference, name)
        assert _description(produced, name) == _by_surgery(original, allowed[name])
        # Everything but the `model` description is the reference's.
        stripped = json.loads(json.dumps(tool))
        stripped["function"]["parameters"]["properties"]["model"]["description"] = original
        assert stripped == next(t for t in reference if t["function"]["name"] == name)


def test_the_surgery_model_itself_reproduces_the_reference():
    # Guards the test's own helper: with every alias kept it must give back the reference text.
    for tool in load_tools():
        text = tool["function"]["parameters"]["properties"]["model"]["description"]
        assert _by_surgery(text, ALL) == text


def test_a_tool_without_allowed_aliases_is_dropped_and_unknown_aliases_refused():
    reference = load_tools()
    produced = regenerate_tools(reference, {"answer": ["answer-4"], "search": []})
    assert [t["function"]["name"] for t in produced] == ["answer"]
    assert "Choices: ['answer-4']. answer-4 demonstrates" in _description(produced, "answer")
    with pytest.raises(ValueError, match="reasoner-1"):
        regenerate_tools(reference, {"answer": ["reasoner-1"]})
    assert load_tools() == reference  # the input is never modified


def test_changed_prices_are_rendered_in_reference_style():
    prices = {
        "answer-math-2": (Decimal("0.2"), Decimal("0.30")),  # same input price: the typo cell stays
        "answer-1": (Decimal("2.500"), Decimal("20")),
        "answer-4": (Decimal("0"), Decimal("0")),
    }
    text = _description(regenerate_tools(load_tools(), prices=prices), "answer")
    assert "\nanswer-math-2 | $$0.2 | $0.3 | 9s" in text
    assert "\nanswer-1 | $2.5 | $20 | 96s" in text
    assert "\nanswer-4 | $0 | $0 | 11s" in text
    assert "\nanswer-2 | $0.25 | $2 | 27s" in text  # not in the table given: the reference row stands
    assert money(Decimal("0.0000083")) == "$0.0000083" and money(Decimal("10.00")) == "$10"


def test_parsed_pieces_follow_the_reference_layout():
    answer = parse_model_description(_description(load_tools(), "answer"))
    assert answer.choices == ("answer-1", "answer-2", "answer-3", "answer-4", "answer-math-1", "answer-math-2")
    assert answer.trailer == "The table below shows the pricing and latency of each model:"
    assert answer.blurbs["answer-1"].endswith("(math, physics, social science, etc.). ")
    reasoner = parse_model_description(_description(load_tools(), "enhance_reasoning"))
    assert reasoner.trailer == "" and reasoner.blurbs["reasoner-3"].endswith("reveal the logic. ")
    with pytest.raises(ValueError):
        parse_model_description("The model. No choices here.")

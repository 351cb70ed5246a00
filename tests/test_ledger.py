"""Prices and the ledger: Decimal costs, provenance, unpriced never $0."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestra_tui.core.ledger import Ledger, PriceBook, PriceError, breakdown


def book():
    return PriceBook.default(user_file=False)


def test_reference_prices_are_shipped():
    prices = book()
    gpt5 = prices.model("gpt-5")
    assert (gpt5.input_per_million, gpt5.output_per_million) == (Decimal("1.25"), Decimal("10"))
    assert prices.model("Qwen/Qwen2.5-Math-7B-Instruct").output_per_million == Decimal("0.2")
    assert prices.service("code").per_second == Decimal("0.0000083")
    assert prices.service("tavily_search").per_call == Decimal("0.01")


def test_charges_are_exact_and_unpriced_is_not_zero():
    ledger = Ledger(book())
    a = ledger.charge_tokens(call_id="1", round=1, kind="expert", alias="answer-1", model="gpt-5",
                             input_tokens=1000, output_tokens=500, seconds=2.0, profile="balanced")
    assert Decimal(a.cost_usd) == Decimal("0.00625") and a.price_source == "ToolOrchestra reference"
    b = ledger.charge_tokens(call_id="2", round=1, kind="expert", alias="x", model="nobody-knows",
                             input_tokens=10, output_tokens=10, seconds=1.0, profile="cheap")
    assert b.cost_usd is None and b.price_source == "unpriced"
    c = ledger.charge_service(call_id="3", round=2, kind="code", service="code", seconds=10.0, profile="cheap")
    assert Decimal(c.cost_usd) == Decimal("0.000083")
    totals = ledger.totals()
    assert totals.unpriced == 1 and totals.known_cost is None and totals.cost_usd == Decimal("0.006333")
    by_profile = breakdown(ledger.entries, "profile")
    assert by_profile["balanced"].known_cost == Decimal("0.00625") and by_profile["cheap"].unpriced == 1


def test_overrides_and_bad_prices():
    prices = book()
    prices.merge({"models": {"gpt-5": {"input_per_million": "2", "output_per_million": "20", "source": "mine"}}},
                 origin="user prices.toml")
    assert prices.model("gpt-5").source == "mine"
    with pytest.raises(PriceError, match=r"x.toml: models.m.input_per_million: 'lots' is not a number"):
        prices.merge({"models": {"m": {"input_per_million": "lots", "output_per_million": 1}}}, origin="x.toml")
    with pytest.raises(PriceError, match="must be a finite amount >= 0"):
        prices.merge({"services": {"s": {"per_call": -1}}}, origin="x.toml")


def test_amounts_are_fixed_point_in_events_and_never_read_as_free():
    from orchestra_tui.core.ledger import usd_label, usd_text

    ledger = Ledger(book())
    tiny = ledger.charge_service(call_id="4", round=1, kind="code", service="code", seconds=0.031, profile="p")
    assert tiny.cost_usd == "0.0000002573"  # str(Decimal) would give "2.573E-7"
    assert usd_text(Decimal("1E+1")) == "10" and usd_text(None) is None
    assert usd_label(Decimal(tiny.cost_usd)) == "$0.000000257"  # not "$0.000000"
    assert usd_label(Decimal("0")) == "$0" and usd_label(Decimal("12.5")) == "$12.50"

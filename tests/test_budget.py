"""Budgets never overshoot: a call runs only when its worst case is reserved, and the actual fits the reservation.

The property test drives the same arithmetic the engine will: worst cases from `worst_case`, actual costs
from the ledger's own `charge_tokens` / `charge_service`, nested question-within-session budgets.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestra_tui.core.budget import (
    TIMEOUT_GRACE_S,
    Budget,
    CallCounts,
    ServiceCall,
    TokenCall,
    input_token_bound,
    worst_case,
)
from orchestra_tui.core.ledger import Ledger, PriceBook, ServicePrice, TokenPrice

D = Decimal

prices = st.decimals(min_value=0, max_value=50, places=4, allow_nan=False, allow_infinity=False)
token_price = st.one_of(st.none(), st.builds(lambda i, o: TokenPrice(i, o, "test"), prices, prices))
service_price = st.one_of(
    st.none(),
    st.builds(lambda c, s: ServicePrice(c, s, "test"), prices, st.decimals(0, 1, places=7, allow_nan=False)),
)
limits = st.one_of(st.none(), st.decimals(min_value=0, max_value=3, places=4, allow_nan=False))
fraction = st.floats(min_value=0, max_value=1)
# A step is (kind, name, a, b, share of a used, share of b used): for tokens a/b are max input/output
# tokens; for a service a is the timeout in seconds and b is unused.
token_step = st.tuples(st.just("tokens"), st.sampled_from(["m0", "m1", "m2", "m3"]),
                       st.integers(0, 200_000), st.integers(0, 20_000), fraction, fraction)
service_step = st.tuples(st.just("service"), st.sampled_from(["s0", "s1"]),
                         st.floats(min_value=0, max_value=120), st.just(0), fraction, st.just(0.0))
questions = st.lists(st.tuples(limits, st.lists(st.one_of(token_step, service_step), max_size=25)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    model_prices=st.fixed_dictionaries({m: token_price for m in ("m0", "m1", "m2", "m3")}),
    service_prices=st.fixed_dictionaries({s: service_price for s in ("s0", "s1")}),
    session_limit=limits,
    plan=questions,
)
def test_spend_never_exceeds_any_budget(model_prices, service_prices, session_limit, plan):
    book = PriceBook()
    book.models = {m: p for m, p in model_prices.items() if p is not None}
    book.services = {s: p for s, p in service_prices.items() if p is not None}
    ledger = Ledger(book)
    session = Budget(session_limit, name="session")
    booked_session = D(0)
    for number, (question_limit, steps) in enumerate(plan):
        question = session.child(question_limit, name=f"q{number}")
        booked_question = D(0)
        for kind, name, a, b, c, d in steps:
            if kind == "tokens":
                call = TokenCall(book.model(name), max_input_tokens=a, max_output_tokens=b)
            else:
                call = ServiceCall(book.service(name), timeout_s=a)
            bound = worst_case(call)
            room = question.headroom()
            reservation = question.reserve(bound, label=name)
            # A call is skipped exactly when its worst case does not fit (or cannot be bounded under a limit).
            should_fit = room is None or (bound is not None and bound <= room)
            assert (reservation is not None) == should_fit
            if reservation is None:
                continue
            # The call "runs": actual usage within what was asked for, priced by the ledger itself.
            if kind == "tokens":
                entry = ledger.charge_tokens(call_id="c", round=1, kind="expert", alias=None, model=name,
                                             input_tokens=int(a * c), output_tokens=int(b * d), seconds=0.0,
                                             profile="p")
            else:
                seconds = (a + TIMEOUT_GRACE_S) * c  # a timed-out run is measured a little past its timeout
                entry = ledger.charge_service(call_id="c", round=1, kind="code", service=name, seconds=seconds,
                                              profile="p")
            actual = None if entry.cost_usd is None else D(entry.cost_usd)
            if reservation.amount is not None:
                assert actual is not None and actual <= reservation.amount  # the reservation covers the call
            assert question.reconcile(reservation, actual) == 0
            booked_question += actual or 0
            for level in (question, session):
                assert level.reserved == 0
                if level.limit is not None:
                    assert level.spent <= level.limit
        assert question.spent == booked_question
        booked_session += booked_question
    assert session.spent == booked_session
    if session_limit is not None:
        assert session.spent <= session_limit


def test_a_reservation_must_fit_every_level():
    session = Budget(D("0.10"))
    question = session.child(D("1.00"))
    assert question.reserve(D("0.11")) is None  # fits the question, not the session
    first = question.reserve(D("0.06"))
    assert first is not None and session.reserved == D("0.06")
    assert question.reserve(D("0.05")) is None  # the held reservation counts
    assert question.reconcile(first, D("0.01")) == 0
    assert (session.spent, session.reserved, question.spent) == (D("0.01"), 0, D("0.01"))
    assert question.reserve(D("0.09")) is not None
    assert session.child(D("0.02")).affordable({"a": D("0.02"), "b": D("0.021"), "c": None}) == set()
    assert Budget(D("0.05")).affordable({"a": D("0.02"), "b": D("0.051"), "c": None}) == {"a"}


def test_unpriced_calls_run_only_without_limits():
    assert Budget(None).child(None).reserve(None) is not None
    assert Budget(D(100)).child(None).reserve(None) is None
    free = Budget(None)
    reservation = free.reserve(None)
    assert free.reconcile(reservation, None) == 0 and free.unpriced == 1 and free.spent == 0


def test_reservations_settle_once_and_in_their_own_budget():
    budget, other = Budget(D(1)), Budget(D(1))
    reservation = budget.reserve(D("0.5"))
    with pytest.raises(ValueError, match="another budget"):
        other.reconcile(reservation, D(0))
    budget.release(reservation)
    assert budget.reserved == 0 and budget.spent == 0
    with pytest.raises(ValueError, match="already settled"):
        budget.reconcile(reservation, D(0))
    with pytest.raises(ValueError):
        Budget(D(-1))


def test_an_overrun_is_booked_and_reported():
    budget = Budget(D(1))
    reservation = budget.reserve(D("0.10"))
    assert budget.reconcile(reservation, D("0.25")) == D("0.15")
    assert budget.spent == D("0.25")  # the truth is booked, never hidden


def test_worst_cases():
    gpt5 = TokenPrice(D("1.25"), D("10"), "ref")
    assert worst_case(TokenCall(gpt5, 1_000_000, 100_000)) == D("2.25")
    assert worst_case(TokenCall(None, 10, 10)) is None
    code = ServicePrice(per_second=D("0.0000083"))
    assert worst_case(ServiceCall(code, timeout_s=60)) == D("0.0000083") * D(60 + TIMEOUT_GRACE_S)
    tavily = ServicePrice(per_call=D("0.01"))
    assert worst_case(ServiceCall(tavily, calls=3)) == D("0.03")
    assert worst_case([TokenCall(gpt5, 0, 1000), ServiceCall(tavily)]) == D("0.02")
    assert worst_case([TokenCall(gpt5, 0, 1000), ServiceCall(None)]) is None


def test_input_bound_is_never_below_real_token_counts():
    # Any byte-level tokenizer spends at least one byte per token: bytes bound tokens even for text
    # where characters take several bytes each.
    text = "Ünïcödé ∑ 数学 🙂" * 10
    assert input_token_bound([text], messages=2) >= len(text.encode("utf-8")) + 2


def test_cheapest_and_call_counts():
    budget = Budget(D("0.05"))
    candidates = {"answer-1": D("0.2"), "answer-4": D("0.01"), "answer-3": D("0.02"), "x": None}
    assert budget.cheapest(candidates) == "answer-4"
    assert Budget(D(0)).cheapest({"a": D("0.01")}) is None
    counts = CallCounts(lambda alias: 1 if alias == "answer-1" else None)
    counts.record("answer-1")
    counts.record("search-1")
    assert counts.available(["answer-1", "search-1"]) == {"search-1"}


def test_a_lowered_limit_stops_new_reservations_but_keeps_held_ones():
    session = Budget(D("1.00"))
    held = session.reserve(D("0.40"))
    session.set_limit(D("0.30"))  # a profile switch mid-call
    assert session.reserve(D("0.01")) is None
    assert session.reconcile(held, D("0.35")) == 0 and session.spent == D("0.35")
    assert session.headroom() == D("-0.05") and not session.affordable({"a": D(0)})
    with pytest.raises(ValueError):
        session.set_limit(D("NaN"))

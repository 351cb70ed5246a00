"""Spending limits that are never overshot: reserve a call's worst case before it runs, book the actual after.

Why spend cannot exceed a limit. A call runs only after `reserve(worst_case)` succeeded, and a reservation
succeeds only when `spent + reserved + worst_case <= limit` at every level (a question's budget sits inside
the session's). `reconcile` then swaps the reservation for the actual cost. The actual is at most the worst
case because both come from the same price, and prices are never negative:
- a token-priced call costs `input × p_in + output × p_out` per million (the ledger's own formula);
  output ≤ `max_tokens`, because the backend is asked for at most that many (llama.cpp n_predict, vLLM
  max_tokens, OpenAI max_completion_tokens — which counts hidden reasoning tokens too); input ≤ the bound
  passed as `max_input_tokens`: the exact count from the policy's own tokenizer for a policy round, and
  for an expert, whose tokenizer we do not have, `input_token_bound` (a byte-level BPE token always covers
  at least one UTF-8 byte, so bytes bound tokens, plus a margin for the chat template's own tokens);
- a per-call / per-second service costs `per_call + per_second × seconds` with seconds ≤ the timeout plus
  `TIMEOUT_GRACE_S` (the runner kills the process group at the timeout; the grace covers start-up).
So `spent` never passes a limit. Should a backend still report more (a server that ignores max_tokens),
the truth is booked — the ledger must not lie — and `reconcile` returns the overrun so the caller can say
so loudly; the property test in tests/test_budget.py holds the arithmetic to this argument.

Unpriced calls: when any level has a limit, a call whose cost is unknown cannot be bounded, so it is not
affordable (the alias is withheld). With no limit anywhere it runs and is counted as unpriced.

Recommended order in a round: reserve the policy round's worst case; compute `affordable` over the
aliases while that reservation is held; offer only those; after the policy answers, reconcile it — which
can only free money — so reserving the chosen alias then cannot fail.

Everything runs on the event loop's one thread, so there is no locking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from orchestra_tui.core.ledger import ServicePrice, TokenPrice

K = TypeVar("K", bound=Hashable)
ZERO = Decimal(0)
TIMEOUT_GRACE_S = 5.0  # seconds a timed-out service may still be measured past its timeout
TEMPLATE_TOKENS = 256  # chat template text around the messages (role markers, the tools preamble)
TOKENS_PER_MESSAGE = 8


@dataclass(frozen=True)
class TokenCall:
    """A model call: priced per million tokens, bounded by its prompt size and max_tokens."""

    price: TokenPrice | None
    max_input_tokens: int
    max_output_tokens: int


@dataclass(frozen=True)
class ServiceCall:
    """A service priced per call and/or per second (code execution, web search); `calls` of them."""

    price: ServicePrice | None
    timeout_s: float = 0.0
    calls: int = 1


Call = TokenCall | ServiceCall


def worst_case(call: Call | Sequence[Call]) -> Decimal | None:
    """The most `call` can cost, or None when any part is unpriced. A sequence is a tool call's parts
    (the expert, then the retrieval or the code run), which are reserved together."""
    if isinstance(call, Sequence):
        total = ZERO
        for part in call:
            amount = worst_case(part)
            if amount is None:
                return None
            total += amount
        return total
    if call.price is None:
        return None
    if isinstance(call, TokenCall):
        return call.price.cost(max(call.max_input_tokens, 0), max(call.max_output_tokens, 0))
    seconds = call.timeout_s + TIMEOUT_GRACE_S if call.price.per_second else 0.0
    return call.price.cost(seconds) * max(call.calls, 0)


def input_token_bound(texts: Iterable[str], messages: int = 1) -> int:
    """An upper bound on a prompt's tokens under any byte-level tokenizer: its UTF-8 bytes plus the
    template's tokens. Loose (about four times the real count for English), never low."""
    return sum(len(t.encode("utf-8")) for t in texts) + TEMPLATE_TOKENS + TOKENS_PER_MESSAGE * messages


@dataclass(eq=False)
class Reservation:
    amount: Decimal | None  # None: an unpriced call, allowed only because no level has a limit
    label: str
    budgets: tuple[Budget, ...] = field(repr=False)
    open: bool = True


class Budget:
    """A dollar limit (None = unlimited) with what is spent and what is reserved; `parent` nests it."""

    def __init__(self, limit_usd: Decimal | None = None, spent: Decimal = ZERO, *,
                 parent: Budget | None = None, name: str = "") -> None:
        if spent < 0:
            raise ValueError(f"spent must be >= 0, got {spent}")
        self.limit: Decimal | None = None
        self.set_limit(limit_usd)
        self.spent = Decimal(spent)
        self.reserved = ZERO
        self.unpriced = 0  # calls booked without a known cost
        self.parent = parent
        self.name = name

    def set_limit(self, limit_usd: Decimal | None) -> None:
        """A new limit (a profile switch). Reservations already held stay held: a call in flight under the
        old limit may still finish above a lower new one, and nothing new fits until spend is back under."""
        if limit_usd is not None and (not limit_usd.is_finite() or limit_usd < 0):
            raise ValueError(f"a budget limit must be a finite amount >= 0, got {limit_usd}")
        self.limit = limit_usd

    def child(self, limit_usd: Decimal | None, name: str = "") -> Budget:
        """A budget inside this one (a question within the session): every reservation must fit both."""
        return Budget(limit_usd, parent=self, name=name)

    @property
    def chain(self) -> tuple[Budget, ...]:
        levels, level = [], self
        while level is not None:
            levels.append(level)
            level = level.parent
        return tuple(levels)

    @property
    def limited(self) -> bool:
        return any(level.limit is not None for level in self.chain)

    def headroom(self) -> Decimal | None:
        """What one more reservation may take at most (None: no limit anywhere)."""
        rooms = [b.limit - b.spent - b.reserved for b in self.chain if b.limit is not None]
        return min(rooms) if rooms else None

    def fits(self, amount: Decimal | None) -> bool:
        room = self.headroom()
        if room is None:
            return True
        return amount is not None and amount <= room

    def reserve(self, amount: Decimal | None, label: str = "") -> Reservation | None:
        """Hold `amount` at every level, or return None and hold nothing when it does not fit."""
        if amount is not None and amount < 0:
            raise ValueError(f"cannot reserve a negative amount ({amount})")
        if not self.fits(amount):
            return None
        for level in self.chain:
            level.reserved += amount or ZERO
        return Reservation(amount, label, self.chain)

    def _close(self, reservation: Reservation) -> None:
        if not reservation.open:
            raise ValueError(f"reservation {reservation.label!r} was already settled")
        if reservation.budgets[0] is not self:
            raise ValueError(f"reservation {reservation.label!r} belongs to another budget")
        reservation.open = False
        for level in reservation.budgets:
            level.reserved -= reservation.amount or ZERO

    def reconcile(self, reservation: Reservation, actual: Decimal | None) -> Decimal:
        """Release the reservation and book the actual cost at every level; returns the overrun (0 unless
        the worst-case bound was broken — see the module docstring). An unknown actual books the
        reserved amount when there is one: the bound is the best knowledge of what was spent."""
        self._close(reservation)
        if actual is None and reservation.amount is not None:
            actual = reservation.amount
        for level in reservation.budgets:
            if actual is None:
                level.unpriced += 1
            else:
                level.spent += actual
        if actual is None or reservation.amount is None:
            return ZERO
        return max(actual - reservation.amount, ZERO)

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back unbooked. Only for a call that certainly never reached its backend;
        a call cancelled mid-way may have been billed: reconcile it (with None when usage is unknown)."""
        self._close(reservation)

    def affordable(self, candidates: Mapping[K, Decimal | None]) -> set[K]:
        """The candidates (alias → worst case) that one reservation could cover right now."""
        return {key for key, amount in candidates.items() if self.fits(amount)}

    def cheapest(self, candidates: Mapping[K, Decimal | None]) -> K | None:
        """The affordable candidate with the lowest worst case (the last resort: the cheapest answer)."""
        priced = [(amount, str(key), key) for key, amount in candidates.items()
                  if amount is not None and self.fits(amount)]
        return min(priced)[2] if priced else None


class CallCounts:
    """`max_calls_per_alias` within one episode: which aliases may still be called."""

    def __init__(self, limit_of: Callable[[str], int | None]) -> None:
        self.limit_of = limit_of
        self.counts: Counter[str] = Counter()

    def allows(self, alias: str) -> bool:
        limit = self.limit_of(alias)
        return limit is None or self.counts[alias] < limit

    def available(self, aliases: Iterable[str]) -> set[str]:
        return {a for a in aliases if self.allows(a)}

    def record(self, alias: str) -> None:
        self.counts[alias] += 1

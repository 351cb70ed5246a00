"""Prices and spend: the one owner of money in orchestra-tui.

Every external call — each orchestrator round, each expert, each retrieval, each code run — becomes a
ledger entry with tokens, seconds, a Decimal cost and where the price came from. A call whose price is
unknown is *unpriced* (cost None), never $0, and any unpriced entry makes a total unknown too.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from orchestra_tui.core.events import Charged
from orchestra_tui.paths import config_dir, data_dir

MILLION = Decimal(1_000_000)
UNPRICED = "unpriced"


class PriceError(ValueError):
    pass


@dataclass(frozen=True)
class TokenPrice:
    input_per_million: Decimal
    output_per_million: Decimal
    source: str

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (self.input_per_million * input_tokens + self.output_per_million * output_tokens) / MILLION


@dataclass(frozen=True)
class ServicePrice:
    per_call: Decimal = Decimal(0)
    per_second: Decimal = Decimal(0)
    source: str = ""

    def cost(self, seconds: float) -> Decimal:
        return self.per_call + self.per_second * Decimal(str(round(seconds, 6)))


def _decimal(value: Any, where: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise PriceError(f"{where}: {value!r} is not a number") from exc
    if amount < 0 or not amount.is_finite():
        raise PriceError(f"{where}: a price must be a finite amount >= 0, got {value!r}")
    return amount


class PriceBook:
    """Model and service prices; later layers (catalog, user file) override earlier ones by name."""

    def __init__(self) -> None:
        self.models: dict[str, TokenPrice] = {}
        self.services: dict[str, ServicePrice] = {}

    @classmethod
    def default(cls, *, user_file: bool = True) -> PriceBook:
        book = cls()
        book.load_file(data_dir("tools") / "prices.toml")
        user = config_dir() / "prices.toml"
        if user_file and user.is_file():
            book.load_file(user)
        return book

    def load_file(self, path: Path) -> None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise PriceError(f"{path}: {exc}") from exc
        self.merge(data, origin=str(path.name))

    def merge(self, data: dict[str, Any], *, origin: str) -> None:
        for name, entry in (data.get("models") or {}).items():
            where = f"{origin}: models.{name}"
            self.models[name] = TokenPrice(
                _decimal(entry.get("input_per_million"), f"{where}.input_per_million"),
                _decimal(entry.get("output_per_million"), f"{where}.output_per_million"),
                str(entry.get("source") or origin),
            )
        for name, entry in (data.get("services") or {}).items():
            where = f"{origin}: services.{name}"
            self.services[name] = ServicePrice(
                _decimal(entry.get("per_call", 0), f"{where}.per_call"),
                _decimal(entry.get("per_second", 0), f"{where}.per_second"),
                str(entry.get("source") or origin),
            )

    def model(self, name: str) -> TokenPrice | None:
        return self.models.get(name)

    def service(self, name: str) -> ServicePrice | None:
        return self.services.get(name)


@dataclass(frozen=True)
class Totals:
    cost_usd: Decimal  # sum of priced entries
    unpriced: int  # entries without a price
    input_tokens: int
    output_tokens: int
    seconds: float
    calls: int

    @property
    def known_cost(self) -> Decimal | None:
        """The total, or None when any entry was unpriced."""
        return None if self.unpriced else self.cost_usd


def parse_usd(value: object) -> Decimal | None:
    """A charge's `cost_usd` as a Decimal, or None when the call is unpriced (or the amount is unreadable)."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def usd_label(amount: Decimal) -> str:
    """An amount for people (the TUI, the console, eval tables): cents above a dollar, else three
    significant digits — a policy round often costs a hundredth of a cent, a second of code far less, and
    neither may round to a free-looking $0.000000."""
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    decimals = min(max(4, 2 - amount.adjusted()), 12)
    return f"${amount:.{decimals}f}"


def usd_text(amount: Decimal | None) -> str | None:
    """An amount as events and JSON carry it: fixed-point ("0.0000002573", never "2.573E-7"), every digit
    kept; None (unpriced) stays None."""
    return None if amount is None else format(amount, "f")


class Ledger:
    """Charges calls against the price book and keeps every entry (as `Charged` events)."""

    def __init__(self, prices: PriceBook) -> None:
        self.prices = prices
        self.entries: list[Charged] = []

    def _record(self, cost: Decimal | None, source: str | None, **fields: Any) -> Charged:
        entry = Charged(cost_usd=usd_text(cost), price_source=source or UNPRICED, **fields)
        self.entries.append(entry)
        return entry

    def charge_tokens(
        self,
        *,
        call_id: str,
        round: int,
        kind: str,
        alias: str | None,
        model: str,
        input_tokens: int,
        output_tokens: int,
        seconds: float,
        profile: str,
    ) -> Charged:
        price = self.prices.model(model)
        return self._record(
            None if price is None else price.cost(input_tokens, output_tokens),
            None if price is None else price.source,
            call_id=call_id, round=round, kind=kind, alias=alias, model=model, input_tokens=input_tokens,
            output_tokens=output_tokens, seconds=seconds, profile=profile,
        )

    def charge_service(
        self,
        *,
        call_id: str,
        round: int,
        kind: str,
        service: str,
        seconds: float,
        profile: str,
        alias: str | None = None,
    ) -> Charged:
        price = self.prices.service(service)
        return self._record(
            None if price is None else price.cost(seconds),
            None if price is None else price.source,
            call_id=call_id, round=round, kind=kind, alias=alias, model=service, input_tokens=0,
            output_tokens=0, seconds=seconds, profile=profile,
        )

    def totals(self, entries: list[Charged] | None = None) -> Totals:
        chosen = self.entries if entries is None else entries
        return summarize(chosen)


def summarize(entries: list[Charged]) -> Totals:
    cost = Decimal(0)
    unpriced = 0
    for e in entries:
        if e.cost_usd is None:
            unpriced += 1
        else:
            cost += Decimal(e.cost_usd)
    return Totals(
        cost_usd=cost,
        unpriced=unpriced,
        input_tokens=sum(e.input_tokens for e in entries),
        output_tokens=sum(e.output_tokens for e in entries),
        seconds=sum(e.seconds for e in entries),
        calls=len(entries),
    )


def breakdown(entries: list[Charged], key: str) -> dict[str, Totals]:
    """Totals grouped by an entry field: kind, model, alias or profile."""
    groups: dict[str, list[Charged]] = defaultdict(list)
    for e in entries:
        groups[str(getattr(e, key))].append(e)
    return {name: summarize(items) for name, items in groups.items()}

"""The tool list the policy sees, narrowed to the aliases a profile allows (and re-priced for a catalog).

Each reference tool has one argument, `model`, whose description carries everything the policy knows about
the aliases: `Choices: [...]`, one sentence per alias, and a price/latency table. Training varied the tools
and prices per task (ORCHESTRATOR.md §5), so removing aliases or changing prices stays in distribution —
as long as what remains reads exactly as the reference wrote it. So nothing here is hard-coded: the
pieces are cut out of the reference text and put back together, and with every alias allowed (and the
reference prices) the result is the reference file byte for byte.

Layout of a description, as parsed:
    HEAD "Choices: " ['a', 'b'] ". " LEAD BLURB(a) BLURB(b) TRAILER "\\n" HEADER ("\\n" ROW)*
where each blurb is the sentence that starts with its alias plus the space after it, and TRAILER is what
follows the last sentence ("The table below shows ...:" or nothing).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

_CHOICES = re.compile(r"(?s)^(.*?Choices: )\[([^\]]*)\]\. (.*)$")
_TABLE = "\nModel | "
Prices = Mapping[str, tuple[Decimal, Decimal]]  # alias → ($ per million input tokens, $ per million output)


def money(amount: Decimal) -> str:
    """Reference style: `$1.25`, `$10`, `$0.8` — no trailing zeros, never an exponent."""
    return f"${format(amount.normalize(), 'f')}"


def _cell_price(cell: str) -> Decimal | None:
    try:
        return Decimal(cell.strip().lstrip("$"))
    except InvalidOperation:
        return None


def _price_cell(reference: str, amount: Decimal) -> str:
    # The reference's own text wins when the amount is the same: that keeps its `$$0.2` typo, which the
    # model saw in training, and only a changed price is written fresh.
    return reference if _cell_price(reference) == amount else money(amount)


@dataclass(frozen=True)
class ModelDescription:
    head: str  # "The model used to answer. Choices: "
    choices: tuple[str, ...]
    lead: str  # text between "]. " and the first blurb (empty in the reference)
    blurbs: Mapping[str, str]
    trailer: str
    header: str  # the table's first line
    rows: tuple[tuple[str, tuple[str, ...]], ...]  # (alias, cells after the alias), in table order

    def render(self, allowed: Iterable[str], prices: Prices | None = None) -> str:
        keep = set(allowed)
        unknown = keep - set(self.choices)
        if unknown:
            raise ValueError(f"not a choice of this tool: {', '.join(sorted(unknown))}")
        chosen = [a for a in self.choices if a in keep]
        parts = [self.head, "[", ", ".join(f"'{a}'" for a in chosen), "]. ", self.lead]
        parts += [self.blurbs[a] for a in chosen if a in self.blurbs]
        parts += [self.trailer, "\n", self.header]
        for alias, cells in self.rows:
            if alias in keep:
                parts.append("\n" + " | ".join((alias, *self._priced(alias, cells, prices))))
        return "".join(parts)

    def _priced(self, alias: str, cells: tuple[str, ...], prices: Prices | None) -> tuple[str, ...]:
        if not prices or alias not in prices:
            return cells  # no price known for it here: the reference row stands
        price_in, price_out = prices[alias]
        return (_price_cell(cells[0], price_in), _price_cell(cells[1], price_out), *cells[2:])


@cache
def parse_model_description(text: str) -> ModelDescription:
    """Cut a reference `model` description into its pieces (raises ValueError on another layout)."""
    found = _CHOICES.match(text)
    if not found:
        raise ValueError("no 'Choices: [...]. ' in the model description")
    head, listed, rest = found.groups()
    choices = tuple(re.findall(r"'([^']*)'", listed))
    if ", ".join(f"'{c}'" for c in choices) != listed:
        raise ValueError(f"unexpected choices list: [{listed}]")
    table_at = rest.find(_TABLE)
    if table_at < 0:
        raise ValueError("no price table ('Model | ...') in the model description")
    body, table = rest[:table_at], rest[table_at + 1 :]

    # A blurb is the sentence that begins with its alias: at the start, or right after ". ".
    starts = {}
    for alias in choices:
        hit = re.search(rf"(?:^|(?<=\. )){re.escape(alias)} ", body)
        if hit:
            starts[alias] = hit.start()
    order = sorted(starts, key=starts.get)  # type: ignore[arg-type]
    blurbs: dict[str, str] = {}
    end = 0
    for i, alias in enumerate(order):
        if i + 1 < len(order):
            end = starts[order[i + 1]]
        else:  # the last one runs to the end of its sentence; what follows is the trailer
            stop = body.find(". ", starts[alias])
            end = len(body) if stop < 0 else stop + 2
        blurbs[alias] = body[starts[alias] : end]
    lead = body[: starts[order[0]]] if order else ""
    trailer = body[end:] if order else body

    header, *lines = table.split("\n")
    rows = []
    for line in lines:
        alias, *cells = line.split(" | ")
        if alias not in choices or len(cells) < 2:
            raise ValueError(f"unexpected price table row: {line!r}")
        rows.append((alias, tuple(cells)))
    return ModelDescription(head, choices, lead, blurbs, trailer, header, tuple(rows))


def _model_argument(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["function"]["parameters"]["properties"]["model"]


def tool_choices(tool: dict[str, Any]) -> tuple[str, ...]:
    return parse_model_description(_model_argument(tool)["description"]).choices


def regenerate_tools(
    reference: Sequence[dict[str, Any]],
    allowed: Mapping[str, Iterable[str]] | None = None,
    prices: Prices | None = None,
) -> list[dict[str, Any]]:
    """The reference tool list with each `model` description narrowed to `allowed[tool]` and, where
    `prices` names an alias, its price cells re-rendered. `allowed=None` keeps every alias; a tool absent
    from `allowed` or left with no alias is dropped. The reference list is not modified."""
    out = []
    for tool in reference:
        name = tool["function"]["name"]
        parsed = parse_model_description(_model_argument(tool)["description"])
        keep = parsed.choices if allowed is None else tuple(allowed.get(name, ()))
        if not keep:
            continue
        fresh = copy.deepcopy(tool)
        _model_argument(fresh)["description"] = parsed.render(keep, prices)
        out.append(fresh)
    return out


def alias_prices(models: Mapping[str, str], price_of: Any) -> dict[str, tuple[Decimal, Decimal]]:
    """alias → (input, output) $/M for the aliases whose model the price book knows. `models` is
    alias → model name; `price_of(model)` returns a ledger `TokenPrice` or None (left out: unpriced)."""
    out = {}
    for alias, model in models.items():
        price = price_of(model)
        if price is not None:
            out[alias] = (price.input_per_million, price.output_per_million)
    return out


def render_tools_json(tools: Sequence[dict[str, Any]]) -> str:
    """The layout of the reference `tools.json` (two-space indent, no trailing newline)."""
    return json.dumps(list(tools), indent=2)

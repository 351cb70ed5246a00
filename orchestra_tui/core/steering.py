"""What the user's profile and budgets do to a round: which aliases the policy may see, what each may
cost at worst, and the reservations that keep spend under every limit.

The harness guarantees the hard parts (exclusions, unavailable aliases, call limits, budgets); the soft
weights become a plain-language statement in the problem text, best effort by nature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orchestra_tui.core.budget import Budget, CallCounts, ServiceCall, TokenCall, input_token_bound, worst_case
from orchestra_tui.core.catalog import Catalog, ExpertSpec
from orchestra_tui.core.context import Evidence
from orchestra_tui.core.ledger import PriceBook
from orchestra_tui.core.profile_model import AliasInfo, Profile, alias_infos


@dataclass
class Steering:
    """The per-episode state of the active profile and its budgets."""

    profile: Profile
    budget: Budget  # this question's budget (its parent is the session's)
    counts: CallCounts
    unavailable: dict[str, str] = field(default_factory=dict)  # alias → why (missing key, endpoint down)
    pending: Profile | None = None  # a switch asked for mid-episode; applied at the next round
    code_timeout_s: float = 60.0
    max_cost: Decimal | None = None  # the user's --max-cost: it outlives profile switches
    retrieval_services: tuple[str, ...] = ("retrieval_local",)

    @staticmethod
    def unlimited(profile: Profile) -> Steering:
        return Steering(profile, Budget(None), CallCounts(lambda alias: None))

    def infos(self, catalog: Catalog) -> dict[str, AliasInfo]:
        return alias_infos(catalog)

    def withheld(self, catalog: Catalog) -> dict[str, str]:
        """alias → reason, for every alias the policy may not use this round (before budgets)."""
        reasons = dict(self.profile.withheld(self.infos(catalog)))
        for alias, why in self.unavailable.items():
            reasons.setdefault(alias, f"unavailable: {why}")
        for alias in catalog.experts:
            if alias not in reasons and not self.counts.allows(alias):
                reasons[alias] = f"call limit reached ({self.profile.budget.calls_limit(alias)})"
        return reasons

    def expert_worst_cases(self, experts: dict[str, ExpertSpec], problem: str, evidence: Evidence,
                           prices: PriceBook) -> dict[str, Decimal | None]:
        """alias → its worst-case cost this round. Every expert's prompt holds at most the problem and all
        the evidence, so one input bound serves every alias (counted once a round, not once an alias)."""
        texts = [problem, *evidence.documents, *(c.code + c.output for c in evidence.code)]
        bound = input_token_bound(texts, 2)
        return {alias: self._expert_worst_case(spec, bound, prices) for alias, spec in experts.items()}

    def _expert_worst_case(self, spec: ExpertSpec, input_tokens: int, prices: PriceBook) -> Decimal | None:
        parts: list[Any] = [TokenCall(prices.model(spec.model), input_tokens, spec.sampling.max_tokens)]
        if spec.tool == "search":
            parts += [ServiceCall(prices.service(name)) for name in self.retrieval_services]
        elif spec.tool == "enhance_reasoning":
            parts.append(ServiceCall(prices.service("code"), timeout_s=self.code_timeout_s))
        return worst_case(parts)

    def policy_worst_case(self, model: str, texts: list[str], max_tokens: int, prices: PriceBook) -> Decimal | None:
        return worst_case(TokenCall(prices.model(model), input_token_bound(texts, 2), max_tokens))


def allowed_by_tool(catalog: Catalog, usable: set[str]) -> dict[str, tuple[str, ...]]:
    return {tool: tuple(a for a in aliases if a in usable) for tool, aliases in catalog.aliases().items()}


def cost_of(entries: list[Any]) -> Decimal | None:
    """The actual cost of one call's ledger entries; None when any part was unpriced."""
    total = Decimal(0)
    for entry in entries:
        if entry.cost_usd is None:
            return None
        total += Decimal(entry.cost_usd)
    return total

"""The in-memory preference profile: sliders, hard rules, budgets and sampling overrides for the policy.

The trained model was rewarded for following a user preference vector, but the wording it saw is not
public (ORCHESTRATOR.md §5). So a profile splits in two:
- what the harness guarantees: exclusions and zero weights remove aliases from the tool list the policy
  sees, budgets withhold what cannot be afforded (core/budget.py);
- what the policy is only asked: the other weights become one plain sentence in the problem text
  (`preference_statement`), best effort.

Reading, saving and finding profile files is `core/profiles.py` (the public entry point, which re-exports
this module's names); checking a file's content is `core/profile_schema.py`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from orchestra_tui.core.profile_schema import ALL_ALIASES
from orchestra_tui.core.toolset import REFERENCE_ALIASES, tool_of_alias

if TYPE_CHECKING:
    from orchestra_tui.backends.base import Sampling
    from orchestra_tui.core.catalog import Catalog

NEUTRAL = 0.5  # cost / latency / quality: the middle of the slider states nothing
HIGH, LOW = 0.7, 0.3  # a dead zone around neutral, so a slider nudged by a pixel does not change the prompt
# Alias and tool weights (1 = no preference): below AVOID the policy is asked to "avoid", below SPARINGLY
# to use it "sparingly".
AVOID, SPARINGLY = 0.4, 0.8
LOCAL_KINDS = ("embedded", "llamacpp")


@dataclass(frozen=True)
class Weights:
    cost: float = NEUTRAL
    latency: float = NEUTRAL
    quality: float = NEUTRAL
    remote: float = 1.0  # multiplies the weight of every alias served by a remote API (0 = local only)


@dataclass(frozen=True)
class Rules:
    exclude: tuple[str, ...] = ()
    exclude_models: tuple[str, ...] = ()  # by model name, resolved against the catalog in use
    local_only: bool = False
    no_web: bool = False


@dataclass(frozen=True)
class BudgetLimits:
    usd_per_question: Decimal | None = None
    usd_per_session: Decimal | None = None
    max_rounds: int | None = None
    max_calls_per_alias: int | Mapping[str, int] | None = None

    def calls_limit(self, alias: str) -> int | None:
        """How many times one episode may run `alias` (None: no limit)."""
        limit = self.max_calls_per_alias
        if isinstance(limit, Mapping):
            return limit.get(alias)
        return limit


@dataclass(frozen=True)
class AliasInfo:
    """What a profile needs to know about one alias of the active catalog."""

    alias: str
    tool: str
    model: str
    local: bool  # served on this machine or the local network: no per-token bill, no data leaves
    web: bool = False  # the call reaches the public web (a search alias over web retrieval)


def is_local_backend(spec: Mapping[str, Any]) -> bool:
    """Embedded and llama.cpp run in-process; an OpenAI-style server counts as local on a loopback or
    private address. A host name other than localhost is remote: resolving it here would be a guess."""
    if spec.get("kind") in LOCAL_KINDS:
        return True
    urls = spec.get("base_url")
    if isinstance(urls, list):  # a pool is local only when every endpoint is
        return bool(urls) and all(is_local_backend({**spec, "base_url": url}) for url in urls)
    host = urlparse(str(urls or "")).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def web_only_retrieval(retrieval: Mapping[str, Any]) -> bool:
    """Search reaches the public web whatever happens (`kind = "web"`). A `web_fallback` on a local index is
    not counted: under `no_web` the fallback is switched off instead (`Profile.retrieval_spec`)."""
    return retrieval.get("kind") == "web"


def alias_infos(catalog: Catalog) -> dict[str, AliasInfo]:
    web_search = web_only_retrieval(catalog.retrieval)
    return {
        alias: AliasInfo(alias=alias, tool=spec.tool, model=spec.model,
                         local=is_local_backend(catalog.backends[spec.backend]),
                         web=web_search and spec.tool == "search")
        for alias, spec in catalog.experts.items()
    }


def model_matches(pattern: str, model: str) -> bool:
    """`gpt-5` matches `gpt-5` and `openai/GPT-5` but never `gpt-5-mini`: whole names, case-insensitive,
    with or without the organisation prefix."""
    want, have = pattern.lower(), model.lower()
    return have == want or have.rsplit("/", 1)[-1] == want.rsplit("/", 1)[-1]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    weights: Weights = field(default_factory=Weights)
    aliases: Mapping[str, float] = field(default_factory=dict)  # missing = 1
    tools: Mapping[str, float] = field(default_factory=dict)  # missing = 1
    models: Mapping[str, float] = field(default_factory=dict)  # by model name; missing = 1
    rules: Rules = field(default_factory=Rules)
    budget: BudgetLimits = field(default_factory=BudgetLimits)
    sampling: Mapping[str, Any] = field(default_factory=dict)  # temperature, top_p, top_k, max_tokens
    variant: str | None = None  # None: the session's setting
    catalog: str | None = None  # None: the session's catalog
    source: Path | None = field(default=None, compare=False)  # the file it was read from

    # --- building ------------------------------------------------------------------------------------

    @classmethod
    def from_checked(cls, data: Mapping[str, Any], source: Path | None = None) -> Profile:
        """From `profile_schema.check_profile`'s normalised dict."""
        rules = data.get("rules", {})
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            weights=Weights(**data.get("weights", {})),
            aliases=dict(data.get("aliases", {})),
            tools=dict(data.get("tools", {})),
            models=dict(data.get("models", {})),
            rules=Rules(exclude=tuple(rules.get("exclude", ())), exclude_models=tuple(rules.get("exclude_models", ())),
                        local_only=rules.get("local_only", False), no_web=rules.get("no_web", False)),
            budget=BudgetLimits(**data.get("budget", {})),
            sampling=dict(data.get("sampling", {})),
            variant=data.get("variant"),
            catalog=data.get("catalog"),
            source=source,
        )

    def to_toml_dict(self) -> dict[str, Any]:
        """The TOML form, leaving out what equals the default so a saved file says only what was chosen.
        Dollars are written as strings: TOML floats would turn 0.1 into 0.1000000000000000055."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        for key in ("variant", "catalog"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        weights = {k: v for k, v in dataclasses.asdict(self.weights).items() if v != getattr(Weights(), k)}
        tables: dict[str, dict[str, Any]] = {
            "weights": weights,
            "aliases": dict(self.aliases),
            "tools": dict(self.tools),
            "models": dict(self.models),
            "rules": {k: list(v) if isinstance(v, tuple) else v
                      for k, v in dataclasses.asdict(self.rules).items() if v != getattr(Rules(), k)},
            "budget": {k: str(v) if isinstance(v, Decimal) else (dict(v) if isinstance(v, Mapping) else v)
                       for k, v in dataclasses.asdict(self.budget).items() if v is not None},
            "sampling": dict(self.sampling),
        }
        out.update({name: table for name, table in tables.items() if table})
        return out

    def retrieval_spec(self, retrieval: Mapping[str, Any]) -> dict[str, Any]:
        """The catalog's [retrieval] table as this profile allows it: `no_web` turns a web fallback off (the
        local index still searches); a web-only retriever is handled by withholding the search aliases."""
        spec = dict(retrieval)
        if self.rules.no_web and spec.get("web_fallback"):
            spec["web_fallback"] = False
        return spec

    def apply_sampling(self, base: Sampling) -> Sampling:
        """The policy's sampling with this profile's overrides."""
        return dataclasses.replace(base, **self.sampling)

    # --- against a catalog ---------------------------------------------------------------------------

    def alias_weight(self, info: AliasInfo) -> float:
        """The slider value for one alias: its own, its model's and (if remote) the remote weight, multiplied.
        Two `[models]` spellings of one model ("gpt-5", "openai/gpt-5") count once, at the lower weight."""
        weight = self.aliases.get(info.alias, 1.0)
        matching = [w for pattern, w in self.models.items() if model_matches(pattern, info.model)]
        if matching:
            weight *= min(matching)
        return weight if info.local else weight * self.weights.remote

    def withheld_reason(self, info: AliasInfo) -> str | None:
        """Why the policy must not see this alias, or None when it may."""
        if info.alias in self.rules.exclude:
            return "excluded by rules.exclude"
        for pattern in self.rules.exclude_models:
            if model_matches(pattern, info.model):
                return f"its model {info.model} is excluded by rules.exclude_models"
        if self.rules.local_only and not info.local:
            return "remote backend (rules.local_only)"
        if self.rules.no_web and info.web:
            return "searches the web (rules.no_web)"
        if self.tools.get(info.tool, 1.0) == 0:
            return f"tool {info.tool} has weight 0"
        if self.alias_weight(info) == 0:
            return "weight 0"
        return None

    def withheld(self, catalog_aliases: Mapping[str, AliasInfo]) -> dict[str, str]:
        """Every withheld alias of the catalog with its reason (for the UI and the trajectory)."""
        return {a: why for a, info in catalog_aliases.items() if (why := self.withheld_reason(info))}

    def allowed_aliases(self, catalog_aliases: Mapping[str, AliasInfo]) -> dict[str, tuple[str, ...]]:
        """Tool → the aliases the policy may see, in reference order; a tool with none is left out."""
        out: dict[str, tuple[str, ...]] = {}
        for tool, names in REFERENCE_ALIASES.items():
            keep = tuple(a for a in names if a in catalog_aliases and self.withheld_reason(catalog_aliases[a]) is None)
            if keep:
                out[tool] = keep
        return out

    def preference_statement(self, catalog_aliases: Mapping[str, AliasInfo] | Iterable[str]) -> str | None:
        """One plain sentence for the problem text from the non-default sliders, or None when there are none.

        Only aliases the policy can see are named (a withheld alias is enforced, not requested). Given bare
        alias names instead of `AliasInfo`s, model and remote weights cannot apply and are left out.
        """
        if isinstance(catalog_aliases, Mapping):
            infos = dict(catalog_aliases)
        else:
            infos = {a: AliasInfo(a, tool_of_alias(a) or "", model="", local=True) for a in catalog_aliases}
        visible = {a: i for a, i in infos.items() if a in ALL_ALIASES and self.withheld_reason(i) is None}
        weights = {a: self.alias_weight(i) for a, i in visible.items()}
        # A preference is relative: the policy picks one alias of a tool, so each weight is read against the
        # best of its tool. When every alias is remote, "avoid them all" would be noise, and is not said.
        top = {i.tool: max(w for a, w in weights.items() if visible[a].tool == i.tool) for i in visible.values()}
        avoid, sparing = [], []
        for alias in sorted(visible):
            weight = weights[alias] / top[visible[alias].tool]
            if weight < AVOID:
                avoid.append(alias)
            elif weight < SPARINGLY:
                sparing.append(alias)
        parts = []
        if avoid:
            parts.append(f"avoid {_join(avoid)} where possible")
        if sparing:
            parts.append(f"use {_join(sparing)} sparingly")
        tools_seen = {i.tool for i in visible.values()}
        for tool in (t for t in REFERENCE_ALIASES if t in tools_seen):
            weight = self.tools.get(tool, 1.0)
            if weight < AVOID:
                parts.append(f"avoid the {tool} tool where possible")
            elif weight < SPARINGLY:
                parts.append(f"use the {tool} tool sparingly")
        phrases = {
            "quality": ("put answer quality first", "answer quality matters less"),
            "cost": ("keep cost low", "cost matters less"),
            "latency": ("keep latency low", "latency matters less"),
        }
        for key, (high, low) in phrases.items():
            value = getattr(self.weights, key)
            if value >= HIGH:
                parts.append(high)
            elif value <= LOW:
                parts.append(low)
        return f"User preference: {'; '.join(parts)}." if parts else None

"""Tool catalogs: which backend plays the policy and each alias, with sampling, context budgets and prices.

A catalog is a TOML file (shipped ones in `tools/catalogs/`). Errors are one line naming the file and
key, with a suggestion where a near name exists.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra_tui.backends.base import Sampling
from orchestra_tui.backends.factory import check_spec
from orchestra_tui.core.context import ExpertLimits, PolicyLimits
from orchestra_tui.core.prompts import ANSWER_STYLES
from orchestra_tui.core.tomlfile import TomlFileError, read_toml
from orchestra_tui.core.toolset import REFERENCE_ALIASES, reference_tools_path, tool_of_alias
from orchestra_tui.paths import data_dir

BACKEND_KINDS = ("embedded", "llamacpp", "openai")
_TOP_KEYS = ("catalog", "policy", "backends", "expert_defaults", "experts", "retrieval", "code", "prices")
_SAMPLING_KEYS = ("temperature", "max_tokens", "top_p", "top_k", "seed", "extra")
_POLICY_KEYS = (*_SAMPLING_KEYS, "backend", "doc_chars", "code_tokens", "context_tokens", "constrain_tool_call")
_EXPERT_KEYS = (*_SAMPLING_KEYS, "backend", "doc_chars", "code_tokens", "context_tokens", "answer_style",
                "answer_fallback", "constrain")


class CatalogError(ValueError):
    pass


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


@dataclass(frozen=True)
class ExpertSpec:
    alias: str
    tool: str
    backend: str
    model: str  # the model name shown to the user and used to look up prices
    sampling: Sampling
    limits: ExpertLimits
    answer_style: str = "boxed"
    answer_fallback: bool = False  # take the whole reply when no \boxed{} / <answer> span exists (tiny models)
    constrain: bool = False  # grammar-constrain the expert's output format (tiny models)


@dataclass(frozen=True)
class PolicySpec:
    backend: str
    model: str
    sampling: Sampling
    limit_overrides: dict[str, int]
    constrain_tool_call: bool

    def limits(self, variant: str) -> PolicyLimits:
        base = PolicyLimits.for_variant(variant)  # type: ignore[arg-type]
        return PolicyLimits(**{**base.__dict__, **self.limit_overrides})


@dataclass(frozen=True)
class Catalog:
    name: str
    path: Path
    digest: str
    description: str
    backends: dict[str, dict[str, Any]]
    policy: PolicySpec
    experts: dict[str, ExpertSpec]
    retrieval: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, Any] = field(default_factory=dict)
    tool_list: Path = field(default_factory=reference_tools_path)

    def aliases(self) -> dict[str, tuple[str, ...]]:
        """Aliases per tool that this catalog maps (the reference order kept)."""
        return {t: tuple(a for a in names if a in self.experts) for t, names in REFERENCE_ALIASES.items()}


def backend_model(name: str, spec: dict[str, Any]) -> str:
    if spec.get("model_name"):
        return str(spec["model_name"])
    if spec.get("kind") == "embedded":
        return "SmolLM2-135M-Instruct"
    if spec.get("model"):
        return str(spec["model"])
    return Path(str(spec.get("model_path", name))).stem


def _key(name: Any) -> str:
    """A key as a message shows it: bare when TOML allows, else quoted with escapes, so the error stays one
    line whatever the key holds."""
    text = str(name)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text, ensure_ascii=False)


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _check_keys(where: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise CatalogError(f"{where}: unknown key {key!r}{_suggest(key, allowed)}")


def _sampling(where: str, table: dict[str, Any], defaults: Sampling) -> Sampling:
    values = {k: table[k] for k in _SAMPLING_KEYS if k in table}
    if "extra" in values:
        _table(f"{where}.extra", values["extra"])  # merged into every request body
    for key in ("temperature", "top_p"):
        if key in values and not isinstance(values[key], (int, float)):
            raise CatalogError(f"{where}.{key}: expected a number, got {values[key]!r}")
    for key in ("max_tokens", "top_k", "seed"):
        if key in values and (not isinstance(values[key], int) or values[key] < 0):
            raise CatalogError(f"{where}.{key}: expected a whole number >= 0, got {values[key]!r}")
    return Sampling(**{**defaults.__dict__, **values})


def _ints(where: str, table: dict[str, Any], keys: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for key in keys:
        if key in table:
            if not isinstance(table[key], int) or table[key] <= 0:
                raise CatalogError(f"{where}.{key}: expected a whole number > 0, got {table[key]!r}")
            out[key] = table[key]
    return out


def _backend_ref(where: str, name: Any, backends: dict[str, dict[str, Any]]) -> str:
    if not isinstance(name, str) or name not in backends:
        raise CatalogError(f"{where}.backend: no backend named {name!r}{_suggest(str(name), list(backends))}")
    return name


def parse_catalog(data: dict[str, Any], path: Path, digest: str = "") -> Catalog:
    where = path.name
    _check_keys(where, data, _TOP_KEYS)
    # Every table is checked to be one before it is read: TOML lets any key hold any value.
    head = _table(f"{where}: catalog", data.get("catalog", {}))
    backends = _table(f"{where}: backends", data.get("backends") or {})
    if not backends:
        raise CatalogError(f"{where}: [backends] is empty; declare at least one backend")
    for name, spec in backends.items():
        kind = _table(f"{where}: backends.{_key(name)}", spec).get("kind")
        if kind not in BACKEND_KINDS:
            raise CatalogError(f"{where}: backends.{_key(name)}.kind: {kind!r} is not one of "
                               f"{', '.join(BACKEND_KINDS)}{_suggest(str(kind), BACKEND_KINDS)}")
        try:
            check_spec(spec)
        except ValueError as exc:
            raise CatalogError(f"{where}: backends.{_key(name)}: {exc}") from None

    policy_table = _table(f"{where}: policy", data.get("policy") or {})
    _check_keys(f"{where}: policy", policy_table, _POLICY_KEYS)
    policy_backend = _backend_ref(f"{where}: policy", policy_table.get("backend"), backends)
    policy = PolicySpec(
        backend=policy_backend,
        model=backend_model(policy_backend, backends[policy_backend]),
        # Reference orchestrator sampling: temperature 1.0, max_tokens 12000.
        sampling=_sampling(f"{where}: policy", policy_table, Sampling(temperature=1.0, max_tokens=12000)),
        limit_overrides=_ints(f"{where}: policy", policy_table, ("doc_chars", "code_tokens", "context_tokens")),
        constrain_tool_call=bool(policy_table.get("constrain_tool_call", False)),
    )

    defaults = _table(f"{where}: expert_defaults", data.get("expert_defaults") or {})
    _check_keys(f"{where}: expert_defaults", defaults, _EXPERT_KEYS)
    experts: dict[str, ExpertSpec] = {}
    all_aliases = [a for names in REFERENCE_ALIASES.values() for a in names]
    for alias, table in _table(f"{where}: experts", data.get("experts") or {}).items():
        tool = tool_of_alias(alias)
        if tool is None:
            raise CatalogError(f"{where}: experts.{_key(alias)}: unknown alias{_suggest(alias, all_aliases)}")
        at = f"{where}: experts.{alias}"
        merged = {**defaults, **_table(at, table)}
        _check_keys(at, merged, _EXPERT_KEYS)
        backend = _backend_ref(at, merged.get("backend"), backends)
        style = merged.get("answer_style", "boxed")
        if style not in ANSWER_STYLES:
            raise CatalogError(f"{at}.answer_style: {style!r} is not one of {', '.join(ANSWER_STYLES)}")
        limits = _ints(at, merged, ("doc_chars", "code_tokens", "context_tokens"))
        experts[alias] = ExpertSpec(
            alias=alias,
            tool=tool,
            backend=backend,
            model=backend_model(backend, backends[backend]),
            sampling=_sampling(at, merged, Sampling(temperature=0.2, max_tokens=8000)),
            limits=ExpertLimits(**limits),
            answer_style=style,
            answer_fallback=bool(merged.get("answer_fallback", False)),
            constrain=bool(merged.get("constrain", False)),
        )
    retrieval = _table(f"{where}: retrieval", data.get("retrieval") or {"kind": "embedded"})
    return Catalog(
        name=str(head.get("name", path.stem)),
        path=path,
        digest=digest,
        description=str(head.get("description", "")),
        backends=backends,
        policy=policy,
        experts=experts,
        retrieval=retrieval,
        code=_table(f"{where}: code", data.get("code") or {}),
        prices=_table(f"{where}: prices", data.get("prices") or {}),
    )


def catalog_path(name_or_path: str | Path) -> Path:
    """A shipped catalog by name (`embedded`) or a path to a TOML file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    shipped = data_dir("tools") / "catalogs" / f"{name_or_path}.toml"
    if not shipped.is_file():
        names = sorted(p.stem for p in (data_dir("tools") / "catalogs").glob("*.toml"))
        raise CatalogError(f"no catalog named {str(name_or_path)!r}{_suggest(str(name_or_path), names)}; "
                           f"shipped: {', '.join(names)}")
    return shipped


def load_catalog(name_or_path: str | Path = "embedded") -> Catalog:
    path = catalog_path(name_or_path)
    try:
        data, raw = read_toml(path)
    except TomlFileError as exc:
        raise CatalogError(str(exc)) from None
    digest = hashlib.sha256(raw + reference_tools_path().read_bytes()).hexdigest()[:16]
    return parse_catalog(data, path, digest)


def with_policy_backend(catalog: Catalog, spec: dict[str, Any]) -> Catalog:
    """Swap the backend that plays the policy (CLI --model / --base-url); aliases sharing it follow."""
    from dataclasses import replace

    name = catalog.policy.backend
    if spec.get("kind") not in BACKEND_KINDS:
        raise CatalogError(f"policy backend kind {spec.get('kind')!r} is not one of {', '.join(BACKEND_KINDS)}")
    model = backend_model(name, spec)
    experts = {a: replace(e, model=model) if e.backend == name else e for a, e in catalog.experts.items()}
    return replace(
        catalog,
        backends={**catalog.backends, name: spec},
        policy=replace(catalog.policy, model=model),
        experts=experts,
    )

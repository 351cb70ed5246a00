"""Which backends, and so which aliases, can be used right now — and why not.

An alias whose API key is missing or whose endpoint does not answer is *unavailable*: it is dropped from
what the policy sees and the reason is shown to the user. Never a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from orchestra_tui.core.catalog import Catalog
from orchestra_tui.keys import KEYS

PROBE_TIMEOUT_S = 3.0


def key_problem(spec: dict[str, Any], env: Mapping[str, str]) -> str | None:
    name = spec.get("api_key_env")
    if name and not env.get(name):
        return f"{name} is not set"
    return None


async def endpoint_problem(spec: dict[str, Any], env: Mapping[str, str], timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """One GET /models; any answer below 500 (even 401) means something listens there. A pool of
    endpoints is usable while any of them answers."""
    urls = spec.get("base_url")
    if isinstance(urls, list):
        problems = await asyncio.gather(*(endpoint_problem({**spec, "base_url": u}, env, timeout_s) for u in urls))
        return None if any(p is None for p in problems) else "; ".join(p for p in problems if p)
    base = str(urls or "").rstrip("/")
    headers = {}
    if spec.get("api_key_env") and env.get(spec["api_key_env"]):
        headers["Authorization"] = f"Bearer {env[spec['api_key_env']]}"
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(f"{base}/models", headers=headers)
    except httpx.HTTPError as exc:
        return f"{httpx.URL(base).host}:{httpx.URL(base).port or ''} does not answer ({type(exc).__name__})"
    if response.status_code >= 500:
        return f"{httpx.URL(base).host} answered {response.status_code}"
    return None


async def backend_problems(
    catalog: Catalog, *, env: Mapping[str, str] | None = None, probe: bool = True, skip: set[str] | None = None
) -> dict[str, str]:
    """Backend name → why it cannot be used. `skip` names backends already built (injected or local)."""
    env = KEYS if env is None else env
    problems: dict[str, str] = {}
    to_probe: list[str] = []
    for name, spec in catalog.backends.items():
        if skip and name in skip:
            continue
        if problem := key_problem(spec, env):
            problems[name] = problem
        elif spec.get("kind") == "openai" and probe:
            to_probe.append(name)
    results = await asyncio.gather(*(endpoint_problem(catalog.backends[n], env) for n in to_probe))
    problems.update({n: p for n, p in zip(to_probe, results, strict=True) if p})
    return problems


def alias_problems(catalog: Catalog, backend_problems: dict[str, str]) -> dict[str, str]:
    return {
        alias: f"{spec.backend}: {backend_problems[spec.backend]}"
        for alias, spec in catalog.experts.items()
        if spec.backend in backend_problems
    }

"""The expensive parts every question of an eval shares: chat backends, retrievers, the code runner.

Each question runs in its own Session (its own trajectory, ledger and budgets), but loading a model or
opening an index once per question would dominate the run; so parts are built once per distinct spec and
injected. A session closes its backends when it ends, so shared ones are handed over behind a wrapper
whose `aclose` does nothing; the eval closes the real ones once, at the end.
"""

from __future__ import annotations

import json
from typing import Any

from orchestra_tui.backends.base import ChatBackend
from orchestra_tui.core.availability import backend_problems
from orchestra_tui.core.catalog import Catalog


class Shared:
    """A backend lent to one question's session: everything passes through except closing it."""

    def __init__(self, inner: ChatBackend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def aclose(self) -> None:
        return None


def _key(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


class EngineParts:
    """The real parts, built the way a Session would build them, once per distinct spec."""

    def __init__(self, *, unsafe_code: bool = False, check_endpoints: bool = True) -> None:
        self.unsafe_code = unsafe_code
        self.check_endpoints = check_endpoints
        self._backends: dict[str, ChatBackend] = {}
        self._retrievers: dict[str, Any] = {}
        self._code_runner: Any = None

    async def problems(self, catalog: Catalog) -> dict[str, str]:
        """Backend name → why it cannot be used, probed once per profile rather than once per question."""
        return await backend_problems(catalog, probe=self.check_endpoints)

    def _make_backend(self, spec: dict[str, Any]) -> ChatBackend:
        from orchestra_tui.backends.factory import make_backend

        return make_backend(spec)

    def _make_retriever(self, spec: dict[str, Any]) -> Any:
        from orchestra_tui.services.retrieval_setup import make_retriever

        return make_retriever(spec)

    def _make_code_runner(self) -> Any:
        from orchestra_tui.services.sandbox import make_code_runner

        return make_code_runner(unsafe=self.unsafe_code)

    def backend(self, spec: dict[str, Any]) -> ChatBackend:
        key = _key(spec)
        if key not in self._backends:
            self._backends[key] = self._make_backend(spec)
        return Shared(self._backends[key])  # type: ignore[return-value]

    def retriever(self, spec: dict[str, Any]) -> Any:
        key = _key(spec)
        if key not in self._retrievers:
            self._retrievers[key] = self._make_retriever(spec)
        return self._retrievers[key]

    def code_runner(self) -> Any:
        if self._code_runner is None:
            self._code_runner = self._make_code_runner()
        return self._code_runner

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()

"""A session: a sequence of episodes (questions) under one configuration, with follow-ups.

This is the engine's public face for every consumer (CLI, TUI, eval). A consumer calls
`session.ask(question)` and iterates the events; `session.cancel()` (or cancelling the consumer's task,
as Ctrl+C does) stops the running episode cleanly, and the trajectory records `cancelled`.
Every event is written to the trajectory before the consumer sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestra_tui import __version__
from orchestra_tui.backends.base import ChatBackend
from orchestra_tui.core import prompts
from orchestra_tui.core.catalog import Catalog, backend_model, load_catalog, with_policy_backend
from orchestra_tui.core.episode import Episode, EpisodeSettings
from orchestra_tui.core.events import EpisodeEnded, Event, Notice
from orchestra_tui.core.experts import Experts
from orchestra_tui.core.ledger import Ledger, PriceBook
from orchestra_tui.core.toolset import load_tools, tools_hash
from orchestra_tui.core.trajectory import TrajectoryWriter, new_trajectory_path
from orchestra_tui.paths import trajectories_dir


class EpisodeSource(Protocol):
    """What a UI needs from the engine. `Session` implements it; tests use scripted stand-ins."""

    @property
    def profile_name(self) -> str: ...

    @property
    def policy_label(self) -> str: ...

    def ask(self, question: str) -> AsyncIterator[Event]: ...

    def cancel(self) -> None: ...


@dataclass
class SessionOptions:
    catalog: str | Path = "embedded"
    variant: prompts.Variant = prompts.DEFAULT_VARIANT
    max_rounds: int = 50
    profile: str = "balanced"
    policy_backend: dict[str, Any] | None = None  # replaces the catalog's policy backend (CLI --model/--base-url)
    trajectory: Path | None = None  # None: a new file under the state folder
    record: bool = True
    unsafe_code: bool = False  # run model-written code bare when no sandbox works (the user typed the flag)


@dataclass
class _Parts:
    backends: dict[str, ChatBackend] = field(default_factory=dict)
    retriever: Any = None
    code_runner: Any = None


_DONE = object()


def _public_backend(spec: dict[str, Any]) -> dict[str, Any]:
    """What a trajectory may say about a backend: never a key, only the env var's name."""
    keep = ("kind", "model", "model_name", "model_path", "base_url", "api_key_env", "n_ctx", "n_gpu_layers")
    return {k: spec[k] for k in keep if k in spec}


class Session:
    def __init__(
        self,
        options: SessionOptions | None = None,
        *,
        catalog: Catalog | None = None,
        backends: dict[str, ChatBackend] | None = None,
        retriever: Any = None,
        code_runner: Any = None,
        prices: PriceBook | None = None,
    ) -> None:
        self.options = options or SessionOptions()
        self.catalog = catalog or load_catalog(self.options.catalog)
        if self.options.policy_backend:
            self.catalog = with_policy_backend(self.catalog, self.options.policy_backend)
        self._parts = _Parts(dict(backends or {}), retriever, code_runner)
        self.prices = prices or PriceBook.default()
        self.prices.merge(self.catalog.prices, origin=f"{self.catalog.path.name} [prices]")
        self.ledger = Ledger(self.prices)
        self.tools = load_tools(self.catalog.tool_list)
        self.history: list[tuple[str, str]] = []
        self.listeners: list[Callable[[Event], None]] = []
        self._writer: TrajectoryWriter | None = None
        self._task: asyncio.Task[None] | None = None

    # --- what consumers read ------------------------------------------------------------------------

    @property
    def profile_name(self) -> str:
        return self.options.profile

    @property
    def policy_label(self) -> str:
        spec = self.catalog.backends[self.catalog.policy.backend]
        return f"{spec.get('kind')}: {backend_model(self.catalog.policy.backend, spec)}"

    @property
    def trajectory_path(self) -> Path | None:
        return self._writer.path if self._writer else None

    # --- building the parts lazily (models load on first use) ----------------------------------------

    def _backend(self, name: str) -> ChatBackend:
        if name not in self._parts.backends:
            from orchestra_tui.backends.factory import make_backend

            self._parts.backends[name] = make_backend(self.catalog.backends[name])
        return self._parts.backends[name]

    def _retriever(self) -> Any:
        if self._parts.retriever is None:
            from orchestra_tui.services.retrieval_setup import make_retriever

            self._parts.retriever = make_retriever(self.catalog.retrieval)
        return self._parts.retriever

    def _code_runner(self) -> Any:
        if self._parts.code_runner is None:
            from orchestra_tui.services.sandbox import make_code_runner

            self._parts.code_runner = make_code_runner(unsafe=self.options.unsafe_code)
        return self._parts.code_runner

    def _experts(self) -> Experts:
        backends = {spec.backend: self._backend(spec.backend) for spec in self.catalog.experts.values()}
        return Experts(
            backends,
            self.ledger,
            self._retriever(),
            self._code_runner(),
            retrieval_topk=int(self.catalog.retrieval.get("topk", 50 if self.options.variant == "hle" else 150)),
            code_timeout_s=float(self.catalog.code.get("timeout_s", 60)),
        )

    def _open_trajectory(self) -> None:
        if self._writer is not None or not self.options.record:
            return
        path = self.options.trajectory or new_trajectory_path(trajectories_dir(), self.catalog.name)
        self._writer = TrajectoryWriter(
            path,
            {
                "app_version": __version__,
                "catalog": self.catalog.name,
                "catalog_hash": self.catalog.digest,
                "tools_hash": tools_hash(self.tools),
                "tools": self.tools,
                "profile": self.options.profile,
                "variant": self.options.variant,
                "backends": {n: _public_backend(s) for n, s in self.catalog.backends.items()},
                "policy_backend": self.catalog.policy.backend,
            },
        )

    def _emit(self, event: Event) -> None:
        if self._writer is not None:
            self._writer.write(event)
        for listener in self.listeners:
            listener(event)

    # --- running episodes ----------------------------------------------------------------------------

    def new_episode(self, question: str) -> Episode:
        return Episode(
            question=question,
            problem=prompts.problem_with_history(question, self.history),
            catalog=self.catalog,
            tools=self.tools,
            policy=self._backend(self.catalog.policy.backend),
            experts=self._experts(),
            ledger=self.ledger,
            settings=EpisodeSettings(variant=self.options.variant, max_rounds=self.options.max_rounds),
            profile=self.options.profile,
        )

    async def ask(self, question: str) -> AsyncIterator[Event]:
        self._open_trajectory()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        try:
            episode = self.new_episode(question)
        except Exception as exc:  # a part failed to build: say so as an event, keep the session usable
            notice = Notice(level="error", message=str(exc))
            self._emit(notice)
            yield notice
            return

        async def pump() -> None:
            try:
                async for event in episode.run():
                    self._emit(event)
                    await queue.put(event)
            except asyncio.CancelledError:
                ended = episode.ended("cancelled")
                self._emit(ended)
                await queue.put(ended)
            except Exception as exc:  # never lose the trajectory to a bug: record it and end cleanly
                ended = episode.ended("error", f"{type(exc).__name__}: {exc}")
                self._emit(ended)
                await queue.put(ended)
            finally:
                await queue.put(_DONE)

        self._task = asyncio.create_task(pump())
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, EpisodeEnded) and item.answer is not None:
                    self.history.append((question, item.answer))
                yield item
        finally:
            task, self._task = self._task, None
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def aclose(self) -> None:
        self.cancel()
        for backend in self._parts.backends.values():
            await backend.aclose()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

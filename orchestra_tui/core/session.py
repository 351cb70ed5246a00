"""A session: a sequence of episodes (questions) under one configuration, with follow-ups.

This is the engine's public face for every consumer (CLI, TUI, eval). A consumer calls
`session.ask(question)` and iterates the events; `session.cancel()` (or cancelling the consumer's task,
as Ctrl+C does) stops the running episode cleanly, and the trajectory records `cancelled`.
Every event is written to the trajectory before the consumer sees it.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestra_tui import __version__
from orchestra_tui.backends.base import ChatBackend
from orchestra_tui.backends.pool import episode_scope
from orchestra_tui.core import prompts
from orchestra_tui.core.availability import alias_problems, backend_problems, key_problem
from orchestra_tui.core.budget import Budget, CallCounts
from orchestra_tui.core.catalog import Catalog, backend_model, load_catalog, with_policy_backend
from orchestra_tui.core.episode import Episode, EpisodeSettings
from orchestra_tui.core.events import EpisodeEnded, EpisodeStarted, Event, Notice, ProfileSwitched
from orchestra_tui.core.profiles import Profile, default_profile_name, find_profile, load_profiles
from orchestra_tui.core.steering import Steering
from orchestra_tui.core.experts import Experts
from orchestra_tui.core.fork import Resume
from orchestra_tui.core.ledger import Ledger, PriceBook
from orchestra_tui.core.toolset import load_tools, tools_hash
from orchestra_tui.core.trajectory import TrajectoryWriter, new_trajectory_path
from orchestra_tui.keys import KEYS
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
    catalog: str | Path | None = None  # None: the profile's catalog, else the embedded one
    variant: prompts.Variant | None = None  # None: the profile's, else the default
    max_rounds: int = 50
    profile: str | None = None  # None: default_profile from the config files
    max_cost: Decimal | None = None  # USD per question, on top of the profile's own limit
    check_endpoints: bool = True  # probe HTTP backends once at start (availability)
    policy_backend: dict[str, Any] | None = None  # replaces the catalog's policy backend (CLI --model/--base-url)
    trajectory: Path | None = None  # None: a new file under the state folder
    record: bool = True
    repair_tool_calls: bool = False  # repair the policy's broken tool calls (flagged in the trajectory)
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
        self.profile: Profile = find_profile(self.options.profile or default_profile_name())
        self.catalog = catalog or load_catalog(self.options.catalog or self.profile.catalog or "embedded")
        self.variant: prompts.Variant = (self.options.variant or self.profile.variant  # type: ignore[assignment]
                                         or prompts.DEFAULT_VARIANT)
        self.budget = Budget(self.profile.budget.usd_per_session, name="session")
        self._pending_profile: Profile | None = None
        self._steering: Steering | None = None  # of the running episode
        self._unavailable: dict[str, str] | None = None
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
        return (self._pending_profile or self.profile).name

    def profile_names(self) -> list[str]:
        return sorted(load_profiles(errors=[]))

    def unavailable(self) -> list[tuple[str, str]]:
        """(alias, reason) for every alias that cannot be used. Before the first question only missing
        keys are known (no network); endpoints are probed when the first question starts."""
        if self._unavailable is None:
            problems = {n: p for n, s in self.catalog.backends.items() if (p := key_problem(s, KEYS))}
            return sorted(alias_problems(self.catalog, problems).items())
        return sorted(self._unavailable.items())

    @property
    def budget_usd(self) -> str | None:
        limit = self._question_limit()
        return None if limit is None else str(limit)

    def switch_profile(self, name: str) -> Profile:
        """Switch now; inside a running episode it takes effect at the next round. Raises ProfileError."""
        new = find_profile(name)
        if self._steering is not None:
            self._steering.pending = new
        self._pending_profile = new
        return new

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

            self._parts.retriever = make_retriever(self.profile.retrieval_spec(self.catalog.retrieval))
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
            retrieval_topk=int(self.catalog.retrieval.get("topk", 50 if self.variant == "hle" else 150)),
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
                "profile": self.profile.name,
                "variant": self.variant,
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

    async def _check_availability(self) -> list[Event]:
        if self._unavailable is not None:
            return []
        problems = await backend_problems(self.catalog, probe=self.options.check_endpoints,
                                          skip=set(self._parts.backends))
        if self.catalog.policy.backend in problems:
            raise RuntimeError(f"the policy backend is unavailable: {problems[self.catalog.policy.backend]}")
        self._unavailable = alias_problems(self.catalog, problems)
        return [Notice(level="warning", message=f"{alias} unavailable — {why}")
                for alias, why in sorted(self._unavailable.items())]

    def _apply_switch_between_episodes(self) -> ProfileSwitched | None:
        new, self._pending_profile = self._pending_profile, None
        if new is None or new == self.profile:
            return None
        old, self.profile = self.profile, new
        self.budget.set_limit(new.budget.usd_per_session)
        return ProfileSwitched(round=None, old=old.name, new=new.name, withheld={}, preference=None)

    def _retrieval_services(self) -> tuple[str, ...]:
        """What one search may bill at worst: the index, plus a web search and an extraction per result."""
        retriever = self._retriever()
        services = [getattr(retriever, "price_key", "retrieval_local")]
        web = getattr(retriever, "web", None) or (retriever if getattr(retriever, "name", "") == "tavily" else None)
        if web is not None:
            services += ["tavily_search"] + ["tavily_extract"] * int(getattr(web, "max_results", 20))
        return tuple(services)

    def _question_limit(self) -> Decimal | None:
        limits = [x for x in (self.profile.budget.usd_per_question, self.options.max_cost) if x is not None]
        return min(limits) if limits else None

    def new_episode(self, question: str, resume: Resume | None = None) -> Episode:
        max_rounds = self.options.max_rounds
        if self.profile.budget.max_rounds:
            max_rounds = min(max_rounds, self.profile.budget.max_rounds)
        steering = Steering(
            profile=self.profile,
            budget=self.budget.child(self._question_limit(), name="question"),
            counts=CallCounts(self.profile.budget.calls_limit),
            unavailable=dict(self._unavailable or {}),
            code_timeout_s=float(self.catalog.code.get("timeout_s", 60)),
            max_cost=self.options.max_cost,
            retrieval_services=self._retrieval_services(),
        )
        # A fork books the copied rounds' spend and calls before its first live round (core/fork.py).
        prior = resume.restore(steering, self.ledger) if resume is not None else 0
        self._steering = steering
        return Episode(
            question=question,
            problem=resume.base_problem if resume else prompts.problem_with_history(question, self.history),
            catalog=self.catalog,
            tools=self.tools,
            policy=self._backend(self.catalog.policy.backend),
            experts=self._experts(),
            ledger=self.ledger,
            settings=EpisodeSettings(variant=self.variant, max_rounds=max_rounds,
                                     repair_tool_calls=self.options.repair_tool_calls),
            steering=steering,
            evidence=resume.evidence.copy() if resume else None,
            resume_after=resume.rounds if resume else None,
            elapsed_s=resume.elapsed_s if resume else 0.0,
            prior_entries=prior,
        )

    async def ask(self, question: str, *, resume: Resume | None = None) -> AsyncIterator[Event]:
        """Run one episode. With `resume` (a fork), the recorded rounds are copied into this session's
        trajectory first and the episode continues live after them under this session's profile."""
        self._open_trajectory()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        try:
            preamble: list[Event] = await self._check_availability()
            if (switched := self._apply_switch_between_episodes()) is not None:
                preamble.append(switched)
            episode = self.new_episode(question, resume)
            if resume is not None:
                preamble.extend(resume.preamble(episode, self.catalog))
        except Exception as exc:  # a part failed to build: say so as events, keep the session usable
            # A complete (if empty) episode, so every consumer and the trajectory see it begin and end.
            failed = [
                Notice(level="error", message=f"cannot start: {exc}"),
                EpisodeStarted(episode_id=uuid.uuid4().hex[:12], question=question, problem=question,
                               variant=self.variant, max_rounds=self.options.max_rounds, profile=self.profile.name,
                               policy={"backend": self.catalog.backends[self.catalog.policy.backend].get("kind"),
                                       "model": self.catalog.policy.model}),
                EpisodeEnded(status="error", answer=None, rounds=0, cost_usd="0", latency_s=0.0,
                             error=f"cannot start: {exc}"),
            ]
            for event in failed:
                self._emit(event)
                yield event
            return
        for event in preamble:
            self._emit(event)
            yield event

        async def pump() -> None:
            episode_scope.set(episode.id)  # calls made in this task are the episode's (pool.py keeps them together)
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
            # A switch asked for during the episode already applied inside it; keep the result.
            if self._steering is not None:
                self.profile = self._steering.profile
                if self._pending_profile == self.profile:
                    self._pending_profile = None
            self._steering = None
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

    def close_sync(self) -> None:
        """Close after the UI's event loop has ended (backends bound to it are dropped, files flushed)."""
        try:
            asyncio.run(self.aclose())
        except RuntimeError:  # a backend tied to the UI's closed loop: the process is ending anyway
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    async def aclose(self) -> None:
        self.cancel()
        for backend in self._parts.backends.values():
            await backend.aclose()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

"""Several endpoints behind one alias: least-load spreading, one endpoint per episode.

A catalog backend of kind "openai" may list several base URLs (`base_url = ["http://a/v1", "http://b/v1"]`,
the same model served by each). `EndpointPool` holds one `OpenAICompatBackend` per URL and is itself a
`ChatBackend`:

- A call made inside an episode (the engine sets `episode_scope` in the episode's task) goes to the endpoint
  that episode was assigned; its first call is assigned the endpoint with the fewest requests in flight
  (ties: fewest episodes assigned, then the order listed). The rounds of one episode share their system
  prompt, problem and documents, so staying on one server keeps its prefix cache warm. A call outside any
  episode is placed on its own, by the same rule.
- An endpoint whose circuit breaker is open is not chosen for a new episode while another one is available.
- When the endpoint fails before sending anything (no answer after its own retries, 5xx, 429, or its
  breaker refused the call), the episode moves to the next least-loaded endpoint and the call is tried there
  once. A refusal of the request itself (another 4xx) proves the server is up and is not retried elsewhere,
  and neither is a stream that broke after text was already handed on.
- Assignments are forgotten when unused for `idle_s`, or, least recently used first, when more than
  `max_episodes` are held; an episode with a call in flight is never forgotten.

The ChatResult passes through unchanged (`model` is what the server reported); which endpoint served is kept
by the pool (`last_endpoint_for`). Nothing here knows about the engine beyond the episode id.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .base import BackendError, ChatBackend, ChatResult, Sampling, TextDelta, Tokenizer
from .breaker import CircuitBreaker, State, backend_unavailable

# The id of the episode whose task is running; None outside episodes (one-off calls, judges, probes).
episode_scope: ContextVar[str | None] = ContextVar("orchestra_tui_episode", default=None)

DEFAULT_MAX_EPISODES = 1024
DEFAULT_IDLE_S = 1800.0  # an episode quiet for half an hour has ended or will find a cold cache anyway


@dataclass
class _Assignment:
    endpoint: int  # index into the pool's endpoints
    last_used: float
    active: int = 0  # calls in flight for this episode
    served: int | None = None  # the endpoint that delivered this episode's last complete answer


class PoolHealth(CircuitBreaker):
    """The pool as the engine's availability check sees it (`breaker.backend_unavailable`): unavailable only
    when every endpoint is. It never gates a call itself; each endpoint's own breaker does."""

    def __init__(self, pool: EndpointPool) -> None:
        super().__init__(f"pool of {len(pool.endpoints)} endpoints")
        self._pool = pool

    @property
    def state(self) -> State:
        return "open" if self.unavailable_reason() else "closed"

    def unavailable_reason(self) -> str | None:
        reasons = [backend_unavailable(backend) for backend in self._pool.members]
        if any(reason is None for reason in reasons):
            return None
        return "every endpoint is unavailable: " + "; ".join(str(r) for r in reasons)

    def admit(self, label: str) -> None:
        return None


def endpoint_label(backend: Any, index: int) -> str:
    return str(getattr(backend, "base_url", None) or f"endpoint {index}")


class EndpointPool:
    kind = "openai"

    def __init__(
        self,
        members: Sequence[ChatBackend],
        *,
        max_episodes: int = DEFAULT_MAX_EPISODES,
        idle_s: float = DEFAULT_IDLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not members:
            raise ValueError("an endpoint pool needs at least one endpoint")
        if max_episodes < 1:
            raise ValueError("max_episodes must be at least 1")
        self.members: tuple[ChatBackend, ...] = tuple(members)
        self.endpoints: tuple[str, ...] = tuple(endpoint_label(b, i) for i, b in enumerate(self.members))
        self.model = self.members[0].model
        self.max_episodes = max_episodes
        self.idle_s = idle_s
        self._clock = clock  # injectable: tests move time instead of waiting for it
        self._in_flight = [0] * len(self.members)
        self._assigned = [0] * len(self.members)  # episodes currently assigned to each endpoint
        self._served = [0] * len(self.members)  # complete answers delivered by each endpoint
        self._episodes: OrderedDict[str, _Assignment] = OrderedDict()  # least recently used first
        self.last_served: str | None = None  # the endpoint of the last complete answer, any episode
        self.breaker = PoolHealth(self)

    @classmethod
    def from_urls(cls, base_urls: Sequence[str], model: str, **options: Any) -> EndpointPool:
        """One `OpenAICompatBackend` per URL, all with the same model, key and options."""
        from .openai_http import OpenAICompatBackend

        return cls([OpenAICompatBackend(url, model, **options) for url in base_urls])

    def __repr__(self) -> str:
        return f"EndpointPool({list(self.endpoints)!r}, {self.model!r})"

    # --- what tests and status displays read --------------------------------------------------------

    @property
    def in_flight(self) -> tuple[int, ...]:
        return tuple(self._in_flight)

    @property
    def assigned(self) -> tuple[int, ...]:
        return tuple(self._assigned)

    @property
    def served(self) -> tuple[int, ...]:
        return tuple(self._served)

    @property
    def episodes(self) -> int:
        """How many episode assignments the pool holds now."""
        return len(self._episodes)

    def endpoint_for(self, episode_id: str) -> str | None:
        """The endpoint the episode's next call will go to, or None when it has no assignment."""
        entry = self._episodes.get(episode_id)
        return None if entry is None else self.endpoints[entry.endpoint]

    def last_endpoint_for(self, episode_id: str) -> str | None:
        """The endpoint that delivered the episode's last complete answer (while its assignment is held)."""
        entry = self._episodes.get(episode_id)
        return None if entry is None or entry.served is None else self.endpoints[entry.served]

    @property
    def tokenizer(self) -> Tokenizer:
        return self.members[0].tokenizer

    # --- placement ----------------------------------------------------------------------------------

    def _least_loaded(self, exclude: Collection[int] = ()) -> int | None:
        candidates = [i for i in range(len(self.members)) if i not in exclude]
        if not candidates:
            return None
        # An endpoint whose breaker is open would refuse at once; choose it only when all are refused.
        healthy = [i for i in candidates if backend_unavailable(self.members[i]) is None]
        return min(healthy or candidates, key=lambda i: (self._in_flight[i], self._assigned[i], i))

    def _forget(self, now: float) -> None:
        """Drop idle assignments, then the least recently used beyond `max_episodes` (none in flight)."""
        for episode_id, entry in list(self._episodes.items()):
            crowded = len(self._episodes) > self.max_episodes
            if not crowded and now - entry.last_used <= self.idle_s:
                break  # least recently used first: every later entry is fresher
            if entry.active:
                continue
            del self._episodes[episode_id]
            self._assigned[entry.endpoint] -= 1

    def _enter(self, episode_id: str) -> _Assignment:
        """The episode's assignment, made now if it has none, marked in use until the call ends."""
        now = self._clock()
        entry = self._episodes.get(episode_id)
        if entry is None:
            index = self._least_loaded()
            assert index is not None
            entry = self._episodes[episode_id] = _Assignment(index, now)
            self._assigned[index] += 1
        else:
            entry.last_used = now
            self._episodes.move_to_end(episode_id)
        entry.active += 1  # before forgetting: a new entry must not be the one dropped
        self._forget(now)
        return entry

    def _move(self, entry: _Assignment | None, index: int) -> None:
        if entry is not None and entry.endpoint != index:
            self._assigned[entry.endpoint] -= 1
            self._assigned[index] += 1
            entry.endpoint = index

    # --- the ChatBackend call -------------------------------------------------------------------------

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        sampling: Sampling,
        constrain_tool_call: bool = False,
    ) -> AsyncIterator[TextDelta | ChatResult]:
        episode_id = episode_scope.get()
        entry = self._enter(episode_id) if episode_id is not None else None
        index = entry.endpoint if entry is not None else self._least_loaded()
        assert index is not None
        tried: set[int] = set()
        try:
            while True:
                current = index
                tried.add(current)
                handed_on = False
                self._in_flight[current] += 1
                try:
                    items = self.members[current].stream(messages, tools=tools, sampling=sampling,
                                                         constrain_tool_call=constrain_tool_call)
                    try:
                        async for item in items:
                            if isinstance(item, ChatResult):
                                self._served[current] += 1
                                self.last_served = self.endpoints[current]
                                if entry is not None:
                                    entry.served = current
                            handed_on = True
                            yield item
                    finally:
                        aclose = getattr(items, "aclose", None)
                        if aclose is not None:
                            await aclose()
                    return
                except BackendError as exc:
                    # Text already handed on cannot be taken back; a refused request would be refused anywhere.
                    if handed_on or not getattr(exc, "endpoint_fault", True) or len(tried) > 1:
                        raise
                    other = self._least_loaded(exclude=tried)
                    if other is None:
                        raise
                    self._move(entry, other)
                    index = other
                finally:
                    self._in_flight[current] -= 1
        finally:
            if entry is not None and episode_id is not None:
                entry.active -= 1
                entry.last_used = self._clock()
                self._episodes.move_to_end(episode_id)  # held while in use, so still there

    async def aclose(self) -> None:
        for backend in self.members:
            await backend.aclose()

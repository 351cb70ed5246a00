"""A circuit breaker per endpoint: a server that keeps failing is left alone for a while.

Retries (http_session.py) cover one request; the breaker covers the calls after it. After `threshold`
failed calls in a row to one base URL the breaker opens: for `cooldown_s` every call to that endpoint fails
at once with `EndpointUnavailable`, which says until when, instead of burning another round of retries and
timeouts. When the cool-down is over one call goes through as a probe (half-open): if it succeeds the
breaker closes, if it fails the breaker opens again for another cool-down. A server whose `Retry-After`
outlasted the retries keeps calls away until the time it asked for.

Only the health of the endpoint counts: a refused request (a 4xx other than 429) proves the server is up,
and a call abandoned by its caller proves nothing either way.

Breakers are shared by every backend that talks to the same base URL (two aliases on one vLLM server fail
together) and live as long as one of those backends does.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, Literal

from .base import BackendError

DEFAULT_THRESHOLD = 3  # failed calls in a row; each call has already been retried by the HTTP session
DEFAULT_COOLDOWN_S = 60.0

State = Literal["closed", "open", "half_open"]


class EndpointUnavailable(BackendError):
    """The breaker is open: the call was not sent. `until` is the wall-clock time it may be tried again."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


def clock_text(wall_time: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall_time))


class CircuitBreaker:
    def __init__(
        self,
        endpoint: str,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.endpoint = endpoint
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        # Injectable clocks: tests move time instead of waiting for it.
        self._clock = clock
        self._wall_clock = wall_clock
        self.failures = 0  # consecutive failed calls
        self.last_error = ""
        self._open_until: float | None = None  # monotonic time the cool-down ends; None while closed
        self._probing = False  # a half-open probe is in flight
        # A server's Retry-After that outlasted the retries: no call before then, but no probe either.
        self._quiet_until = float("-inf")

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.endpoint!r}, state={self.state!r}, failures={self.failures})"

    @property
    def state(self) -> State:
        now = self._clock()
        if self._open_until is None:
            return "open" if now < self._quiet_until else "closed"
        if self._probing or now >= max(self._open_until, self._quiet_until):
            return "half_open"
        return "open"

    def _until(self) -> float:
        """The monotonic time calls may start again."""
        return max(self._open_until or float("-inf"), self._quiet_until)

    def _until_wall(self) -> float:
        return self._wall_clock() + max(0.0, self._until() - self._clock())

    def unavailable_reason(self) -> str | None:
        """Why the endpoint may not be called now, or None when a call would go through. Reading it changes
        nothing, so the engine may ask before every round (a cooled-down endpoint reads as available: the
        next call is its probe)."""
        state = self.state
        if state == "open":
            return (f"{self.endpoint} is unavailable until {clock_text(self._until_wall())} "
                    f"after {self.failures} failed call(s) in a row (last: {self.last_error})")
        if state == "half_open" and self._probing:
            return f"{self.endpoint} is being probed after {self.failures} failed call(s) in a row"
        return None

    def admit(self, label: str) -> None:
        """Call before each request; raises `EndpointUnavailable` when the call must not be sent. Every
        admitted call must end in `succeeded`, `failed` or `abandoned`."""
        reason = self.unavailable_reason()
        if reason is not None:
            raise EndpointUnavailable(f"{label}: {reason}", self._until_wall())
        if self._open_until is not None:
            self._probing = True  # the cool-down is over: this call is the one probe

    def succeeded(self) -> None:
        self.failures = 0
        self.last_error = ""
        self._open_until = None
        self._probing = False

    def failed(self, error: str, *, retry_after: float | None = None) -> None:
        """Count a failed call. `retry_after`: the server asked for that many seconds of quiet and the
        retries gave up first; no call goes out before then, and if the breaker opens it stays open at
        least that long."""
        self.failures += 1
        self.last_error = error
        was_probe, self._probing = self._probing, False
        now = self._clock()
        if retry_after is not None:
            self._quiet_until = max(self._quiet_until, now + retry_after)
        if was_probe or self.failures >= self.threshold:
            self._open_until = now + self.cooldown_s

    def abandoned(self) -> None:
        """The call ended without saying anything about the endpoint (cancelled, no API key): a probe slot
        it held is freed so the next call can probe."""
        self._probing = False


_BREAKERS: weakref.WeakValueDictionary[str, CircuitBreaker] = weakref.WeakValueDictionary()


def endpoint_key(base_url: str) -> str:
    return base_url.rstrip("/").lower()


def endpoint_breaker(base_url: str, **options: Any) -> CircuitBreaker:
    """The breaker of one endpoint, shared with every live backend using the same base URL. `options`
    (threshold, cooldown_s) apply when the breaker is created; the first backend's settings win."""
    key = endpoint_key(base_url)
    breaker = _BREAKERS.get(key)
    if breaker is None:
        breaker = CircuitBreaker(base_url.rstrip("/"), **options)
        _BREAKERS[key] = breaker
    return breaker


def backend_unavailable(backend: Any) -> str | None:
    """Why a backend's endpoint may not be called now (its breaker is open), or None. Works on any backend:
    those without a breaker (in-process, scripted) are always available."""
    breaker = getattr(backend, "breaker", None)
    return breaker.unavailable_reason() if isinstance(breaker, CircuitBreaker) else None

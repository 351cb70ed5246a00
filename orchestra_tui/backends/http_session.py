"""One HTTP session per OpenAI-compatible endpoint: the API key, timeouts and the only retry loop.

Every request of the HTTP backend (chat streams, tokenizer calls, model listing) goes through
`HttpSession.send`, so retry behaviour is decided in one place: connection errors, 429 and 5xx are retried
before the first byte of a response with jittered exponential backoff (or the server's `Retry-After`),
for a bounded number of attempts and a bounded total time. The reference harness retried forever and
silently; we give up with a short message the user can act on.

Every call has three clocks: the connect timeout, the read timeout (the longest silence between two
bytes) and a total deadline for the whole call, retries and a streamed body included (`within`), so a
server that trickles bytes forever cannot hold an episode either. Whether an endpoint keeps failing across
calls is the circuit breaker's business (breaker.py), one layer up.

The API key is read from the named environment variable at each request and lives only in that request's
headers. Error messages name the host and status, never the key; server bodies are scrubbed before they
are quoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    wait_random_exponential,
)

from orchestra_tui.keys import read_key

from .base import BackendError

DEFAULT_TIMEOUT = 600.0  # seconds between two streamed bytes; a long prompt can take minutes to prefill
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 3
DEFAULT_RETRY_BUDGET = 60.0  # total seconds spent retrying one request
# The whole call, a streamed answer included: 12000 tokens at a slow 10 tokens/s still fit.
DEFAULT_TOTAL_TIMEOUT = 1800.0
DEFAULT_BACKOFF_MAX = 8.0

_BODY_QUOTE_CHARS = 200
_SECRET_LIKE = re.compile(r"(sk-[A-Za-z0-9_\-*]{4,}|Bearer\s+\S+)")


class HttpBackendError(BackendError):
    """A request failed; `status` is the HTTP status, or None when no (complete) answer came: connection,
    timeout, a stream that broke or made no sense. `retry_after` is the server's last `Retry-After`."""

    def __init__(self, message: str, status: int | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def endpoint_fault(self) -> bool:
        """The endpoint is unwell (what a circuit breaker counts); False when it answered and refused the
        request itself (a 4xx other than 429), which says the server is up."""
        return self.status is None or self.status == 429 or self.status >= 500


class _Retryable(Exception):
    """A failure before the first byte that is worth another attempt."""

    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpSession:
    def __init__(
        self,
        base_url: str,
        *,
        label: str,
        api_key_env: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_attempts: int = DEFAULT_ATTEMPTS,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if total_timeout <= 0:
            raise ValueError("total_timeout must be > 0")
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc or self.base_url
        self.label = label
        self.api_key_env = api_key_env
        self._headers = dict(headers or {})
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.max_attempts = max_attempts
        self.retry_budget = retry_budget
        self.total_timeout = total_timeout
        self._backoff = wait_random_exponential(multiplier=0.5, max=backoff_max)
        # httpx pools are bound to the event loop that created them; tests and the CLI may run several.
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"HttpSession({self.base_url!r}, api_key_env={self.api_key_env!r})"

    # -- key handling ---------------------------------------------------------------------------------

    def _api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = read_key(self.api_key_env)
        if not key:
            raise BackendError(f"{self.label}: environment variable {self.api_key_env} is not set")
        return key

    def scrub(self, text: str) -> str:
        """Remove anything key-like from text that came from a server before it is shown."""
        key = read_key(self.api_key_env) if self.api_key_env else None
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return _SECRET_LIKE.sub("***", text)

    # -- requests -------------------------------------------------------------------------------------

    def _client_now(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self._timeout)
            self._client_loop = loop
        return self._client

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def deadline(self) -> float:
        """When a call starting now must be over (`time.monotonic()` seconds)."""
        return time.monotonic() + self.total_timeout

    @contextlib.asynccontextmanager
    async def within(self, deadline: float) -> AsyncIterator[None]:
        """Bound the awaits inside by the call's deadline. Never hold it across a `yield` of a streaming
        generator: the time the consumer spends between items is not the server's."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                yield
        except TimeoutError:
            raise HttpBackendError(
                f"{self.label}: no complete answer from {self.host} within {self.total_timeout:g} s", None
            ) from None

    async def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        attempts: int | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send with retries; a 2xx response is returned (unread when `stream`), anything else raises
        `BackendError`. With `stream=True` the caller must `aclose()` the response. `attempts` overrides
        the session's bound for this request (1 = no retry); `deadline` (from `deadline()`) bounds it, by
        default `total_timeout` from now."""
        async with self.within(self.deadline() if deadline is None else deadline):
            return await self._send_retrying(method, url, json=json, stream=stream, headers=headers,
                                             attempts=attempts)

    async def _send_retrying(
        self, method: str, url: str, *, json: Any, stream: bool, headers: dict[str, str] | None,
        attempts: int | None,
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_any(
                stop_after_attempt(attempts or self.max_attempts),
                stop_after_delay(self.retry_budget),
                self._retry_after_too_long,
            ),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_once(method, url, json=json, stream=stream, headers=headers)
        except _Retryable as exc:
            attempts = retrying.statistics.get("attempt_number", self.max_attempts)
            raise HttpBackendError(
                f"{self.label}: {exc.reason} from {self.host} after {attempts} attempt(s)", exc.status,
                retry_after=exc.retry_after,
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _send_once(
        self, method: str, url: str, *, json: Any, stream: bool, headers: dict[str, str] | None
    ) -> httpx.Response:
        all_headers = {**self._headers, **(headers or {})}
        key = self._api_key()
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        client = self._client_now()
        request = client.build_request(method, url, json=json, headers=all_headers)
        try:
            response = await client.send(request, stream=stream)
        except httpx.TransportError as exc:
            # The class name says enough (ConnectError, ReadTimeout...); str(exc) may carry request details.
            raise _Retryable(type(exc).__name__) from None
        if response.is_success:
            return response
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            await response.aclose()
            raise _Retryable(f"HTTP {status}", retry_after, status)
        try:
            body = (await response.aread()).decode("utf-8", errors="replace")
        except httpx.HTTPError:
            body = ""
        finally:
            await response.aclose()
        raise HttpBackendError(self._client_error_message(status, body), status)

    def _client_error_message(self, status: int, body: str) -> str:
        message = f"{self.label}: HTTP {status} from {self.host}"
        if status in (401, 403):
            # Auth error bodies sometimes echo part of the key; say where the key comes from instead.
            where = f" (key from ${self.api_key_env})" if self.api_key_env else " (no API key configured)"
            return message + where
        quoted = " ".join(self.scrub(body).split())[:_BODY_QUOTE_CHARS]
        return f"{message}: {quoted}" if quoted else message

    # -- tenacity policy ------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return self._backoff(state)

    def _retry_after_too_long(self, state: RetryCallState) -> bool:
        """Stop at once when the server asks us to wait past the retry budget."""
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, _Retryable) or exc.retry_after is None:
            return False
        return exc.retry_after > self.retry_budget - state.seconds_since_start

    async def aclose(self) -> None:
        if self._client is not None and not self._client.is_closed:
            try:
                await self._client.aclose()
            except RuntimeError:
                pass  # its loop is gone; the sockets went with it
        self._client = None

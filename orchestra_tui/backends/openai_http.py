"""OpenAI-compatible chat over HTTP: vLLM, llama.cpp servers, Ollama, OpenAI.

Streams `POST {base_url}/chat/completions` as server-sent events. Thinking arrives either inside the
content (vLLM without a reasoning parser, which is how the reference serves Orchestrator-8B) or split out as
`reasoning_content` / `reasoning`; tool calls arrive either parsed (`delta.tool_calls`) or, when the server
has no tool parser, as hermes `<tool_call>` blocks in the content, which are parsed here.

Retries, timeouts and the API key are handled by `HttpSession` (see there). Each chat call also passes the
endpoint's circuit breaker (breaker.py): a call is admitted, then reported as succeeded (a complete
answer, or a 4xx that proves the server is up), failed (no answer, 429/5xx after the retries, a stream
that broke, stalled or made no sense) or abandoned (the consumer stopped reading, no API key).

A stream is complete only when it says so, with `[DONE]` or a `finish_reason`: a server that dies between
two events may close the connection cleanly, and half an answer must not pass for a whole one.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
from httpx_sse import EventSource, SSEError

from .base import BackendError, ChatResult, Sampling, TextDelta, Tokenizer, ToolCall, Usage
from .breaker import DEFAULT_COOLDOWN_S, DEFAULT_THRESHOLD, CircuitBreaker, endpoint_breaker
from .hermes import parse_tool_calls
from .http_session import (
    DEFAULT_ATTEMPTS,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RETRY_BUDGET,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    HttpBackendError,
    HttpSession,
)
from .remote_tokenizer import ServerTokenizer, TransformersTokenizer

ParamStyle = Literal["default", "openai"]


class StreamAccumulator:
    """Folds chat-completion chunks into deltas and one final message. Pure: no I/O, unit-testable."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, dict[str, list[str]]] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None

    def feed(self, chunk: dict[str, Any]) -> list[TextDelta]:
        """Take one decoded chunk; return the text it adds, in order."""
        if isinstance(chunk.get("error"), (dict, str)):
            # Servers report failures after the headers as an error event inside the stream.
            error = chunk["error"]
            message = error.get("message", "") if isinstance(error, dict) else error
            raise BackendError(f"server error in stream: {str(message)[:200]}")
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = _usage(chunk["usage"])
        deltas: list[TextDelta] = []
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            for key in ("reasoning_content", "reasoning"):
                piece = delta.get(key)
                if isinstance(piece, str) and piece:
                    self._reasoning.append(piece)
                    deltas.append(TextDelta(piece, reasoning=True))
                    break  # some servers send both keys with the same text
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                self._content.append(piece)
                deltas.append(TextDelta(piece))
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                self._add_call_fragment(call)
        return deltas

    def _add_call_fragment(self, call: Any) -> None:
        if not isinstance(call, dict):
            return
        # Streaming servers number the calls; some (Ollama) send whole calls without an index.
        index = call.get("index")
        if not isinstance(index, int):
            index = len(self._calls)
        slot = self._calls.setdefault(index, {"name": [], "arguments": []})
        function = call.get("function")
        if not isinstance(function, dict):
            return
        if isinstance(function.get("name"), str):
            slot["name"].append(function["name"])
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            slot["arguments"].append(arguments)
        elif arguments is not None:
            slot["arguments"].append(json.dumps(arguments, ensure_ascii=False))

    @property
    def content(self) -> str:
        return "".join(self._content)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    def tool_calls(self, *, parse_content: bool = True) -> list[ToolCall]:
        """The server's parsed calls; else, when `parse_content`, hermes blocks found in the content."""
        if self._calls:
            return [
                ToolCall(name="".join(slot["name"]), arguments="".join(slot["arguments"]))
                for _, slot in sorted(self._calls.items())
            ]
        return parse_tool_calls(self.content) if parse_content else []


def _count(value: Any) -> int:
    """A token count as servers send it (an int, sometimes a float); anything else counts as unknown."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 2**63:
        return 0
    return int(value)


def _usage(raw: dict[str, Any]) -> Usage:
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=_count(raw.get("prompt_tokens")),
        completion_tokens=_count(raw.get("completion_tokens")),
        cached_tokens=_count(cached) if isinstance(cached, int) else None,
    )


class OpenAICompatBackend:
    """Chat with any OpenAI-compatible server.

    `param_style="openai"` sends `max_completion_tokens` (GPT-5 and o-series reject `max_tokens`) and
    leaves out `top_k`, which the OpenAI API does not accept. `sampling.extra` is merged into the body last;
    an extra key set to None removes that key (e.g. `{"temperature": None}` for models that allow only the
    default).

    `constrain_tool_call=True` sends the tool-call GBNF as `grammar`, which both llama.cpp servers honour;
    vLLM ignores unknown fields, and with `param_style="openai"` nothing is sent since OpenAI rejects them.
    The same holds for `cache_prompt: true` (llama.cpp servers' prefix reuse; vLLM caches prefixes when
    launched with `--enable-prefix-caching`); `extra={"cache_prompt": None}` leaves it out.

    The server-side usage chunk is requested with `stream_options.include_usage`. A server that never
    sends one (llama-cpp-python's server, for instance) gets `Usage(estimated=True)` counted with its
    tokenizer: the completion exactly, the prompt as the message texts and tool list without the chat
    template's framing (the rendered prompt is not known on this side), so a slight undercount.
    """

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        param_style: ParamStyle = "default",
        tokenizer_path: str | None = None,
        headers: dict[str, str] | None = None,
        max_attempts: int = DEFAULT_ATTEMPTS,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        breaker_threshold: int = DEFAULT_THRESHOLD,
        breaker_cooldown: float = DEFAULT_COOLDOWN_S,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if param_style not in ("default", "openai"):
            raise ValueError(f"param_style must be 'default' or 'openai', not {param_style!r}")
        self.model = model
        self.param_style = param_style
        self._session = HttpSession(
            base_url,
            label=f"model {model!r}",
            api_key_env=api_key_env,
            headers=headers,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_attempts=max_attempts,
            retry_budget=retry_budget,
            total_timeout=total_timeout,
            backoff_max=backoff_max,
        )
        # Shared with every backend on the same base URL unless one is given (tests give their own).
        self.breaker = breaker or endpoint_breaker(
            base_url, threshold=breaker_threshold, cooldown_s=breaker_cooldown
        )
        self._tokenizer_path = tokenizer_path
        self._tokenizer: Tokenizer | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatBackend({self._session.base_url!r}, {self.model!r})"

    @property
    def base_url(self) -> str:
        return self._session.base_url

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            if self._tokenizer_path:
                self._tokenizer = TransformersTokenizer(self._tokenizer_path)
            else:
                self._tokenizer = ServerTokenizer(self._session, self.model)
        return self._tokenizer

    def request_body(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None,
        sampling: Sampling,
        constrain_tool_call: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": sampling.temperature,
        }
        body["max_completion_tokens" if self.param_style == "openai" else "max_tokens"] = sampling.max_tokens
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling.top_k is not None and self.param_style != "openai":
            body["top_k"] = sampling.top_k
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if self.param_style != "openai":
            # llama.cpp servers keep a request's KV cache for the next one only when asked (older builds
            # default to false); each round re-sends the same system prompt, tool list and documents.
            body["cache_prompt"] = True
        if tools:
            body["tools"] = tools
            if constrain_tool_call and self.param_style != "openai":
                from .tool_grammar import tool_call_gbnf

                body["grammar"] = tool_call_gbnf(tools)
        body.update(sampling.extra)
        return {k: v for k, v in body.items() if v is not None}

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        sampling: Sampling,
        constrain_tool_call: bool = False,
    ) -> AsyncIterator[TextDelta | ChatResult]:
        self.breaker.admit(self._session.label)  # raises EndpointUnavailable: nothing is sent
        settled = False
        try:
            calls = self._stream_once(messages, tools=tools, sampling=sampling,
                                      constrain_tool_call=constrain_tool_call)
            async with contextlib.aclosing(calls) as items:
                async for item in items:
                    if isinstance(item, ChatResult):
                        # Settled before handing it over: a consumer may stop reading after the result.
                        self.breaker.succeeded()
                        settled = True
                    yield item
        except HttpBackendError as exc:
            if not settled:
                settled = True
                if exc.endpoint_fault:
                    self.breaker.failed(str(exc), retry_after=exc.retry_after)
                else:
                    self.breaker.succeeded()
            raise
        finally:
            if not settled:
                self.breaker.abandoned()

    async def _stream_once(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None,
        sampling: Sampling,
        constrain_tool_call: bool,
    ) -> AsyncIterator[TextDelta | ChatResult]:
        session = self._session
        body = self.request_body(messages, tools=tools, sampling=sampling, constrain_tool_call=constrain_tool_call)
        started = time.perf_counter()
        deadline = session.deadline()
        first_token_s: float | None = None
        acc = StreamAccumulator()
        response = await session.send("POST", session.url("chat/completions"), json=body, stream=True,
                                      deadline=deadline)
        done = False
        try:
            events = EventSource(response).aiter_sse()
            while True:
                # The deadline covers the wait for each event, never the consumer's time between them.
                async with session.within(deadline):
                    event = await anext(events, None)
                if event is None:
                    break
                data = event.data.strip()
                if not data:
                    continue
                if data == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(data)
                except (ValueError, RecursionError):
                    # A chunk we cannot read may have held text or a tool call: go on and the answer
                    # would be silently incomplete.
                    raise self._broken("sent an event that is not JSON") from None
                if not isinstance(chunk, dict):
                    raise self._broken("sent an event that is not a JSON object")
                try:
                    deltas = acc.feed(chunk)
                except BackendError as exc:
                    raise HttpBackendError(f"{session.label}: {session.scrub(str(exc))}") from None
                for delta in deltas:
                    if first_token_s is None:
                        first_token_s = time.perf_counter() - started
                    yield delta
        except SSEError:
            raise self._broken("did not answer with an event stream") from None
        except httpx.HTTPError as exc:
            # TransportError (reset, read timeout between two events) or a body that does not decode.
            raise self._broken(f"broke the stream ({type(exc).__name__})") from None
        finally:
            await response.aclose()
        if not done and acc.finish_reason is None:
            raise self._broken("ended the stream before the answer was complete")
        usage = acc.usage or await self._estimated_usage(messages, tools, acc)
        yield ChatResult(
            content=acc.content,
            tool_calls=acc.tool_calls(parse_content=bool(tools)),
            usage=usage,
            seconds=time.perf_counter() - started,
            reasoning=acc.reasoning,
            finish_reason=acc.finish_reason,
            model=acc.model or self.model,
            first_token_s=first_token_s,
        )

    def _broken(self, what: str) -> HttpBackendError:
        """A stream that failed after the headers: not retried (its text may already be on screen)."""
        return HttpBackendError(f"{self._session.label}: {self._session.host} {what}", None)

    async def _estimated_usage(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, acc: StreamAccumulator
    ) -> Usage:
        prompt_text = "\n".join(m["content"] for m in messages if isinstance(m.get("content"), str))
        if tools:
            prompt_text += "\n" + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        try:
            prompt = len(await self.tokenizer.encode(prompt_text)) if prompt_text else 0
            completion_text = acc.reasoning + acc.content
            completion = len(await self.tokenizer.encode(completion_text)) if completion_text else 0
        except BackendError:
            return Usage(estimated=True)  # no tokenizer either: the counts are unknown, not zero-cost
        return Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=True)

    async def list_models(self) -> list[str]:
        """Model ids the server offers (`GET /models`); also the health check."""
        response = await self._session.send("GET", self._session.url("models"))
        try:
            data = response.json().get("data") or []
        except (ValueError, AttributeError):
            raise BackendError(f"{self._session.label}: malformed model list from {self._session.host}") from None
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def aclose(self) -> None:
        await self._session.aclose()

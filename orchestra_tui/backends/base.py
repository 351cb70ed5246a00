"""The one small interface every chat backend implements, for the policy and for every expert.

A call is `backend.stream(messages, tools=..., sampling=...)`: an async iterator of `TextDelta`s followed by
exactly one `ChatResult` (the whole message, parsed tool calls, usage and timings). Backends own their
retries; the engine never retries a call itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    max_tokens: int = 12000
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # passed through to the server as-is


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # raw JSON text as the model wrote it; validation is the engine's job


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None  # prompt tokens served from a prefix cache, when known
    # True when the server reported no usage and the counts were estimated with its tokenizer.
    estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
        }
        if self.estimated:
            out["estimated"] = True
        return out


@dataclass(frozen=True)
class TextDelta:
    text: str
    reasoning: bool = False  # True when the server streams thinking separately (reasoning_content)


@dataclass(frozen=True)
class ChatResult:
    content: str
    tool_calls: list[ToolCall]
    usage: Usage
    seconds: float
    reasoning: str = ""  # reasoning_content when the server split it out
    finish_reason: str | None = None
    model: str = ""
    first_token_s: float | None = None


class BackendError(RuntimeError):
    """A call failed after the backend's own retries; the message is safe to show (no secrets)."""


@runtime_checkable
class Tokenizer(Protocol):
    """The policy's own tokenizer, used to truncate context exactly as the reference does."""

    async def encode(self, text: str) -> list[int]: ...

    async def decode_each(self, ids: list[int]) -> list[str]:
        """Decode token by token (the reference joins per-token decodes)."""
        ...


@runtime_checkable
class ChatBackend(Protocol):
    kind: str  # "llamacpp" | "openai"
    model: str  # the model name reported in events and used for prices

    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        sampling: Sampling,
        constrain_tool_call: bool = False,
    ) -> AsyncIterator[TextDelta | ChatResult]: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    async def aclose(self) -> None: ...


async def complete(backend: ChatBackend, messages: list[dict[str, Any]], **kwargs: Any) -> ChatResult:
    """Drain a stream and return its final result."""
    result: ChatResult | None = None
    async for item in backend.stream(messages, **kwargs):
        if isinstance(item, ChatResult):
            result = item
    if result is None:
        raise BackendError(f"{backend.kind} backend {backend.model!r} ended without a result")
    return result

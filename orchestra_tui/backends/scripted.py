"""A scripted backend: fixed replies, fixed token counts, no model.

For faults and determinism only (tests, benchmarks, UI snapshots) — never the only proof that a path
works. Replies are strings or callables `(messages, tools) -> str`; tool calls are parsed from the reply
text exactly as from a real server's content.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from orchestra_tui.backends.base import BackendError, ChatResult, Sampling, TextDelta, Usage
from orchestra_tui.backends.hermes import parse_tool_calls

Reply = str | Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], str] | BaseException

_PIECE = re.compile(r"\s*\S+|\s+")


class WordTokenizer:
    """Whitespace-attached word pieces: deterministic, exact round trip, about one token per word."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []

    async def encode(self, text: str) -> list[int]:
        out = []
        for piece in _PIECE.findall(text):
            if piece not in self._ids:
                self._ids[piece] = len(self._pieces)
                self._pieces.append(piece)
            out.append(self._ids[piece])
        return out

    async def decode_each(self, ids: list[int]) -> list[str]:
        return [self._pieces[i] for i in ids]


class ScriptedBackend:
    kind = "scripted"

    def __init__(self, replies: Sequence[Reply] | Reply, *, model: str = "scripted", chunk: int = 8,
                 repeat_last: bool = True) -> None:
        self.model = model
        self._replies = list(replies) if isinstance(replies, (list, tuple)) else [replies]
        self._chunk = chunk
        self._repeat_last = repeat_last
        self._tokenizer = WordTokenizer()
        self.calls: list[dict[str, Any]] = []  # what each call received, for assertions

    @property
    def tokenizer(self) -> WordTokenizer:
        return self._tokenizer

    def _next(self) -> Reply:
        if not self._replies:
            raise BackendError("scripted backend has no reply left")
        if len(self._replies) == 1 and self._repeat_last:
            return self._replies[0]
        return self._replies.pop(0)

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        sampling: Sampling,
        constrain_tool_call: bool = False,
    ) -> AsyncIterator[TextDelta | ChatResult]:
        started = time.monotonic()
        self.calls.append({"messages": messages, "tools": tools, "sampling": sampling})
        reply = self._next()
        if isinstance(reply, BaseException):
            raise reply
        text = reply(messages, tools) if callable(reply) else reply
        for i in range(0, len(text), self._chunk):
            yield TextDelta(text[i : i + self._chunk])
        prompt_tokens = 0
        for message in messages:
            prompt_tokens += len(await self._tokenizer.encode(str(message.get("content", ""))))
        yield ChatResult(
            content=text,
            tool_calls=parse_tool_calls(text),
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(await self._tokenizer.encode(text))),
            seconds=time.monotonic() - started,
            finish_reason="stop",
            model=self.model,
        )

    async def aclose(self) -> None:
        return None


def tool_call_text(name: str, alias: str, thinking: str = "") -> str:
    """A policy reply in the model's own style."""
    think = f"<think>\n{thinking}\n</think>\n\n" if thinking else ""
    return f'{think}<tool_call>\n{{"name": "{name}", "arguments": {{"model": "{alias}"}}}}\n</tool_call>'

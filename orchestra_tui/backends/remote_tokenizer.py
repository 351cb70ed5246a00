"""Tokenizers for models that live behind an HTTP server.

The engine truncates context by the policy's own tokens, so an HTTP backend needs the server model's
tokenizer. Either a local Hugging Face tokenizer folder (`TransformersTokenizer`, exact and fast), or the
server's own tokenize endpoints (`ServerTokenizer`), whose dialect is detected once:

- vLLM: `POST /tokenize {"model", "prompt", "add_special_tokens": false}` -> `tokens`,
  `POST /detokenize {"model", "tokens"}` -> `prompt`;
- llama.cpp's C++ server: `POST /tokenize {"content", "add_special": false}` -> `tokens`,
  `POST /detokenize {"tokens"}` -> `content`;
- llama-cpp-python's server: `POST /tokenize {"input"}` -> `tokens`, `POST /detokenize {"tokens"}` -> `text`
  (older releases serve the same under `/extras/`). It always adds BOS, so the tokens of an empty string
  are taken as the prefix the server adds and are stripped from every answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import BackendError
from .http_session import HttpBackendError, HttpSession


@dataclass(frozen=True)
class _Dialect:
    name: str
    tokenize_path: str
    detokenize_path: str
    encode_body: Callable[[str, str], dict[str, Any]]
    tokens_key: str
    decode_body: Callable[[list[int], str], dict[str, Any]]
    text_key: str


_DIALECTS = (
    _Dialect(
        "vllm",
        "tokenize",
        "detokenize",
        lambda text, model: {"model": model, "prompt": text, "add_special_tokens": False},
        "tokens",
        lambda ids, model: {"model": model, "tokens": ids},
        "prompt",
    ),
    _Dialect(
        "llama-server",
        "tokenize",
        "detokenize",
        lambda text, model: {"content": text, "add_special": False},
        "tokens",
        lambda ids, model: {"tokens": ids},
        "content",
    ),
    _Dialect(
        "llama-cpp-python",
        "tokenize",
        "detokenize",
        lambda text, model: {"input": text, "model": model},
        "tokens",
        lambda ids, model: {"tokens": ids, "model": model},
        "text",
    ),
    _Dialect(
        "llama-cpp-python-extras",
        "extras/tokenize",
        "extras/detokenize",
        lambda text, model: {"input": text, "model": model},
        "tokens",
        lambda ids, model: {"tokens": ids, "model": model},
        "text",
    ),
)


def server_root(base_url: str) -> str:
    """The server root: tokenize endpoints sit beside `/v1`, not under it."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _token_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return value
    return None


class ServerTokenizer:
    """Tokenizer over the server's tokenize/detokenize endpoints.

    `decode_each` decodes the whole id list in one request and returns it as a single-element list: the
    engine only ever joins the pieces, and one round trip per token would be far too slow.
    """

    def __init__(self, session: HttpSession, model: str) -> None:
        self._session = session
        self._model = model
        self._root = server_root(session.base_url)
        self._dialect: _Dialect | None = None
        self._added_prefix: list[int] = []
        self._none_found = False  # remembered so a server without endpoints is probed only once
        self._detect_lock: asyncio.Lock | None = None

    @property
    def dialect(self) -> str | None:
        return self._dialect.name if self._dialect else None

    async def _post(self, path: str, body: dict[str, Any], *, attempts: int | None = None) -> Any:
        response = await self._session.send("POST", f"{self._root}/{path}", json=body, attempts=attempts)
        try:
            return response.json()
        except ValueError:
            return None

    async def _try_tokenize(self, dialect: _Dialect, text: str) -> list[int] | None:
        # Probes are not retried: a wrong dialect often answers 4xx/5xx and that is the expected outcome.
        try:
            answer = await self._post(dialect.tokenize_path, dialect.encode_body(text, self._model), attempts=1)
        except HttpBackendError as exc:
            if exc.status is None:
                raise  # the server is unreachable: that says nothing about its dialect
            return None
        return _token_list(answer.get(dialect.tokens_key)) if isinstance(answer, dict) else None

    async def _detect(self) -> _Dialect:
        if self._dialect is not None:
            return self._dialect
        if self._detect_lock is None:
            self._detect_lock = asyncio.Lock()
        async with self._detect_lock:
            if self._dialect is not None:
                return self._dialect
            for dialect in ([] if self._none_found else _DIALECTS):
                # Probe with real text: some servers ignore a body they do not understand and answer [].
                if not await self._try_tokenize(dialect, "probe"):
                    continue
                self._added_prefix = await self._try_tokenize(dialect, "") or []
                self._dialect = dialect
                return dialect
            self._none_found = True
        raise BackendError(
            f"{self._session.label}: {self._session.host} offers no tokenize endpoint; set tokenizer_path"
        )

    async def encode(self, text: str) -> list[int]:
        dialect = await self._detect()
        answer = await self._post(dialect.tokenize_path, dialect.encode_body(text, self._model))
        tokens = _token_list(answer.get(dialect.tokens_key)) if isinstance(answer, dict) else None
        if tokens is None:
            raise BackendError(f"{self._session.label}: malformed tokenize answer from {self._session.host}")
        prefix = self._added_prefix
        if prefix and tokens[: len(prefix)] == prefix:
            tokens = tokens[len(prefix) :]
        return tokens

    async def decode_each(self, ids: list[int]) -> list[str]:
        if not ids:
            return []
        dialect = await self._detect()
        answer = await self._post(dialect.detokenize_path, dialect.decode_body(list(ids), self._model))
        text = answer.get(dialect.text_key) if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise BackendError(f"{self._session.label}: malformed detokenize answer from {self._session.host}")
        return [text]


class TransformersTokenizer:
    """A local Hugging Face tokenizer folder, decoded token by token exactly as the reference does."""

    def __init__(self, path: str) -> None:
        from transformers import AutoTokenizer  # heavy import, only when a local tokenizer is configured

        self._tok = AutoTokenizer.from_pretrained(path)

    async def encode(self, text: str) -> list[int]:
        return await asyncio.to_thread(self._tok.encode, text, add_special_tokens=False)

    async def decode_each(self, ids: list[int]) -> list[str]:
        # batch_decode over a flat id list decodes each id alone: the reference's exact behaviour.
        return await asyncio.to_thread(self._tok.batch_decode, [[i] for i in ids], skip_special_tokens=True)



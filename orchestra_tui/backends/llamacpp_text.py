"""The text side of a GGUF: its tokenizer and its own chat template, rendered as Hugging Face renders it.

The policy's context is truncated with `LlamaCppTokenizer` (the reference's per-token decode), and
`ChatTemplate` renders the exact prompt the model evaluates. Templates that never mention `tools`
(SmolLM2's, for one) get the Qwen3 tool section appended to the system message instead
(`hermes.tools_system_preamble`), and OpenAI-style tool traffic in the history is rewritten into
`<tool_call>` / `<tool_response>` text turns, so small stand-in models see the format the policy was
trained on.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import BackendError
from .hermes import hermes_messages, with_tools_in_system


def token_piece(llama: Any, token: int, special: bool = False) -> bytes:
    """Bytes of one token. llama-cpp-python's own helper assumes pieces fit in 32 bytes; some do not."""
    import llama_cpp

    vocab = llama._model.vocab
    size = 64
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, llama_cpp.llama_token(token), buffer, size, 0, special)
        if n >= 0:
            return buffer.raw[:n]
        size = -n  # a negative result is the size the piece needs


class LlamaCppTokenizer:
    """Tokenizer of a GGUF: `encode` without BOS or special-token parsing, `decode_each` token by token.

    Per-token decoding mirrors the reference's `batch_decode(ids)`: a character split over several tokens
    decodes to replacement characters, and control tokens decode to nothing.
    """

    def __init__(self, llama_source: Callable[[], Any]) -> None:
        self._source = llama_source

    @classmethod
    def from_gguf(cls, path: str | Path) -> LlamaCppTokenizer:
        """Load only the vocabulary of a GGUF (cheap); used by golden prompt tests."""
        from .llamacpp import load_vocab  # the process-wide registry of loaded GGUFs lives there

        vocab = load_vocab(str(path))
        return cls(lambda: vocab)

    # No lock: tokenizing reads only the vocabulary, never the context a running generation is using.
    def encode_sync(self, text: str) -> list[int]:
        return list(self._source().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def decode_each_sync(self, ids: list[int]) -> list[str]:
        llama = self._source()
        return [token_piece(llama, int(i)).decode("utf-8", errors="replace") for i in ids]

    async def encode(self, text: str) -> list[int]:
        return await asyncio.to_thread(self.encode_sync, text)

    async def decode_each(self, ids: list[int]) -> list[str]:
        return await asyncio.to_thread(self.decode_each_sync, ids)


class ChatTemplate:
    """The GGUF's chat template, rendered as Hugging Face renders it."""

    def __init__(self, llama: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        text = llama.metadata.get("tokenizer.chat_template")
        if not text:
            raise BackendError("this GGUF carries no chat template (metadata tokenizer.chat_template)")
        model = llama._model
        bos, eos = llama.token_bos(), llama.token_eos()
        self.knows_tools = "tools" in text
        self._formatter = Jinja2ChatFormatter(
            template=text,
            bos_token=model.token_get_text(bos) if bos != -1 else "",
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            add_generation_prompt=True,
        )

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        if tools and not self.knows_tools:
            messages = with_tools_in_system(hermes_messages(messages), tools)
            tools = None
        elif not self.knows_tools:
            messages = hermes_messages(messages)
        try:
            return self._formatter(messages=messages, tools=tools or None).prompt
        except Exception as exc:  # jinja raises many types; the template's own raise_exception included
            raise BackendError(f"chat template failed: {exc}") from None

"""Any GGUF model in process, through llama-cpp-python.

The prompt is rendered with the GGUF's own chat template (metadata `tokenizer.chat_template`), in a Jinja
environment that behaves like Hugging Face's (`tojson` keeps key order and non-ASCII), so a Qwen3 GGUF
renders the same prompt vLLM would (`llamacpp_text.py`, with the tokenizer).

One `Llama` per (file, n_ctx, n_gpu_layers) is shared by the whole process, because the policy and the
experts often run the same GGUF and each instance holds its own weights and KV cache. A `Llama` is not
thread-safe: a lock per instance serialises generations, which run in a worker thread so the event loop
keeps drawing the UI while tokens stream.

Prefix reuse: llama-cpp-python keeps the KV cache of the last evaluated tokens and re-evaluates only what
follows the longest common prefix with the next prompt. On a shared instance the policy and the experts
take turns and would evict each other's prefix, so `kv_swap.take_turn` parks and restores caches around
each call. `Usage.cached_tokens` reports the prompt tokens taken from the cache; the rest were evaluated.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import BackendError, ChatResult, Sampling, TextDelta, Usage
from .hermes import parse_tool_calls
from .kv_swap import DEFAULT_KV_SWAP_BYTES, KvSwap, common_prefix, take_turn
from .llamacpp_text import ChatTemplate, LlamaCppTokenizer, token_piece

# Sampling knobs a caller may pass through `Sampling.extra`; anything else has no meaning in process.
_EXTRA_SAMPLING = ("min_p", "typical_p", "repeat_penalty", "frequency_penalty", "presence_penalty")


@dataclass
class _SharedLlama:
    llama: Any  # llama_cpp.Llama
    lock: threading.Lock
    swap: KvSwap


_instances: dict[tuple[str, int, int], _SharedLlama] = {}
_vocabs: dict[str, Any] = {}
_registry_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Free the shared models while llama_cpp is still importable; left to `__del__` at interpreter
    teardown they fail noisily because the library's globals are already gone."""
    with _registry_lock:
        for item in [*(s.llama for s in _instances.values()), *_vocabs.values()]:
            try:
                item.close()
            except Exception:
                pass
        _instances.clear()
        _vocabs.clear()


def _load_llama(
    path: str, *, n_ctx: int, n_gpu_layers: int, n_threads: int | None, verbose: bool,
    kv_swap_bytes: int = DEFAULT_KV_SWAP_BYTES,
) -> _SharedLlama:
    """The process-wide instance for this file and shape; the first caller's `n_threads` and
    `kv_swap_bytes` win."""
    key = (str(Path(path).resolve()), n_ctx, n_gpu_layers)
    with _registry_lock:
        shared = _instances.get(key)
        if shared is None:
            import llama_cpp

            if not Path(path).is_file():
                raise BackendError(f"GGUF file not found: {Path(path).name}")
            try:
                llama = llama_cpp.Llama(
                    model_path=path,
                    n_ctx=n_ctx,
                    n_gpu_layers=n_gpu_layers,
                    n_threads=n_threads,
                    verbose=verbose,
                )
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"could not load {Path(path).name}: {exc}") from None
            shared = _instances[key] = _SharedLlama(llama, threading.Lock(), KvSwap(kv_swap_bytes))
        return shared


def load_vocab(path: str) -> Any:
    """A vocabulary-only `Llama` (no weights in memory): enough for tokenizing and the chat template."""
    key = str(Path(path).resolve())
    with _registry_lock:
        vocab = _vocabs.get(key)
        if vocab is None:
            import llama_cpp

            if not Path(path).is_file():
                raise BackendError(f"GGUF file not found: {Path(path).name}")
            vocab = _vocabs[key] = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        return vocab


def _reused_prefix(llama: Any, tokens: list[int]) -> int:
    """How many prompt tokens llama-cpp-python will take from its KV cache instead of evaluating.

    Mirrors `Llama.generate`: it keeps the longest common prefix with what it evaluated last, but always
    re-evaluates at least one token so that fresh logits exist.
    """
    common = common_prefix(llama._input_ids, tokens)
    if common == len(tokens):
        exact = llama.n_tokens == len(tokens) and not getattr(llama, "_requires_eval", True)
        return common if exact else max(common - 1, 0)
    return common


class LlamaCppBackend:
    """Chat with a GGUF in process. See the module docstring for template and sharing rules.

    Consecutive calls reuse their common prompt prefix, also when other roles ran on the same model in
    between (see the module docstring); `kv_swap_bytes` bounds the RAM for parked caches.

    Sampling: `top_p`/`top_k` left unset mean off (vLLM's defaults, not llama.cpp's 0.95/40); `min_p` and
    penalties can be set through `Sampling.extra`. `completion_tokens` counts the end-of-generation token,
    as vLLM does. `constrain_tool_call=True` with tools forces exactly one `<tool_call>` block naming one of
    the tools, with arguments that match its schema (see `tool_grammar`).
    """

    kind = "llamacpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        model_name: str | None = None,
        seed: int | None = None,
        verbose: bool = False,
        kv_swap_bytes: int = DEFAULT_KV_SWAP_BYTES,
    ) -> None:
        self.model_path = str(model_path)
        self.n_ctx = n_ctx
        # llama.cpp's own default is half the cores; a CPU-only user wants them all for decoding.
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_gpu_layers = n_gpu_layers
        self.model = model_name or Path(self.model_path).stem
        self.verbose = verbose
        self.kv_swap_bytes = kv_swap_bytes  # 0 turns parking off: only the live cache's prefix is reused
        # A fixed seed makes a sequence of calls reproducible without making every call identical.
        self._seeds = random.Random(seed) if seed is not None else random.SystemRandom()
        self._shared: _SharedLlama | None = None
        self._template: ChatTemplate | None = None
        self._tokenizer = LlamaCppTokenizer(lambda: self._loaded().llama)

    def __repr__(self) -> str:
        return f"LlamaCppBackend({Path(self.model_path).name!r}, n_ctx={self.n_ctx})"

    def _loaded(self) -> _SharedLlama:
        if self._shared is None:
            self._shared = _load_llama(
                self.model_path,
                n_ctx=self.n_ctx,
                n_gpu_layers=self.n_gpu_layers,
                n_threads=self.n_threads,
                verbose=self.verbose,
                kv_swap_bytes=self.kv_swap_bytes,
            )
        return self._shared

    def _chat_template(self) -> ChatTemplate:
        if self._template is None:
            self._template = ChatTemplate(self._loaded().llama)
        return self._template

    @property
    def tokenizer(self) -> LlamaCppTokenizer:
        return self._tokenizer

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The exact prompt text a call with these messages and tools would evaluate (loads the model)."""
        return self._chat_template().render(messages, tools)

    async def load(self) -> None:
        """Load the weights now (in a worker thread) instead of on the first call."""
        await asyncio.to_thread(self._chat_template)

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        sampling: Sampling,
        constrain_tool_call: bool = False,
    ) -> AsyncIterator[TextDelta | ChatResult]:
        await self.load()
        grammar_text = None
        if constrain_tool_call and tools:
            from .tool_grammar import tool_call_gbnf

            grammar_text = tool_call_gbnf(tools)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def emit(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:
                cancel.set()  # the event loop is gone: nobody is listening, stop generating

        def work() -> None:
            try:
                emit("done", self._generate(messages, tools, sampling, grammar_text, emit, cancel))
            except BaseException as exc:  # handed to the event loop, re-raised there
                emit("error", exc)

        started = time.perf_counter()
        first_token_s: float | None = None
        worker = threading.Thread(target=work, name=f"llamacpp-{self.model}", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    if first_token_s is None:
                        first_token_s = time.perf_counter() - started
                    yield TextDelta(value)
                elif kind == "error":
                    if isinstance(value, BackendError):
                        raise value
                    raise BackendError(f"llama.cpp generation failed: {type(value).__name__}: {value}") from value
                else:
                    content = value["content"]
                    yield ChatResult(
                        content=content,
                        tool_calls=parse_tool_calls(content) if tools else [],
                        usage=Usage(value["prompt_tokens"], value["completion_tokens"], value["cached_tokens"]),
                        seconds=time.perf_counter() - started,
                        finish_reason=value["finish_reason"],
                        model=self.model,
                        first_token_s=first_token_s,
                    )
                    return
        finally:
            # A consumer that stops early (cancelled turn) must free the shared model for the next call.
            cancel.set()

    def _generate(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        sampling: Sampling,
        grammar_text: str | None,
        emit: Callable[[str, Any], None],
        cancel: threading.Event,
    ) -> dict[str, Any]:
        import llama_cpp

        shared = self._loaded()
        prompt = self._chat_template().render(messages, tools)
        grammar = llama_cpp.LlamaGrammar.from_string(grammar_text, verbose=False) if grammar_text else None
        options = {k: sampling.extra[k] for k in _EXTRA_SAMPLING if k in sampling.extra}
        options.setdefault("min_p", 0.0)
        options.setdefault("repeat_penalty", 1.0)
        with shared.lock:  # held for the whole generation: the KV cache and sampler are per instance
            llama = shared.llama
            tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            room = self.n_ctx - len(tokens)
            if room <= 0:
                raise BackendError(f"prompt of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
            budget = min(sampling.max_tokens, room)
            take_turn(llama, shared.swap, tokens)
            cached = _reused_prefix(llama, tokens)
            llama.set_seed(sampling.seed if sampling.seed is not None else self._seeds.randrange(2**31))
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            pieces: list[str] = []
            produced = 0
            finish_reason = "length"
            generator = llama.generate(
                tokens,
                temp=sampling.temperature,
                top_p=sampling.top_p if sampling.top_p is not None else 1.0,
                top_k=sampling.top_k if sampling.top_k is not None else 0,
                grammar=grammar,
                **options,
            )
            try:
                for token in generator:
                    produced += 1
                    if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
                        finish_reason = "stop"
                        break
                    text = decoder.decode(token_piece(llama, token))
                    if text:
                        pieces.append(text)
                        emit("text", text)
                    if cancel.is_set():
                        finish_reason = "cancelled"
                        break
                    if produced >= budget:
                        break
            finally:
                generator.close()
            tail = decoder.decode(b"", final=True)
            if tail:
                pieces.append(tail)
                emit("text", tail)
        return {
            "content": "".join(pieces),
            "prompt_tokens": len(tokens),
            "completion_tokens": produced,
            "cached_tokens": cached,
            "finish_reason": finish_reason,
        }

    async def aclose(self) -> None:
        """Nothing to release per backend: the shared model lives as long as the process."""
        self._shared = None

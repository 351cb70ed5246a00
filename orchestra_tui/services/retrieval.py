"""Local dense retrieval: a Faiss index over a passage corpus, and the retriever the engine calls.

An index is a folder of three files:
- `index.faiss`: an exact inner-product index over L2-normalised vectors (so scores are cosines);
- `corpus.jsonl`: the passages, row i matching vector i (reference corpus format);
- `meta.json`: embedder name and spec, dimension, count, corpus hash and format version. It is written
  last, so a folder without it is an interrupted build and is never loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypedDict, runtime_checkable

import numpy as np

from .corpus import (
    folder_fingerprint,
    iter_text_files,
    passages_fingerprint,
    read_folder,
    read_jsonl,
    write_jsonl,
)
from .embedders import Embedder, make_embedder

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
CORPUS_FILE = "corpus.jsonl"
META_FILE = "meta.json"
EMBED_CHUNK = 64  # passages embedded per step of a build (one progress tick each)

Progress = Callable[[int, int], None]  # (passages embedded so far, total)


class RetrievalIndexError(RuntimeError):
    """An index cannot be built or loaded; the message is one line meant for the user."""


class LocalIndex:
    """A built index, loaded in memory with its embedder. Not safe for concurrent use: see LocalRetriever."""

    def __init__(
        self,
        directory: Path,
        faiss_index: Any,
        passages: list[dict[str, str]],
        embedder: Embedder,
        meta: dict[str, Any],
    ) -> None:
        self.directory = directory
        self.passages = passages
        self.embedder = embedder
        self.meta = meta
        self._faiss = faiss_index

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        return f"LocalIndex({str(self.directory)!r}, {len(self)} passages, embedder={self.embedder.name!r})"

    @classmethod
    def build(
        cls,
        passages: Sequence[dict[str, str]],
        embedder: Embedder,
        out_dir: str | os.PathLike[str],
        progress: Progress | None = None,
    ) -> LocalIndex:
        import faiss

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # A rebuild in place must not leave an old meta.json describing new, half-written files.
        (out / META_FILE).unlink(missing_ok=True)

        passages = [{"id": p["id"], "content": p["content"]} for p in passages]
        index = faiss.IndexFlatIP(embedder.dim)
        total = len(passages)
        if progress:
            progress(0, total)
        for start in range(0, total, EMBED_CHUNK):
            chunk = passages[start : start + EMBED_CHUNK]
            vectors = np.ascontiguousarray(embedder.embed_documents([p["content"] for p in chunk]), np.float32)
            if vectors.shape != (len(chunk), embedder.dim):
                raise RetrievalIndexError(
                    f"embedder {embedder.name} returned shape {vectors.shape}, expected ({len(chunk)}, {embedder.dim})"
                )
            index.add(vectors)
            if progress:
                progress(start + len(chunk), total)

        _write_atomically(out / INDEX_FILE, lambda tmp: faiss.write_index(index, str(tmp)))
        _write_atomically(out / CORPUS_FILE, lambda tmp: write_jsonl(passages, tmp))
        meta = {
            "format": FORMAT_VERSION,
            "embedder": embedder.name,
            "embedder_spec": getattr(embedder, "spec", None),
            "dim": embedder.dim,
            "count": total,
            "corpus_sha256": passages_fingerprint(passages),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_atomically(
            out / META_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        )
        return cls(out, index, passages, embedder, meta)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], embedder: Embedder | None = None) -> LocalIndex:
        import faiss

        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise RetrievalIndexError(f"no built index in {directory} ({META_FILE} is missing)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise RetrievalIndexError(f"unreadable {META_FILE} in {directory}: {error}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise RetrievalIndexError(
                f"index in {directory} has format {meta.get('format')!r}, "
                f"this version reads {FORMAT_VERSION}; rebuild it"
            )
        if embedder is None:
            spec = meta.get("embedder_spec")
            if spec is None:
                raise RetrievalIndexError(
                    f"index in {directory} does not say how to re-create embedder {meta.get('embedder')!r}; pass one"
                )
            embedder = make_embedder(spec)
        if embedder.dim != meta.get("dim"):
            raise RetrievalIndexError(
                f"index in {directory} holds {meta.get('dim')}-dim vectors ({meta.get('embedder')}) but embedder "
                f"{embedder.name} makes {embedder.dim}-dim ones; rebuild the index with this embedder"
            )
        index = faiss.read_index(str(directory / INDEX_FILE))
        passages = read_jsonl(directory / CORPUS_FILE)
        if not (index.d == meta["dim"] and index.ntotal == len(passages) == meta.get("count")):
            raise RetrievalIndexError(
                f"index in {directory} is inconsistent ({index.ntotal} vectors, {len(passages)} passages, "
                f"meta says {meta.get('count')}); rebuild it"
            )
        return cls(directory, index, passages, embedder, meta)

    def search(self, query: str, topk: int) -> list[dict[str, Any]]:
        """The `topk` passages most similar to `query`, best first: `{"id", "content", "score"}`."""
        k = min(topk, len(self.passages))
        if k <= 0:
            return []
        vector = np.ascontiguousarray(self.embedder.embed_queries([query]), np.float32)
        scores, ids = self._faiss.search(vector, k)
        return [
            {**self.passages[i], "score": float(score)}
            for score, i in zip(scores[0], ids[0], strict=True)
            if i >= 0
        ]


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary sibling, so a crash never leaves a half-written file under `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@runtime_checkable
class Retriever(Protocol):
    """What the engine's `search` tool calls; results are `{"id", "content", "score"}` best first."""

    name: str

    async def retrieve(self, query: str, topk: int) -> list[dict[str, Any]]: ...


class LocalRetriever:
    """A LocalIndex served to async code: searches run in a worker thread, one at a time."""

    def __init__(self, index: LocalIndex, name: str = "local") -> None:
        self.index = index
        self.name = name
        # A thread lock, not an asyncio one: Faiss and torch must not run concurrently whichever event
        # loop or thread the calls come from.
        self._lock = threading.Lock()

    def _search(self, query: str, topk: int) -> list[dict[str, Any]]:
        with self._lock:
            return self.index.search(query, topk)

    async def retrieve(self, query: str, topk: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._search, query, topk)


class BuildSummary(TypedDict):
    index: str  # the folder written
    embedder: str
    files: int
    passages: int
    dim: int
    seconds: float


def build_index_from_folder(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    embedder_spec: str | dict[str, Any] = "minilm",
    progress: bool = True,
) -> BuildSummary:
    """Index every .md/.markdown/.txt/.rst file under `src` into `out_dir` (`orchestra-tui index build`).

    The progress bar goes to stderr so stdout stays clean for the summary.
    """
    from tqdm import tqdm

    started = time.monotonic()
    src = Path(src)
    if not src.is_dir():
        raise RetrievalIndexError(f"no folder at {src}")
    files = sum(1 for _ in iter_text_files(src))
    passages = read_folder(src)
    if not passages:
        raise RetrievalIndexError(f"no text in {src} (looked for .md, .markdown, .txt and .rst files)")
    embedder = make_embedder(embedder_spec)
    with tqdm(total=len(passages), unit="passage", desc="embedding", file=sys.stderr, disable=not progress) as bar:

        def advance(done: int, total: int) -> None:
            bar.update(done - bar.n)

        index = LocalIndex.build(passages, embedder, out_dir, progress=advance)
    return BuildSummary(
        index=str(index.directory),
        embedder=embedder.name,
        files=files,
        passages=len(passages),
        dim=embedder.dim,
        seconds=round(time.monotonic() - started, 3),
    )


def default_index(
    cache_dir: str | os.PathLike[str],
    corpus_dir: str | os.PathLike[str],
    *,
    embedder: Embedder | None = None,
    embedder_spec: str | dict[str, Any] = "minilm",
    progress: Progress | None = None,
) -> LocalIndex:
    """The embedded default's index over the shipped corpus, built on first use and loaded afterwards.

    It lives in `cache_dir/indexes/<key>`, where the key hashes the corpus files and the embedder: an
    edited corpus or another embedder gets a fresh index, and an unchanged one is never rebuilt.
    """
    embedder = embedder or make_embedder(embedder_spec)
    key_source = f"{FORMAT_VERSION}\n{embedder.name}\n{embedder.dim}\n{folder_fingerprint(corpus_dir)}"
    key = hashlib.sha256(key_source.encode("utf-8")).hexdigest()[:24]
    final = Path(cache_dir) / "indexes" / key
    if (final / META_FILE).is_file():
        return LocalIndex.load(final, embedder)

    # Build beside the final folder and rename it into place, so two processes starting together or an
    # interrupted build never leave a half-built folder under the final name.
    staging = final.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.building")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        LocalIndex.build(read_folder(corpus_dir), embedder, staging, progress=progress)
        if not (final / META_FILE).is_file():  # else another process won the race: use its index
            shutil.rmtree(final, ignore_errors=True)  # a leftover without meta.json is not an index
            try:
                os.rename(staging, final)
            except OSError:
                if not (final / META_FILE).is_file():  # not a lost race with another builder
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return LocalIndex.load(final, embedder)

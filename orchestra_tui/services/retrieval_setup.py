"""Builds the retriever a catalog's [retrieval] table asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestra_tui.paths import cache_dir, data_dir

RETRIEVAL_KINDS = ("embedded", "index")


def make_retriever(spec: dict[str, Any]) -> Any:
    from orchestra_tui.services.retrieval import LocalIndex, LocalRetriever, default_index

    kind = spec.get("kind", "embedded")
    if kind == "embedded":
        # The project's own docs, indexed with MiniLM on first use and cached by content hash.
        return LocalRetriever(default_index(cache_dir(), data_dir("docs")))
    if kind == "index":
        path = spec.get("path")
        if not path:
            raise ValueError("retrieval.path: an index folder is required when retrieval.kind = 'index'")
        return LocalRetriever(LocalIndex.load(Path(str(path)).expanduser()))
    raise ValueError(f"retrieval.kind: {kind!r} is not one of {', '.join(RETRIEVAL_KINDS)}")

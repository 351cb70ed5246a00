"""Builds the retriever a catalog's [retrieval] table asks for.

    kind = "embedded"                          # the shipped docs, MiniLM, built on first use
    kind = "index", path = "DIR"               # a folder built by `orchestra-tui index build`
    kind = "remote", url = "http://host:8765"  # a /retrieve server (ours or the reference's); eid, api_key_env
    kind = "web"                               # Tavily alone (TAVILY_API_KEY)
    web_fallback = true                        # with a local kind: ask Tavily too when the index returns
                                               # fewer than 3 usable documents (the reference's rule)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestra_tui.paths import cache_dir, data_dir

RETRIEVAL_KINDS = ("embedded", "index", "remote", "web")


def make_retriever(spec: dict[str, Any]) -> Any:
    kind = spec.get("kind", "embedded")
    if kind == "web":
        from orchestra_tui.services.web_search import TavilyRetriever

        return TavilyRetriever(api_base_url=spec.get("api_base_url"))  # no key: WebSearchUnavailable
    local = _local_retriever(kind, spec)
    web_fallback = spec.get("web_fallback", False)
    if not isinstance(web_fallback, bool):
        raise ValueError("retrieval.web_fallback must be true or false")
    if not web_fallback:
        return local
    from orchestra_tui.services.web_search import FallbackRetriever, TavilyRetriever, web_search_unavailable_reason

    # A missing key leaves the local index working alone; the reason stays on the retriever for display.
    reason = web_search_unavailable_reason()
    web = None if reason else TavilyRetriever(api_base_url=spec.get("api_base_url"))
    return FallbackRetriever(local, web, web_unavailable=reason)


def _local_retriever(kind: Any, spec: dict[str, Any]) -> Any:
    from orchestra_tui.services.retrieval import LocalIndex, LocalRetriever, default_index

    if kind == "embedded":
        # The project's own docs, indexed with MiniLM on first use and cached by content hash.
        return LocalRetriever(default_index(cache_dir(), data_dir("docs")))
    if kind == "index":
        path = spec.get("path")
        if not path:
            raise ValueError("retrieval.path: an index folder is required when retrieval.kind = 'index'")
        return LocalRetriever(LocalIndex.load(Path(str(path)).expanduser()))
    if kind == "remote":
        from orchestra_tui.services.retrieval_service import RemoteRetriever

        url = spec.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError("retrieval.url: a server URL is required when retrieval.kind = 'remote'")
        eid = spec.get("eid")
        return RemoteRetriever(url, eid=None if eid is None else str(eid), api_key_env=spec.get("api_key_env"))
    raise ValueError(f"retrieval.kind: {kind!r} is not one of {', '.join(RETRIEVAL_KINDS)}")

"""Web search through Tavily, alone or as the fallback of a local index.

The reference (ORCHESTRATOR.md §3) searches with `search_depth="advanced", max_results=20,
chunks_per_source=5`, then extracts the text of every result URL, and asks the web only when the local
index returned fewer than 3 usable documents (more than 100 characters).

Money: a retrieval may now cost several Tavily calls. Each retriever here reports the services it used
for one query (`retrieve_charged` returns them; `last_services` keeps the latest), one entry per charge:
`tavily_search` per search, `tavily_extract` per URL Tavily extracted (the reference price is per URL; failed
URLs are not billed), and the local retriever's own price key when it ran.
"""

from __future__ import annotations

from typing import Any

import httpx

from orchestra_tui.keys import read_key

TAVILY_KEY_ENV = "TAVILY_API_KEY"
UNAVAILABLE = "web search unavailable: TAVILY_API_KEY is not set"
EXTRACT_BATCH = 20  # the most URLs Tavily extracts in one request


class WebSearchUnavailable(RuntimeError):
    """Web search cannot be used at all (no API key); the message is meant for the user as is."""


class WebSearchError(RuntimeError):
    """A Tavily request failed; the message names the failure, never the key."""


def web_search_unavailable_reason() -> str | None:
    """Why web search cannot run right now, or None when it can (for `catalog show`)."""
    return None if read_key(TAVILY_KEY_ENV) else UNAVAILABLE


def _api_key() -> str:
    key = read_key(TAVILY_KEY_ENV)
    if not key:
        raise WebSearchUnavailable(UNAVAILABLE)
    return key


def _describe(exc: Exception, key: str) -> str:
    """A one-line reason for a tavily-python failure. Server-supplied detail is quoted only after the key
    is removed from it, and never for authentication errors, whose bodies may echo the key."""
    from tavily import errors

    def detail() -> str:
        text = " ".join(str(exc).replace(key, "***").split())[:200]
        return f": {text}" if text else ""

    if isinstance(exc, errors.InvalidAPIKeyError):
        return f"Tavily rejected the API key in ${TAVILY_KEY_ENV} (HTTP 401)"
    if isinstance(exc, errors.ForbiddenError):
        return f"Tavily refused the request (HTTP 403; key from ${TAVILY_KEY_ENV})"
    if isinstance(exc, errors.UsageLimitExceededError):
        return "Tavily usage limit exceeded (HTTP 429)" + detail()
    if isinstance(exc, errors.BadRequestError):
        return "Tavily rejected the request (HTTP 400)" + detail()
    if isinstance(exc, errors.TimeoutError):
        return "Tavily did not answer in time"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"Tavily answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach Tavily ({type(exc).__name__})"
    return f"Tavily request failed ({type(exc).__name__})"


class TavilyRetriever:
    """A Retriever over the web: Tavily search, then Tavily extract for the full text of each result.

    The key is read from TAVILY_API_KEY when the retriever is made (so a missing key is reported up front)
    and again at each query, and is only ever handed to tavily-python. `api_base_url` points the client at
    another Tavily-compatible endpoint (tests use a stand-in on loopback).
    """

    name = "tavily"
    price_key = "tavily_search"

    def __init__(
        self,
        *,
        api_base_url: str | None = None,
        search_depth: str = "advanced",
        max_results: int = 20,
        chunks_per_source: int = 5,
        extract: bool = True,
        extract_depth: str = "advanced",
        timeout: float = 60.0,
    ) -> None:
        _api_key()
        self.api_base_url = api_base_url
        self.search_depth = search_depth
        self.max_results = max_results
        self.chunks_per_source = chunks_per_source
        self.extract = extract
        self.extract_depth = extract_depth
        self.timeout = timeout
        self.last_services: list[str] = []

    def __repr__(self) -> str:
        return f"TavilyRetriever(search_depth={self.search_depth!r}, max_results={self.max_results})"

    async def retrieve(self, query: str, topk: int) -> list[dict[str, Any]]:
        results, self.last_services = await self.retrieve_charged(query, topk)
        return results

    async def retrieve_charged(self, query: str, topk: int) -> tuple[list[dict[str, Any]], list[str]]:
        """Results (`{"id": url, "content", "score"}`, best first) and the services to charge."""
        from tavily import AsyncTavilyClient

        key = _api_key()
        # One client per query: its connection pool belongs to the event loop it was made in.
        client = AsyncTavilyClient(api_key=key, api_base_url=self.api_base_url)
        try:
            try:
                found = await client.search(
                    query,
                    search_depth=self.search_depth,
                    max_results=self.max_results,
                    chunks_per_source=self.chunks_per_source,
                    timeout=self.timeout,
                )
            except Exception as exc:  # tavily-python raises its own classes and httpx's
                raise WebSearchError(f"web search failed: {_describe(exc, key)}") from None
            services = ["tavily_search"]
            hits = [r for r in found.get("results") or [] if isinstance(r, dict) and isinstance(r.get("url"), str)]
            texts: dict[str, str] = {}
            if self.extract and hits:
                texts = await self._extract(client, [h["url"] for h in hits])
                services += ["tavily_extract"] * len(texts)
        finally:
            await client.close()
        results = []
        for hit in hits:
            content = texts.get(hit["url"]) or hit.get("content") or ""  # the search snippet as fallback
            if isinstance(content, str) and content.strip():
                score = hit.get("score")
                score = float(score) if isinstance(score, (int, float)) else None
                results.append({"id": hit["url"], "content": content, "score": score})
        results.sort(key=lambda r: r["score"] if r["score"] is not None else float("-inf"), reverse=True)
        return results[:topk], services

    async def _extract(self, client: Any, urls: list[str]) -> dict[str, str]:
        """Full text per URL. A failed extraction is not fatal: those results keep their snippets."""
        texts: dict[str, str] = {}
        for start in range(0, len(urls), EXTRACT_BATCH):
            try:
                answer = await client.extract(
                    urls[start : start + EXTRACT_BATCH],
                    extract_depth=self.extract_depth,
                    format="text",
                    timeout=self.timeout,
                )
            except Exception:  # noqa: BLE001 - the search results still stand
                continue
            for item in answer.get("results") or []:
                if isinstance(item, dict) and isinstance(item.get("url"), str):
                    raw = item.get("raw_content")
                    if isinstance(raw, str) and raw.strip():
                        texts[item["url"]] = raw
        return texts


def _usable(results: list[dict[str, Any]], min_chars: int) -> int:
    return sum(1 for r in results if isinstance(r.get("content"), str) and len(r["content"]) > min_chars)


class FallbackRetriever:
    """The local index first; the web too when the index has fewer than `min_usable` usable documents.

    Web results are appended after the local ones. `local=None` means web only (no index configured);
    `web=None` means the web is unavailable (`web_unavailable` says why) and the local results stand alone.
    When one side fails and the other ran, the results of the other stand and the failure is kept in
    `last_error`; when nothing ran, the failure is raised.
    After each query, `name` says which ran ("local", "tavily", "local+tavily") and `last_services` lists
    every charge, e.g. ["retrieval_local", "tavily_search", "tavily_extract", ...].
    """

    def __init__(
        self,
        local: Any | None,
        web: Any | None,
        *,
        min_usable: int = 3,
        min_chars: int = 100,
        web_unavailable: str | None = None,
    ) -> None:
        if local is None and web is None:
            raise ValueError("FallbackRetriever needs a local retriever, a web retriever or both")
        self.local = local
        self.web = web
        self.min_usable = min_usable
        self.min_chars = min_chars
        self.web_unavailable = web_unavailable if web is None else None
        self.name = local.name if local is not None else web.name
        self.last_services: list[str] = []
        self.last_error: str | None = None

    @property
    def price_key(self) -> str:
        """The first service of the last query (the local one when it ran)."""
        if self.last_services:
            return self.last_services[0]
        return _price_key(self.local if self.local is not None else self.web)

    async def retrieve(self, query: str, topk: int) -> list[dict[str, Any]]:
        results, self.last_services = await self.retrieve_charged(query, topk)
        return results

    async def retrieve_charged(self, query: str, topk: int) -> tuple[list[dict[str, Any]], list[str]]:
        self.last_error = None
        results: list[dict[str, Any]] = []
        services: list[str] = []
        names: list[str] = []
        if self.local is not None:
            try:
                results, local_services = await _charged(self.local, query, topk)
            except Exception as exc:
                if self.web is None:
                    raise
                # An unreachable index server should not leave the search without documents.
                self.last_error = f"{self.local.name} failed: {exc}"
            else:
                services += local_services
                names.append(self.local.name)
                if _usable(results, self.min_chars) >= self.min_usable or self.web is None:
                    self.name = self.local.name
                    return results, services
        assert self.web is not None
        try:
            web_results, web_services = await _charged(self.web, query, topk)
        except Exception as exc:
            if not names:  # nothing else ran: the failure is the answer
                raise
            self.last_error = str(exc)
            self.name = names[0]
            return results, services
        names.append(self.web.name)
        self.name = "+".join(names)
        return results + web_results, services + web_services


def _price_key(retriever: Any) -> str:
    return getattr(retriever, "price_key", "retrieval_local")


async def _charged(retriever: Any, query: str, topk: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Results and charges of any Retriever: its own list when it reports one, else its price key once."""
    if hasattr(retriever, "retrieve_charged"):
        return await retriever.retrieve_charged(query, topk)
    return await retriever.retrieve(query, topk), [_price_key(retriever)]

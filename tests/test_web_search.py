"""Web search through tavily-python against a loopback stand-in of the Tavily API, and the local-first
fallback rule of the reference (fewer than 3 usable local documents -> ask the web too)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestra_tui.services.retrieval_service import BackgroundServer
from orchestra_tui.services.retrieval_setup import make_retriever
from orchestra_tui.services.web_search import (
    UNAVAILABLE,
    FallbackRetriever,
    TavilyRetriever,
    WebSearchError,
    WebSearchUnavailable,
    web_search_unavailable_reason,
)

CANARY = "tvly-canary-5d41402abc4b2a76b9719d91"
LONG = "x" * 150  # usable: more than 100 characters

SEARCH_RESULTS = [
    {"url": "https://a.example/saturn", "title": "Saturn", "content": "Saturn snippet", "score": 0.91},
    {"url": "https://b.example/rings", "title": "Rings", "content": "Rings snippet", "score": 0.95},
    {"url": "https://c.example/titan", "title": "Titan", "content": "Titan snippet", "score": 0.42},
]
EXTRACTED = {
    "https://a.example/saturn": "Saturn is the sixth planet from the Sun. " * 5,
    "https://b.example/rings": "The rings of Saturn are made of ice. " * 5,
    # titan fails to extract: its snippet must stand in
}


class TavilyStandIn:
    """`/search` and `/extract` with canned answers; records every request; can be told to fail."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], str | None]] = []
        self.fail: dict[str, int] = {}  # path -> HTTP status to answer with

    async def _handle(self, request: Request) -> JSONResponse:
        path = request.url.path
        body = await request.json()
        auth = request.headers.get("authorization")
        self.requests.append((path, body, auth))
        if path in self.fail:
            # Real error bodies sometimes quote the request; echo the key to prove it never reaches a message.
            return JSONResponse({"detail": {"error": f"denied for {auth}"}}, status_code=self.fail[path])
        if path == "/search":
            return JSONResponse({"query": body["query"], "results": SEARCH_RESULTS, "response_time": 0.1})
        results = [{"url": u, "raw_content": EXTRACTED[u]} for u in body["urls"] if u in EXTRACTED]
        failed = [{"url": u, "error": "timeout"} for u in body["urls"] if u not in EXTRACTED]
        return JSONResponse({"results": results, "failed_results": failed})

    def app(self) -> Starlette:
        return Starlette(routes=[Route(p, self._handle, methods=["POST"]) for p in ("/search", "/extract")])


@pytest.fixture
def tavily(monkeypatch):
    monkeypatch.setenv("TAVILY_API_KEY", CANARY)
    stand_in = TavilyStandIn()
    with BackgroundServer(stand_in.app()) as server:
        stand_in.url = server.url
        yield stand_in


# -- TavilyRetriever -------------------------------------------------------------------------------------


def test_missing_key_makes_web_search_unavailable(monkeypatch):
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    assert web_search_unavailable_reason() == "web search unavailable: TAVILY_API_KEY is not set"
    with pytest.raises(WebSearchUnavailable) as info:
        TavilyRetriever()
    assert str(info.value) == UNAVAILABLE
    with pytest.raises(WebSearchUnavailable):
        make_retriever({"kind": "web"})


async def test_search_then_extract_with_the_reference_parameters(tavily):
    retriever = TavilyRetriever(api_base_url=tavily.url)
    results, services = await retriever.retrieve_charged("rings of saturn", 50)

    (search_path, search, auth), (extract_path, extract, _) = tavily.requests
    assert search_path == "/search" and extract_path == "/extract"
    assert auth == f"Bearer {CANARY}"
    assert search["query"] == "rings of saturn"
    assert (search["search_depth"], search["max_results"], search["chunks_per_source"]) == ("advanced", 20, 5)
    assert extract["urls"] == [r["url"] for r in SEARCH_RESULTS]
    assert (extract["extract_depth"], extract["format"]) == ("advanced", "text")

    # Best Tavily score first; extracted text where there is some, the snippet otherwise.
    assert [(r["id"], r["score"]) for r in results] == [
        ("https://b.example/rings", 0.95),
        ("https://a.example/saturn", 0.91),
        ("https://c.example/titan", 0.42),
    ]
    assert results[0]["content"] == EXTRACTED["https://b.example/rings"]
    assert results[2]["content"] == "Titan snippet"
    # One search, and one extraction per URL Tavily extracted (the failed one is not billed).
    assert services == ["tavily_search", "tavily_extract", "tavily_extract"]

    assert [r["id"] for r in await retriever.retrieve("rings of saturn", 2)] == [
        "https://b.example/rings",
        "https://a.example/saturn",
    ]
    assert retriever.last_services == services


@pytest.mark.parametrize(("status", "expected"), [(401, "HTTP 401"), (429, "HTTP 429"), (500, "HTTP 500")])
async def test_error_answers_are_clear_and_never_show_the_key(tavily, status, expected):
    tavily.fail["/search"] = status
    retriever = TavilyRetriever(api_base_url=tavily.url)
    with pytest.raises(WebSearchError) as info:
        await retriever.retrieve("anything", 5)
    message = str(info.value)
    assert message.startswith("web search failed: ")
    assert expected in message
    assert CANARY not in message
    assert [path for path, _, _ in tavily.requests] == ["/search"]  # no extraction after a failed search


async def test_a_failed_extraction_keeps_the_snippets(tavily):
    tavily.fail["/extract"] = 500
    results, services = await TavilyRetriever(api_base_url=tavily.url).retrieve_charged("saturn", 10)
    assert [r["content"] for r in results] == ["Rings snippet", "Saturn snippet", "Titan snippet"]
    assert services == ["tavily_search"]


async def test_the_key_is_read_at_each_query(tavily, monkeypatch):
    retriever = TavilyRetriever(api_base_url=tavily.url)
    monkeypatch.delenv("TAVILY_API_KEY")
    with pytest.raises(WebSearchUnavailable):
        await retriever.retrieve("saturn", 5)
    assert tavily.requests == []


# -- FallbackRetriever ----------------------------------------------------------------------------------


class FakeLocal:
    name = "local"
    price_key = "retrieval_local"

    def __init__(self, contents: list[str], error: Exception | None = None) -> None:
        self.contents = contents
        self.error = error
        self.queries: list[str] = []

    async def retrieve(self, query: str, topk: int) -> list[dict[str, Any]]:
        self.queries.append(query)
        if self.error:
            raise self.error
        return [{"id": f"doc#{i}", "content": c, "score": 1.0 - i / 10} for i, c in enumerate(self.contents)][:topk]


async def test_enough_local_documents_never_ask_the_web(tavily):
    fallback = FallbackRetriever(FakeLocal([LONG, LONG, LONG, "short"]), TavilyRetriever(api_base_url=tavily.url))
    results = await fallback.retrieve("saturn", 10)
    assert [r["id"] for r in results] == ["doc#0", "doc#1", "doc#2", "doc#3"]
    assert fallback.name == "local"
    assert fallback.last_services == ["retrieval_local"]
    assert fallback.price_key == "retrieval_local"
    assert tavily.requests == []


async def test_too_few_usable_local_documents_add_the_web(tavily):
    # Three local results, but only two longer than 100 characters.
    fallback = FallbackRetriever(FakeLocal([LONG, "short", LONG]), TavilyRetriever(api_base_url=tavily.url))
    results = await fallback.retrieve("saturn", 10)
    assert [r["id"] for r in results] == [
        "doc#0", "doc#1", "doc#2",
        "https://b.example/rings", "https://a.example/saturn", "https://c.example/titan",
    ]  # fmt: skip
    assert fallback.name == "local+tavily"
    assert fallback.last_services == ["retrieval_local", "tavily_search", "tavily_extract", "tavily_extract"]
    assert fallback.last_error is None


async def test_web_alone_when_there_is_no_index(tavily):
    fallback = FallbackRetriever(None, TavilyRetriever(api_base_url=tavily.url))
    results, services = await fallback.retrieve_charged("saturn", 10)
    assert len(results) == 3
    assert fallback.name == "tavily"
    assert services[0] == "tavily_search"


async def test_unavailable_web_leaves_the_local_results_alone():
    fallback = FallbackRetriever(FakeLocal(["short"]), None, web_unavailable=UNAVAILABLE)
    results = await fallback.retrieve("saturn", 10)
    assert [r["id"] for r in results] == ["doc#0"]
    assert fallback.last_services == ["retrieval_local"]
    assert fallback.web_unavailable == UNAVAILABLE


async def test_a_web_failure_keeps_the_local_results(tavily):
    tavily.fail["/search"] = 500
    fallback = FallbackRetriever(FakeLocal([LONG]), TavilyRetriever(api_base_url=tavily.url))
    results = await fallback.retrieve("saturn", 10)
    assert [r["id"] for r in results] == ["doc#0"]
    assert fallback.name == "local"
    assert fallback.last_services == ["retrieval_local"]
    assert "HTTP 500" in fallback.last_error


async def test_a_local_failure_falls_back_to_the_web(tavily):
    local = FakeLocal([], error=ConnectionError("index server down"))
    fallback = FallbackRetriever(local, TavilyRetriever(api_base_url=tavily.url))
    results = await fallback.retrieve("saturn", 10)
    assert len(results) == 3
    assert fallback.name == "tavily"
    assert fallback.last_services[0] == "tavily_search"
    assert "index server down" in fallback.last_error


async def test_both_failing_raises(tavily):
    tavily.fail["/search"] = 500
    fallback = FallbackRetriever(FakeLocal([], error=ConnectionError("down")), TavilyRetriever(api_base_url=tavily.url))
    with pytest.raises(WebSearchError):
        await fallback.retrieve("saturn", 10)


def test_make_retriever_builds_the_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("TAVILY_API_KEY", CANARY)
    with_key = make_retriever({"kind": "remote", "url": "http://127.0.0.1:9/retrieve", "web_fallback": True})
    assert isinstance(with_key, FallbackRetriever) and isinstance(with_key.web, TavilyRetriever)
    assert with_key.local.name == "remote"
    monkeypatch.delenv("TAVILY_API_KEY")
    without_key = make_retriever({"kind": "remote", "url": "http://127.0.0.1:9", "web_fallback": True})
    assert without_key.web is None and without_key.web_unavailable == UNAVAILABLE
    with pytest.raises(ValueError, match="web_fallback"):
        make_retriever({"kind": "remote", "url": "http://127.0.0.1:9", "web_fallback": "yes"})

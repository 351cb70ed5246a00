"""The reference `/retrieve` protocol: our server over an index built here, our client against it and
against reference-shaped answers, all on loopback."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestra_tui.backends.base import BackendError
from orchestra_tui.backends.launcher import ServerLauncher, free_port
from orchestra_tui.services.corpus import read_folder
from orchestra_tui.services.retrieval import LocalIndex
from orchestra_tui.services.retrieval_service import (
    BackgroundServer,
    RemoteRetriever,
    RetrievalServiceError,
    make_app,
    parse_retrieve_response,
)
from orchestra_tui.services.retrieval_setup import make_retriever

KEY_ENV = "ORCHESTRA_TUI_TEST_RETRIEVER_KEY"
KEY = "sk-retriever-canary-31415926535"
QUERIES = ["rings of a gas giant", "how to bake bread", "lava and magma", "chess opening 1.e4 c5"]


@pytest.fixture
def index(minilm, tiny_corpus, tmp_path) -> LocalIndex:
    return LocalIndex.build(read_folder(tiny_corpus), minilm, tmp_path / "index")


@pytest.fixture
def server(index):
    with BackgroundServer(make_app(index)) as running:
        yield running


def assert_same_hits(got: list[dict[str, Any]], expected: list[dict[str, Any]], tolerance: float = 1e-6) -> None:
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=tolerance)


@pytest.mark.slow
async def test_client_round_trip_matches_an_in_process_query(index, server):
    retriever = RemoteRetriever(server.url)
    try:
        for query in QUERIES:
            remote = await retriever.retrieve(query, 3)
            local = index.search(query, 3)
            assert_same_hits(remote, local)
            assert [r["content"] for r in remote] == [r["content"] for r in local]
        # The topic's own passage comes first, as in-process.
        assert (await retriever.retrieve("rings of a gas giant", 1))[0]["id"].startswith("astronomy.md")
    finally:
        await retriever.aclose()
    assert retriever.name == "remote" and retriever.price_key == "retrieval_remote"


@pytest.mark.slow
def test_the_wire_format_is_the_reference_one(index, server):
    url = server.url + "/retrieve"
    with httpx.Client(trust_env=False) as client:
        scored = client.post(url, json={"queries": QUERIES[:2], "topk": 2, "return_scores": True, "eid": "q-1"})
        assert scored.status_code == 200
        body = scored.json()
        assert len(body) == 2 and all(len(row) == 2 for row in body)
        for query, row in zip(QUERIES[:2], body, strict=True):
            assert [set(hit) for hit in row] == [{"document", "score"}] * 2
            assert_same_hits([{**hit["document"], "score": hit["score"]} for hit in row], index.search(query, 2))
            assert all(set(hit["document"]) == {"id", "content"} for hit in row)

        # Without return_scores the reference answers with the documents themselves.
        bare = client.post(url, json={"queries": [QUERIES[0]], "topk": 1}).json()
        best = index.search(QUERIES[0], 1)[0]
        assert bare == [[{"id": best["id"], "content": best["content"]}]]

        # topk defaults to the reference's 50, capped by the corpus size.
        assert len(client.post(url, json={"queries": [QUERIES[0]]}).json()[0]) == len(index)

        bad_bodies = (
            {"queries": []},
            {"queries": "one"},
            {"queries": ["q"], "topk": 0},
            {"queries": ["q"], "topk": True},
            [1],
        )
        for bad in bad_bodies:
            answer = client.post(url, json=bad)
            assert answer.status_code == 400, bad
            assert "error" in answer.json()
        assert client.post(url, content=b"not json").status_code == 400

        health = client.get(server.url + "/health").json()
        assert health == {"status": "ok", "passages": len(index), "embedder": "minilm"}


@pytest.mark.slow
async def test_an_index_served_with_a_key_refuses_other_clients(index, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with BackgroundServer(make_app(index, api_key=KEY)) as keyed:
        keyless = RemoteRetriever(keyed.url)
        keyed_client = RemoteRetriever(keyed.url, api_key_env=KEY_ENV)
        try:
            with pytest.raises(BackendError, match="HTTP 401") as info:
                await keyless.retrieve(QUERIES[0], 1)
            assert KEY not in str(info.value)
            assert_same_hits(await keyed_client.retrieve(QUERIES[0], 2), index.search(QUERIES[0], 2))
        finally:
            await keyless.aclose()
            await keyed_client.aclose()


# -- the client against reference-shaped servers -----------------------------------------------------------


def test_reference_answer_shapes_are_understood():
    answer = [
        [
            {"document": {"id": 12, "contents": '"Title"\nFlashRAG-style text'}, "score": 0.8},
            {"document": {"id": "b", "content": "plain text"}, "score": 0.5},
            {"document": {"content": "appended by the web fallback"}, "score": -1},
            {"document": {"id": "no-text"}, "score": 0.4},
            "junk",
        ]
    ]
    assert parse_retrieve_response(answer, id_prefix="remote") == [
        {"id": "12", "content": '"Title"\nFlashRAG-style text', "score": 0.8},
        {"id": "b", "content": "plain text", "score": 0.5},
        {"id": "remote#3", "content": "appended by the web fallback", "score": -1.0},
    ]
    # return_scores false: bare documents, no score.
    assert parse_retrieve_response([[{"id": 1, "content": "t"}]]) == [{"id": "1", "content": "t", "score": None}]
    assert parse_retrieve_response([[]]) == []
    for malformed in ({"results": []}, [], ["x"], None):
        with pytest.raises(RetrievalServiceError):
            parse_retrieve_response(malformed)


async def test_the_client_sends_the_reference_request():
    seen: list[dict[str, Any]] = []

    async def retrieve(request: Request) -> JSONResponse:
        seen.append(await request.json())
        return JSONResponse([[{"document": {"id": 7, "contents": "seven"}, "score": 0.7}]])

    app = Starlette(routes=[Route("/retrieve", retrieve, methods=["POST"])])
    with BackgroundServer(app) as reference:
        retriever = RemoteRetriever(reference.url + "/retrieve", eid="hle-42")
        try:
            assert await retriever.retrieve("who wrote it", 50) == [{"id": "7", "content": "seven", "score": 0.7}]
        finally:
            await retriever.aclose()
    assert seen == [{"queries": ["who wrote it"], "topk": 50, "return_scores": True, "eid": "hle-42"}]


async def test_a_server_that_is_down_is_a_bounded_error():
    retriever = RemoteRetriever(f"http://127.0.0.1:{free_port()}", max_attempts=2, retry_budget=5)
    try:
        with pytest.raises(BackendError, match="retrieval service: ConnectError from 127.0.0.1:.* after 2 attempt"):
            await retriever.retrieve("anything", 5)
    finally:
        await retriever.aclose()


def test_make_retriever_remote_kind():
    retriever = make_retriever({"kind": "remote", "url": "http://127.0.0.1:9/retrieve", "eid": 5})
    assert isinstance(retriever, RemoteRetriever)
    assert (retriever.url, retriever.eid) == ("http://127.0.0.1:9", "5")
    with pytest.raises(ValueError, match="retrieval.url"):
        make_retriever({"kind": "remote"})
    with pytest.raises(ValueError, match="http://"):
        RemoteRetriever("127.0.0.1:9")


# -- serve_index as `orchestra-tui retriever serve` runs it ---------------------------------------------


@pytest.mark.slow
async def test_serve_index_in_its_own_process(index):
    port = free_port()
    code = (
        "import sys\n"
        "from orchestra_tui.services.retrieval_service import serve_index\n"
        "serve_index(sys.argv[1], '127.0.0.1', int(sys.argv[2]), log_level='warning')\n"
    )
    command = [sys.executable, "-c", code, str(index.directory), str(port)]
    with ServerLauncher(command, port=port, name="retriever", health_path="/health", startup_timeout=300) as launcher:
        retriever = RemoteRetriever(launcher.root_url)
        try:
            assert (await retriever.health())["passages"] == len(index)
            remote = await retriever.retrieve(QUERIES[2], 2)
        finally:
            await retriever.aclose()
    # Another process may sum in another order (thread count): scores agree to float32 rounding.
    assert_same_hits(remote, index.search(QUERIES[2], 2), tolerance=1e-5)

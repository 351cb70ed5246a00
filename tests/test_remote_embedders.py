"""Embedders over `/v1/embeddings` (a real llama.cpp server on loopback) and over a GGUF in process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestra_tui.backends.launcher import ServerLauncher, free_port
from orchestra_tui.backends.serve_commands import llamacpp_command
from orchestra_tui.services.embedders import QWEN3_QUERY_PREFIX, Embedder, EmbedderError
from orchestra_tui.services.remote_embedders import LlamaCppEmbedder, OpenAIEmbedder, make_remote_embedder
from orchestra_tui.services.retrieval import LocalIndex
from orchestra_tui.services.retrieval_service import BackgroundServer

SMOLLM2_DIM = 576
TEXTS = ["Saturn has rings of ice.", "Bread needs flour, water and yeast.", "Saturn has rings of ice."]
CANARY_ENV = "ORCHESTRA_TUI_TEST_EMBED_KEY"
CANARY = "sk-embed-canary-9a8b7c6d5e4f3a2b1c0d"


@pytest.fixture(scope="module")
def embedding_server(smollm2_path):
    """llama_cpp.server in embedding mode. SmolLM2's GGUF declares no pooling, so mean pooling is set
    through a metadata override; without one the server answers one vector per token."""
    port = free_port()
    command = llamacpp_command(
        str(smollm2_path),
        port=port,
        n_ctx=2048,
        model_alias="smollm2-embed",
        extra=("--embedding", "true", "--kv_overrides", "llama.pooling_type=int:1"),
    )
    with ServerLauncher(command, port=port, name="llamacpp-embeddings", startup_timeout=300) as launcher:
        yield launcher.base_url


@pytest.fixture(scope="module")
def gguf_embedder(smollm2_path):
    return LlamaCppEmbedder(smollm2_path, pooling="mean", n_ctx=512)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to float32 rounding: llama.cpp sums in another order when a text shares a batch."""
    return np.allclose(a, b, atol=1e-5)


def assert_unit_rows(matrix: np.ndarray, rows: int, dim: int) -> None:
    assert matrix.dtype == np.float32
    assert matrix.shape == (rows, dim)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


# -- OpenAIEmbedder against llama_cpp.server -----------------------------------------------------------


@pytest.mark.slow
def test_openai_embedder_against_a_real_server(embedding_server):
    embedder = OpenAIEmbedder(embedding_server, "smollm2-embed", batch_size=2)  # two requests for three texts
    try:
        assert isinstance(embedder, Embedder)
        assert embedder.dim == SMOLLM2_DIM
        vectors = embedder.embed_documents(TEXTS)
        assert_unit_rows(vectors, 3, SMOLLM2_DIM)
        assert same(vectors[0], vectors[2])
        assert not np.allclose(vectors[0], vectors[1])
        assert embedder.embed_documents([]).shape == (0, SMOLLM2_DIM)
    finally:
        embedder.close()


@pytest.mark.slow
def test_the_query_prefix_goes_on_queries_only(embedding_server):
    plain = OpenAIEmbedder(embedding_server, "smollm2-embed")
    prefixed = OpenAIEmbedder(embedding_server, "smollm2-embed", query_prefix=QWEN3_QUERY_PREFIX)
    try:
        assert same(prefixed.embed_documents(TEXTS[:1]), plain.embed_documents(TEXTS[:1]))
        assert same(plain.embed_queries(TEXTS[:1]), plain.embed_documents(TEXTS[:1]))
        assert not np.allclose(prefixed.embed_queries(TEXTS[:1]), plain.embed_queries(TEXTS[:1]))
    finally:
        plain.close()
        prefixed.close()


@pytest.mark.slow
def test_server_and_in_process_gguf_agree(embedding_server, gguf_embedder):
    remote = OpenAIEmbedder(embedding_server, "smollm2-embed")
    try:
        cosines = np.sum(remote.embed_documents(TEXTS) * gguf_embedder.embed_documents(TEXTS), axis=1)
    finally:
        remote.close()
    assert np.all(cosines > 0.99), cosines  # same weights, same mean pooling, another process


# -- OpenAIEmbedder failure paths against a stand-in ------------------------------------------------------


def _stand_in(answer) -> tuple[BackgroundServer, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def embeddings(request: Request) -> JSONResponse:
        seen.append({"body": await request.json(), "auth": request.headers.get("authorization")})
        status, body = answer(seen[-1]["body"])
        return JSONResponse(body, status_code=status)

    return BackgroundServer(Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])), seen


def test_auth_errors_name_the_variable_not_the_key(monkeypatch):
    monkeypatch.setenv(CANARY_ENV, CANARY)
    server, seen = _stand_in(lambda body: (401, {"error": {"message": f"bad key {CANARY}"}}))
    with server:
        embedder = OpenAIEmbedder(server.url + "/v1", "m", api_key_env=CANARY_ENV, dim=4)
        with pytest.raises(EmbedderError) as info:
            embedder.embed_documents(["x"])
        embedder.close()
    assert f"HTTP 401 from 127.0.0.1:{server.port} (key from ${CANARY_ENV})" in str(info.value)
    assert CANARY not in str(info.value)
    assert seen[0]["auth"] == f"Bearer {CANARY}"
    assert seen[0]["body"] == {"model": "m", "input": ["x"]}


def test_server_errors_are_retried_a_bounded_number_of_times():
    server, seen = _stand_in(lambda body: (503, {"error": "loading"}))
    with server:
        embedder = OpenAIEmbedder(server.url + "/v1", "m", dim=4, max_attempts=2)
        with pytest.raises(EmbedderError, match="HTTP 503 .* after 2 attempt"):
            embedder.embed_documents(["x"])
        embedder.close()
    assert len(seen) == 2


def test_per_token_answers_ask_for_a_pooling_type():
    nested = {"data": [{"index": 0, "embedding": [[0.1, 0.2], [0.3, 0.4]]}]}
    server, _ = _stand_in(lambda body: (200, nested))
    with server:
        embedder = OpenAIEmbedder(server.url + "/v1", "m")
        with pytest.raises(EmbedderError, match="one vector per token"):
            embedder.embed_documents(["x"])
        embedder.close()


def test_answers_are_reordered_by_index_and_normalised():
    reversed_order = {"data": [{"index": 1, "embedding": [0.0, 2.0]}, {"index": 0, "embedding": [3.0, 4.0]}]}
    server, _ = _stand_in(lambda body: (200, reversed_order))
    with server:
        embedder = OpenAIEmbedder(server.url + "/v1", "m")
        vectors = embedder.embed_documents(["first", "second"])
        embedder.close()
    assert np.allclose(vectors, [[0.6, 0.8], [0.0, 1.0]])


def test_a_missing_key_variable_is_reported_by_name(monkeypatch):
    monkeypatch.delenv(CANARY_ENV, raising=False)
    embedder = OpenAIEmbedder(f"http://127.0.0.1:{free_port()}/v1", "m", api_key_env=CANARY_ENV, dim=4)
    with pytest.raises(EmbedderError, match=f"{CANARY_ENV} is not set"):
        embedder.embed_documents(["x"])


# -- LlamaCppEmbedder ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gguf_embeddings_are_unit_float32_and_deterministic(gguf_embedder):
    assert isinstance(gguf_embedder, Embedder)
    assert gguf_embedder.dim == SMOLLM2_DIM
    vectors = gguf_embedder.embed_documents(TEXTS)
    assert_unit_rows(vectors, 3, SMOLLM2_DIM)
    assert same(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1])
    again = gguf_embedder.embed_queries(TEXTS[:1])  # no prefix: a query embeds like a document
    assert same(again[0], vectors[0])


@pytest.mark.slow
def test_gguf_pooling_choices(smollm2_path, gguf_embedder):
    last = LlamaCppEmbedder(smollm2_path, pooling="last", n_ctx=512)
    assert not np.allclose(last.embed_documents(TEXTS[:1]), gguf_embedder.embed_documents(TEXTS[:1]))
    with pytest.raises(EmbedderError, match="declares no pooling"):
        LlamaCppEmbedder(smollm2_path, pooling="model", n_ctx=512).embed_documents(["x"])
    with pytest.raises(EmbedderError, match="unknown pooling"):
        LlamaCppEmbedder(smollm2_path, pooling="max")


@pytest.mark.slow
def test_a_local_index_over_gguf_embeddings(gguf_embedder, tmp_path):
    passages = [{"id": f"p{i}", "content": text} for i, text in enumerate(TEXTS[:2])]
    index = LocalIndex.build(passages, gguf_embedder, tmp_path / "index")
    hits = index.search(TEXTS[1], 2)
    assert [h["id"] for h in hits] == ["p1", "p0"]
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_make_remote_embedder_checks_its_spec(smollm2_path):
    openai = make_remote_embedder({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "q", "dim": 8})
    assert isinstance(openai, OpenAIEmbedder) and openai.dim == 8 and openai.name == "openai:q"
    gguf = make_remote_embedder({"kind": "llamacpp", "path": str(smollm2_path), "pooling": "last"})
    assert isinstance(gguf, LlamaCppEmbedder) and gguf.spec["pooling"] == "last"
    with pytest.raises(EmbedderError, match="needs base_url"):
        make_remote_embedder({"kind": "openai", "model": "q"})
    with pytest.raises(EmbedderError, match="does not take pooling"):
        make_remote_embedder({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "q", "pooling": "x"})
    with pytest.raises(EmbedderError, match="no GGUF file"):
        make_remote_embedder({"kind": "llamacpp", "path": "/nonexistent/model.gguf"})
    with pytest.raises(EmbedderError, match="unknown embedder kind"):
        make_remote_embedder({"kind": "sbert"})

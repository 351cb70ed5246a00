"""The reference retrieval protocol (ORCHESTRATOR.md §4), both ends.

    POST /retrieve  {"queries": [q, ...], "topk": 50, "return_scores": true, "eid": "..."}
    -> one list per query: [{"document": {"id": ..., "content": ...}, "score": 0.83}, ...]
       (with "return_scores": false, the documents themselves: [{"id": ..., "content": ...}, ...])

The server (`make_app`, `serve_index`) answers from a LocalIndex, so an index can live on another machine
(`orchestra-tui retriever serve --index DIR`). The client (`RemoteRetriever`) talks to it or to the
reference's own servers unchanged: their corpora may name the text `contents`, and their web fallback
appends documents that have no id.

`eid` is accepted and ignored here: the reference servers use it to filter hits against a per-question
allow-list of documents, which a plain index does not have. The client sends it when configured, since a
reference server drops every hit of a request without one.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from orchestra_tui.backends.http_session import HttpSession
from orchestra_tui.keys import read_key

from .retrieval import LocalIndex

DEFAULT_TOPK = 50  # what the reference asks for


class RetrievalServiceError(RuntimeError):
    """A retrieval server answered with something that is not the reference protocol."""


# -- server -------------------------------------------------------------------------------------------


def _bad_request(message: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=400)


def _shape(hit: dict[str, Any], return_scores: bool) -> dict[str, Any]:
    document = {"id": hit["id"], "content": hit["content"]}
    return {"document": document, "score": hit["score"]} if return_scores else document


def make_app(index: LocalIndex, *, default_topk: int = DEFAULT_TOPK, api_key: str | None = None) -> Any:
    """A Starlette app serving `index` over `/retrieve`, plus `GET /health`.

    With `api_key`, `/retrieve` demands `Authorization: Bearer <key>` (what RemoteRetriever sends when
    given `api_key_env`): an index served beyond this machine may hold private documents.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    expected = f"Bearer {api_key}".encode() if api_key else None

    # The embedder and Faiss are not safe to call concurrently; requests queue here, off the event loop.
    lock = threading.Lock()

    def search_all(queries: list[str], topk: int) -> list[list[dict[str, Any]]]:
        with lock:
            return [index.search(query, topk) for query in queries]

    async def retrieve(request: Request) -> JSONResponse:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse({"error": "missing or wrong API key"}, status_code=401)
        try:
            body = await request.json()
        except ValueError:
            return _bad_request("the body must be JSON")
        if not isinstance(body, dict):
            return _bad_request("the body must be a JSON object")
        queries = body.get("queries")
        if not isinstance(queries, list) or not queries or not all(isinstance(q, str) for q in queries):
            return _bad_request("'queries' must be a non-empty list of strings")
        topk = body.get("topk")
        if topk is None:
            topk = default_topk
        if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
            return _bad_request("'topk' must be a positive integer")
        return_scores = bool(body.get("return_scores", False))  # the reference's default
        hits = await asyncio.to_thread(search_all, queries, topk)
        return JSONResponse([[_shape(hit, return_scores) for hit in row] for row in hits])

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "passages": len(index), "embedder": index.embedder.name})

    return Starlette(routes=[Route("/retrieve", retrieve, methods=["POST"]), Route("/health", health)])


def serve_index(
    index_dir: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    default_topk: int = DEFAULT_TOPK,
    api_key_env: str | None = None,
    log_level: str = "info",
) -> None:
    """Load the index in `index_dir` and serve it until interrupted (blocks; Ctrl-C stops it).

    `api_key_env` names an environment variable holding the key clients must send; it must be set.
    """
    import uvicorn

    api_key = None
    if api_key_env:
        api_key = read_key(api_key_env)
        if not api_key:
            raise RetrievalServiceError(f"environment variable {api_key_env} is not set")
    index = LocalIndex.load(index_dir)
    app = make_app(index, default_topk=default_topk, api_key=api_key)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class BackgroundServer:
    """An ASGI app served by uvicorn in a daemon thread of this process.

    The socket is bound and listening before the thread starts, so clients can connect as soon as the
    constructor returns (the kernel queues them until uvicorn accepts): no start-up race, no polling.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning") -> None:
        import uvicorn

        self._socket = socket.create_server((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        # No lifespan: the apps served this way need no start-up hooks, and it keeps shutdown immediate.
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="retrieval-server", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -- client -------------------------------------------------------------------------------------------


def parse_retrieve_response(payload: Any, *, id_prefix: str = "remote") -> list[dict[str, Any]]:
    """The first query's hits as `{"id", "content", "score"}`, best first, from any reference answer shape.

    Hits without text are skipped; a hit without an id (the reference's web fallback) gets
    `{id_prefix}#{rank}`; a hit without a score (`return_scores` off) gets `None`.
    """
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], list):
        raise RetrievalServiceError("the retrieval server did not answer with a list of hit lists")
    results = []
    for rank, hit in enumerate(payload[0], start=1):
        if not isinstance(hit, dict):
            continue
        if isinstance(hit.get("document"), dict):
            document, score = hit["document"], hit.get("score")
        else:
            document, score = hit, None
        content = document.get("content")
        if not isinstance(content, str):
            content = document.get("contents")  # FlashRAG-style corpora
        if not isinstance(content, str):
            continue
        doc_id = document.get("id")
        results.append(
            {
                "id": str(doc_id) if doc_id is not None else f"{id_prefix}#{rank}",
                "content": content,
                "score": float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
            }
        )
    return results


class RemoteRetriever:
    """A Retriever that asks a `/retrieve` server (this app's or the reference's).

    `url` is the server root (`http://host:8765`) or the full `/retrieve` URL. Retries, timeouts and an
    optional API key (sent as a bearer token, read from `api_key_env` per request) come from HttpSession.
    """

    def __init__(
        self,
        url: str,
        *,
        eid: str | None = None,
        name: str = "remote",
        price_key: str = "retrieval_remote",
        api_key_env: str | None = None,
        timeout: float = 120.0,
        max_attempts: int = 3,
        retry_budget: float = 60.0,
    ) -> None:
        root = url.rstrip("/")
        if root.endswith("/retrieve"):
            root = root[: -len("/retrieve")]
        if urlsplit(root).scheme not in ("http", "https"):
            raise ValueError(f"retrieval url must start with http:// or https://, not {url!r}")
        self.url = root
        self.eid = eid
        self.name = name
        self.price_key = price_key
        self._session = HttpSession(
            root,
            label="retrieval service",
            api_key_env=api_key_env,
            timeout=timeout,
            max_attempts=max_attempts,
            retry_budget=retry_budget,
        )

    def __repr__(self) -> str:
        return f"RemoteRetriever({self.url!r})"

    async def retrieve(self, query: str, topk: int) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {"queries": [query], "topk": topk, "return_scores": True}
        if self.eid is not None:
            payload["eid"] = self.eid
        response = await self._session.send("POST", self._session.url("retrieve"), json=payload)
        try:
            data = response.json()
        except ValueError:
            raise RetrievalServiceError(f"retrieval service at {self._session.host} did not answer with JSON") from None
        return parse_retrieve_response(data, id_prefix=self.name)

    async def health(self) -> dict[str, Any]:
        """`GET /health` (both this server and the reference's have it); raises when unreachable."""
        response = await self._session.send("GET", self._session.url("health"), attempts=1)
        try:
            data = response.json()
        except ValueError:
            data = None
        return data if isinstance(data, dict) else {}

    async def aclose(self) -> None:
        await self._session.aclose()

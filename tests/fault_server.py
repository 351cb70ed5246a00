"""A scripted OpenAI-compatible server on 127.0.0.1 that misbehaves on cue, for the fault tests.

Each `POST /v1/chat/completions` takes the next reply of the script (the last one repeats). A reply is a
`Reply`, or a function of the `Request` returning one (to answer the policy and an expert differently, or
to echo what the client sent). Every other path answers as a healthy server would — `GET /v1/models`, and vLLM-style
`/tokenize` and `/detokenize` with words as tokens — so the availability probe and a policy's tokenizer
work while the chat call fails: the fault under test is the only fault.

Streams use chunked transfer encoding, as real servers do, so a connection closed mid-body is a protocol
error the client can see; `cut_clean` closes a close-delimited body instead, which looks like a normal end.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra_tui.core import events as ev
from orchestra_tui.core.trajectory import load_trajectory

Kind = str  # ok | status | hang | stall | broken | cut_clean | malformed | error_event | close | slow | trickle


@dataclass(frozen=True)
class Reply:
    kind: Kind
    text: str = ""
    status: int = 200
    retry_after: str | None = None
    after: int = 2  # chunks sent before the fault (stall, broken, cut_clean, malformed)
    gap_s: float = 0.0  # pause between chunks (slow, trickle): the server being slow, not the test waiting


def ok(text: str) -> Reply:
    return Reply("ok", text)


def status(code: int, retry_after: str | None = None, message: str = "") -> Reply:
    return Reply("status", message, status=code, retry_after=retry_after)


def hang() -> Reply:
    """Reads the request and never answers (until the server shuts down)."""
    return Reply("hang")


def stall(text: str, after: int = 2) -> Reply:
    """Headers and a few chunks, then silence."""
    return Reply("stall", text, after=after)


def broken(text: str, after: int = 2) -> Reply:
    """Headers and a few chunks, then the connection closes mid-body."""
    return Reply("broken", text, after=after)


def cut_clean(text: str, after: int = 2) -> Reply:
    """A few chunks of a close-delimited body, then a clean close without `[DONE]` or a finish reason."""
    return Reply("cut_clean", text, after=after)


def malformed(text: str, after: int = 1) -> Reply:
    """A data line that is not JSON after a few chunks, then the rest of a normal stream."""
    return Reply("malformed", text, after=after)


def error_event(message: str, after: int = 1) -> Reply:
    """A few chunks, then an `{"error": ...}` event, as servers report failures after the headers."""
    return Reply("error_event", message, after=after)


def close() -> Reply:
    """Closes the connection before sending any header."""
    return Reply("close")


def slow(text: str, gap_s: float) -> Reply:
    return Reply("slow", text, gap_s=gap_s)


def trickle(gap_s: float) -> Reply:
    """A chunk every `gap_s` seconds, forever: only a total deadline ends it."""
    return Reply("trickle", "…", gap_s=gap_s)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Script = list[Reply | Callable[[Request], Reply]]


@dataclass
class _Vocabulary:
    """Words as tokens, so /tokenize and /detokenize round-trip exactly."""

    pieces: list[str] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)

    def encode(self, text: str) -> list[int]:
        out = []
        for piece in re.findall(r"\s*\S+|\s+", text):
            if piece not in self.ids:
                self.ids[piece] = len(self.pieces)
                self.pieces.append(piece)
            out.append(self.ids[piece])
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids if 0 <= i < len(self.pieces))


def sse_events(text: str, pieces: int = 3) -> list[str]:
    """The `data:` payloads of a healthy stream answering `text`, usage and `[DONE]` included."""
    size = max(1, -(-len(text) // pieces))
    parts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    chunks = [{"model": "fault-server", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
              for p in parts]
    chunks.append({"model": "fault-server", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": len(text.split())}})
    return [json.dumps(c) for c in chunks] + ["[DONE]"]


def _event(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _head(status_code: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status_code} Scripted", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_SSE = {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"}


class FaultServer:
    def __init__(self, script: Script) -> None:
        if not script:
            raise ValueError("a script needs at least one reply")
        self.script = list(script)
        self.requests: list[Request] = []
        self._vocabulary = _Vocabulary()
        self._closing = asyncio.Event()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._chats = 0

    @property
    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    async def __aenter__(self) -> FaultServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()  # hanging and trickling replies end now
        self._server.close()
        await self._server.wait_closed()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await self._read(reader)
            if request is not None:
                self.requests.append(request)
                await self._answer(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (its timeout): what it saw is the point of the test
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _read(self, reader: asyncio.StreamReader) -> Request | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(parts[0], parts[1], headers, body)

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> None:
        if request.path.endswith("/chat/completions") and request.method == "POST":
            reply = self.script[min(self._chats, len(self.script) - 1)]
            self._chats += 1
            if callable(reply):
                reply = reply(request)
            await self._chat(reply, writer)
        elif request.path.endswith("/models"):
            self._json(writer, 200, {"object": "list", "data": [{"id": "fault-model", "object": "model"}]})
        elif request.path == "/tokenize":
            self._json(writer, 200, {"tokens": self._vocabulary.encode(str((request.json or {}).get("prompt", "")))})
        elif request.path == "/detokenize":
            self._json(writer, 200, {"prompt": self._vocabulary.decode(list((request.json or {}).get("tokens", [])))})
        else:
            self._json(writer, 404, {"error": "not found"})
        await writer.drain()

    def _json(self, writer: asyncio.StreamWriter, code: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **(extra or {})}
        writer.write(_head(code, headers) + data)

    async def _chat(self, reply: Reply, writer: asyncio.StreamWriter) -> None:
        kind = reply.kind
        if kind == "close":
            return
        if kind == "hang":
            await self._closing.wait()
            return
        if kind == "status":
            extra = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
            message = reply.text or f"scripted {reply.status}"
            self._json(writer, reply.status, {"error": {"message": message}}, extra)
            return
        events = sse_events(reply.text)
        if kind == "cut_clean":
            writer.write(_head(200, {"Content-Type": "text/event-stream"}))
            writer.write(b"".join(_event(e) for e in events[: reply.after]))
            return
        writer.write(_head(200, _SSE))
        if kind == "ok":
            writer.write(b"".join(_chunked(_event(e)) for e in events) + b"0\r\n\r\n")
        elif kind in ("stall", "broken"):
            writer.write(b"".join(_chunked(_event(e)) for e in events[: reply.after]))
            await writer.drain()
            if kind == "stall":
                await self._closing.wait()
        elif kind == "malformed":
            good = [_chunked(_event(e)) for e in events]
            bad = _chunked(b'data: {"choices": [{"index": 0, "delta": {"content": "lost\n\n')
            writer.write(b"".join(good[: reply.after]) + bad + b"".join(good[reply.after :]) + b"0\r\n\r\n")
        elif kind == "error_event":
            error = _event(json.dumps({"error": {"message": reply.text}}))
            writer.write(b"".join(_chunked(_event(e)) for e in events[: reply.after]) + _chunked(error)
                         + b"0\r\n\r\n")
        elif kind == "slow":
            for e in events:
                writer.write(_chunked(_event(e)))
                await writer.drain()
                await asyncio.sleep(reply.gap_s)
            writer.write(b"0\r\n\r\n")
        elif kind == "trickle":
            piece = events[0]
            while not self._closing.is_set():
                writer.write(_chunked(_event(piece)))
                await writer.drain()
                await asyncio.sleep(reply.gap_s)
        else:
            raise ValueError(f"unknown reply kind {kind!r}")


def assert_trajectory_complete(path: Path, events: list[ev.Event]) -> None:
    """What every fault test checks afterwards: the file parses whole, holds exactly the persistent events
    the consumer saw, ends with `episode_ended`, and every episode and tool call that started also ended."""
    trajectory = load_trajectory(path)
    assert not trajectory.torn_tail
    persisted = [e.to_dict() for e in events if not e.transient]
    assert [e.to_dict() for e in trajectory.events] == json.loads(json.dumps(persisted, default=str))
    assert isinstance(trajectory.events[-1], ev.EpisodeEnded)
    kinds = [type(e) for e in trajectory.events]
    assert kinds.count(ev.EpisodeStarted) == kinds.count(ev.EpisodeEnded)
    started = {e.call_id for e in trajectory.events if isinstance(e, ev.ToolCallStarted)}
    finished = {e.call_id for e in trajectory.events if isinstance(e, ev.ToolCallFinished)}
    assert started == finished

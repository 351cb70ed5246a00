"""The OpenAI-compatible HTTP backend: against a real llama_cpp.server, and against scripted loopback servers
for the failure paths (429, 5xx, auth errors, dead ports)."""

import asyncio
import json

import pytest

from orchestra_tui.backends.base import BackendError, ChatResult, Sampling, TextDelta, ToolCall, complete
from orchestra_tui.backends.llamacpp import LlamaCppTokenizer
from orchestra_tui.backends.openai_http import OpenAICompatBackend, StreamAccumulator
from orchestra_tui.backends.remote_tokenizer import server_root
from orchestra_tui.paths import data_dir

CANARY_ENV = "ORCHESTRA_TUI_TEST_CANARY_KEY"
CANARY = "sk-canary-7f3a9b2c1d0e4f5a6b7c8d9e"

ALIASES = {
    "search": {"search-1", "search-2", "search-3"},
    "enhance_reasoning": {"reasoner-1", "reasoner-2", "reasoner-3"},
    "answer": {"answer-1", "answer-2", "answer-3", "answer-4", "answer-math-1", "answer-math-2"},
}


@pytest.fixture
async def served(llama_server):
    backend = OpenAICompatBackend(llama_server, "smollm2")
    yield backend
    await backend.aclose()


# -- against llama_cpp.server ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_streaming_chat(served):
    items = [
        item
        async for item in served.stream(
            [{"role": "user", "content": "Count from one to ten in words."}],
            sampling=Sampling(temperature=0.7, max_tokens=24, seed=4),
        )
    ]
    deltas, result = items[:-1], items[-1]
    assert len(deltas) >= 2 and all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(result, ChatResult)
    assert result.content == "".join(d.text for d in deltas)
    # This server sends no usage chunk, so the counts come from its tokenizer and say so.
    assert result.usage.completion_tokens > 0 and result.usage.prompt_tokens > 0
    assert result.usage.estimated
    assert result.finish_reason in ("stop", "length")
    assert result.first_token_s is not None


@pytest.mark.slow
async def test_tool_call_in_content_is_parsed(served):
    tools = json.loads((data_dir("tools") / "toolorchestra" / "tools.json").read_text())
    result = await complete(
        served,
        [{"role": "system", "content": "You are good at using tools."}, {"role": "user", "content": "Problem: 2+2?"}],
        tools=tools,
        sampling=Sampling(temperature=1.0, max_tokens=80, seed=9),
        constrain_tool_call=True,  # sent as `grammar`, which llama_cpp.server honours
    )
    assert result.content.startswith("<tool_call>")
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert json.loads(call.arguments)["model"] in ALIASES[call.name]


@pytest.mark.slow
async def test_tokenizer_through_the_server(served, smollm2_path):
    text = "Doc 1: prices are $1.25 per million tokens."
    ids = await served.tokenizer.encode(text)
    # Same ids as the GGUF's own vocabulary, without the BOS the server would add.
    assert ids == LlamaCppTokenizer.from_gguf(smollm2_path).encode_sync(text)
    assert served.tokenizer.dialect is not None
    assert "".join(await served.tokenizer.decode_each(ids)) == text
    assert await served.tokenizer.decode_each([]) == []


@pytest.mark.slow
async def test_list_models(served):
    models = await served.list_models()
    assert len(models) == 1 and models[0].endswith(".gguf")


def test_server_root_drops_v1():
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("http://h:8000") == "http://h:8000"


# -- the accumulator -------------------------------------------------------------------------------------


def _chunk(delta=None, finish=None, **top):
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"choices": [choice], **top}


def test_accumulator_joins_tool_call_fragments_by_index():
    acc = StreamAccumulator()
    acc.feed(_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "search", "arguments": ""}}]}))
    acc.feed(_chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "answer", "arguments": '{"mo'}}]}))
    acc.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"model": "search-1"}'}}]}))
    acc.feed(
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": 'del": "answer-2"}'}}]}, finish="tool_calls")
    )
    assert acc.tool_calls() == [
        ToolCall("search", '{"model": "search-1"}'),
        ToolCall("answer", '{"model": "answer-2"}'),
    ]
    assert acc.finish_reason == "tool_calls"


def test_accumulator_parses_hermes_blocks_when_the_server_did_not():
    acc = StreamAccumulator()
    text = (
        "<think>\ncheap first\n</think>\n\n"
        '<tool_call>\n{"name": "search", "arguments": {"model": "search-3"}}\n</tool_call>'
    )
    deltas = [d for piece in (text[:20], text[20:50], text[50:]) for d in acc.feed(_chunk({"content": piece}))]
    assert "".join(d.text for d in deltas) == text == acc.content
    assert acc.tool_calls() == [ToolCall("search", '{"model": "search-3"}')]
    assert acc.tool_calls(parse_content=False) == []


def test_accumulator_reasoning_usage_and_errors():
    acc = StreamAccumulator()
    [thinking] = acc.feed(_chunk({"reasoning_content": "hmm", "reasoning": "hmm"}))
    assert thinking == TextDelta("hmm", reasoning=True) and acc.reasoning == "hmm"
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 5}}
    acc.feed({"choices": [], "model": "m-2025", "usage": usage})
    assert (acc.usage.prompt_tokens, acc.usage.completion_tokens, acc.usage.cached_tokens) == (7, 3, 5)
    assert acc.model == "m-2025"
    with pytest.raises(BackendError, match="overloaded"):
        acc.feed({"error": {"message": "overloaded"}})


def test_request_body_styles():
    sampling = Sampling(
        temperature=1.0, max_tokens=50, top_p=0.95, top_k=20, seed=3, extra={"min_p": 0.1, "seed": None}
    )
    default = OpenAICompatBackend("http://h/v1", "m").request_body([], tools=None, sampling=sampling)
    assert default["max_tokens"] == 50 and default["top_k"] == 20 and default["min_p"] == 0.1
    assert "seed" not in default  # an extra key set to None removes it
    assert default["stream"] is True and default["stream_options"] == {"include_usage": True}
    openai = OpenAICompatBackend("http://h/v1", "m", param_style="openai").request_body(
        [], tools=[{"type": "function", "function": {"name": "f"}}], sampling=sampling, constrain_tool_call=True
    )
    assert openai["max_completion_tokens"] == 50 and "max_tokens" not in openai
    assert "top_k" not in openai and "grammar" not in openai and openai["tools"][0]["function"]["name"] == "f"


# -- scripted loopback servers for the failure paths ----------------------------------------------------


def _sse_body(pieces):
    events = [
        {"model": "scripted", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
        for p in pieces
    ]
    events.append({"model": "scripted", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": len(pieces)}})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 answering each request with the next scripted response."""

    def __init__(self, script):
        self.script = list(script)  # (status, headers, body); the last entry repeats
        self.requests = []  # (request line, headers dict, body bytes)

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((lines[0], headers, body))
        status, extra_headers, payload = self.script[min(len(self.requests), len(self.script)) - 1]
        if callable(payload):
            payload = payload(headers)
        data = payload.encode()
        response = [f"HTTP/1.1 {status} Scripted", f"Content-Length: {len(data)}", "Connection: close"]
        response += [f"{k}: {v}" for k, v in extra_headers.items()]
        writer.write(("\r\n".join(response) + "\r\n\r\n").encode() + data)
        await writer.drain()
        writer.close()


SSE = {"Content-Type": "text/event-stream"}
JSON = {"Content-Type": "application/json"}


async def test_429_with_retry_after_is_retried_then_streams():
    script = [(429, {"Retry-After": "0", **JSON}, '{"error": "slow down"}'), (200, SSE, _sse_body(["Hel", "lo"]))]
    async with ScriptedServer(script) as server:
        backend = OpenAICompatBackend(server.base_url, "m")
        items = [item async for item in backend.stream([{"role": "user", "content": "hi"}], sampling=Sampling())]
        await backend.aclose()
    assert [i.text for i in items[:-1]] == ["Hel", "lo"]
    result = items[-1]
    assert result.content == "Hello" and result.model == "scripted"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.estimated) == (12, 2, False)
    assert len(server.requests) == 2
    assert server.requests[0][0].startswith("POST /v1/chat/completions")


async def test_persistent_500_gives_a_safe_error(monkeypatch):
    monkeypatch.setenv(CANARY_ENV, CANARY)
    script = [(500, JSON, lambda headers: json.dumps({"error": f"boom, you sent {headers.get('authorization')}"}))]
    async with ScriptedServer(script) as server:
        backend = OpenAICompatBackend(server.base_url, "m", api_key_env=CANARY_ENV, max_attempts=3)
        with pytest.raises(BackendError) as caught:
            await complete(backend, [{"role": "user", "content": "hi"}], sampling=Sampling())
        await backend.aclose()
    message = str(caught.value)
    assert len(server.requests) == 3
    assert server.requests[0][1]["authorization"] == f"Bearer {CANARY}"  # the key was really sent
    assert "500" in message and "127.0.0.1" in message
    assert CANARY not in message and CANARY not in repr(caught.value) and CANARY not in repr(backend)


async def test_auth_error_is_not_retried_and_the_echoed_key_is_not_shown(monkeypatch):
    monkeypatch.setenv(CANARY_ENV, CANARY)
    script = [(401, JSON, lambda headers: json.dumps({"error": f"bad key {headers.get('authorization')}"}))]
    async with ScriptedServer(script) as server:
        backend = OpenAICompatBackend(server.base_url, "m", api_key_env=CANARY_ENV)
        with pytest.raises(BackendError) as caught:
            await complete(backend, [{"role": "user", "content": "hi"}], sampling=Sampling())
        await backend.aclose()
    assert len(server.requests) == 1
    assert "401" in str(caught.value) and CANARY_ENV in str(caught.value) and CANARY not in str(caught.value)


async def test_client_error_body_is_quoted_with_key_like_text_scrubbed(monkeypatch):
    monkeypatch.setenv(CANARY_ENV, CANARY)
    script = [
        (400, JSON, lambda headers: json.dumps({"error": f"max_tokens too big ({headers.get('authorization')})"}))
    ]
    async with ScriptedServer(script) as server:
        backend = OpenAICompatBackend(server.base_url, "m", api_key_env=CANARY_ENV)
        with pytest.raises(BackendError) as caught:
            await complete(backend, [{"role": "user", "content": "hi"}], sampling=Sampling())
        await backend.aclose()
    assert "max_tokens too big" in str(caught.value) and CANARY not in str(caught.value)


async def test_retry_after_beyond_the_budget_gives_up_at_once():
    async with ScriptedServer([(503, {"Retry-After": "3600", **JSON}, "{}")]) as server:
        backend = OpenAICompatBackend(server.base_url, "m", retry_budget=30)
        with pytest.raises(BackendError, match="503"):
            await complete(backend, [{"role": "user", "content": "hi"}], sampling=Sampling())
        await backend.aclose()
    assert len(server.requests) == 1


async def test_missing_key_variable_is_reported_by_name(monkeypatch):
    monkeypatch.delenv(CANARY_ENV, raising=False)
    backend = OpenAICompatBackend("http://127.0.0.1:9/v1", "m", api_key_env=CANARY_ENV)
    with pytest.raises(BackendError, match=CANARY_ENV):
        await complete(backend, [{"role": "user", "content": "hi"}], sampling=Sampling())


async def test_dead_port_is_a_bounded_connection_error():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # the port is now closed: every connect is refused
    backend = OpenAICompatBackend(f"http://127.0.0.1:{port}/v1", "m", max_attempts=2)
    with pytest.raises(BackendError, match=r"ConnectError .*2 attempt"):
        await backend.list_models()
    await backend.aclose()


async def test_error_event_inside_the_stream():
    body = (
        'data: {"choices": [{"index": 0, "delta": {"content": "par"}}]}\n\n'
        'data: {"error": {"message": "KV cache full"}}\n\n'
    )
    async with ScriptedServer([(200, SSE, body)]) as server:
        backend = OpenAICompatBackend(server.base_url, "m")
        seen = []
        with pytest.raises(BackendError, match="KV cache full"):
            async for item in backend.stream([{"role": "user", "content": "hi"}], sampling=Sampling()):
                seen.append(item)
        await backend.aclose()
    assert seen == [TextDelta("par")]

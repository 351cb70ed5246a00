"""Faults of remote servers, against the scripted loopback server: 429, 500, hangs, streams that break or
stall or make no sense, connections closed before any header, slow servers. First the HTTP backend alone,
then whole episodes where an expert alias, or the policy, lives on the faulty server.

Every case ends in a recorded outcome — retried then succeeded, the alias made unavailable by its circuit
breaker, or a clean error — and the trajectory is complete.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from engine_helpers import ListRetriever
from fault_server import (
    FaultServer,
    assert_trajectory_complete,
    broken,
    close,
    cut_clean,
    hang,
    malformed,
    ok,
    slow,
    stall,
    status,
    trickle,
)

from tenacity import AsyncRetrying, RetryCallState

from orchestra_tui.backends.base import BackendError, ChatResult, Sampling, TextDelta, complete
from orchestra_tui.backends.breaker import (
    CircuitBreaker,
    EndpointUnavailable,
    backend_unavailable,
    clock_text,
    endpoint_breaker,
)
from orchestra_tui.backends.http_session import HttpSession, _Retryable, parse_retry_after
from orchestra_tui.backends.openai_http import OpenAICompatBackend
from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text
from orchestra_tui.core import events as ev
from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.session import Session, SessionOptions
from orchestra_tui.services.code_runner import CodeResult

HI = [{"role": "user", "content": "hi"}]
CODE = "Let me compute.\n```python\nprint(6 * 7)\n```"

# -- the retry policy and the breaker alone ------------------------------------------------------------


def after_failure(attempt: int, retry_after: float | None) -> RetryCallState:
    state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    exc = _Retryable("HTTP 503", retry_after, 503)
    state.set_exception((type(exc), exc, None))
    return state


def test_backoff_is_jittered_exponential_and_retry_after_is_honoured():
    session = HttpSession("http://127.0.0.1:9/v1", label="m", backoff_max=8.0)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (6, 8.0)):
        waits = {session._wait(after_failure(attempt, None)) for _ in range(40)}
        assert all(0 <= w <= ceiling for w in waits) and len(waits) > 1  # random, within the bound
    assert session._wait(after_failure(2, 2.5)) == 2.5  # the server's word, exactly


def test_retry_after_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


class Clocks:
    def __init__(self) -> None:
        self.now, self.wall = 0.0, 1_700_000_000.0

    def breaker(self, **options) -> CircuitBreaker:
        return CircuitBreaker("http://h/v1", clock=lambda: self.now, wall_clock=lambda: self.wall, **options)


def test_breaker_counts_only_failures_in_a_row():
    breaker = Clocks().breaker(threshold=3)
    for _ in range(2):
        breaker.admit("m")
        breaker.failed("HTTP 500")
    breaker.admit("m")
    breaker.succeeded()
    for _ in range(2):
        breaker.admit("m")
        breaker.failed("HTTP 500")
    assert breaker.state == "closed" and breaker.unavailable_reason() is None


def test_open_breaker_names_the_time_it_reopens():
    clocks = Clocks()
    breaker = clocks.breaker(threshold=1, cooldown_s=90)
    breaker.admit("model 'gpt-5'")
    breaker.failed("HTTP 502 from h")
    clocks.now += 30
    with pytest.raises(EndpointUnavailable) as caught:
        breaker.admit("model 'gpt-5'")
    assert caught.value.until == clocks.wall + 60
    message = str(caught.value)
    assert message.startswith("model 'gpt-5': http://h/v1 is unavailable until ")
    assert clock_text(clocks.wall + 60) in message and "HTTP 502 from h" in message
    assert breaker.unavailable_reason() in message


def test_half_open_lets_one_probe_through():
    clocks = Clocks()
    breaker = clocks.breaker(threshold=1, cooldown_s=10)
    breaker.admit("m")
    breaker.failed("reset")
    clocks.now += 10
    assert breaker.state == "half_open" and breaker.unavailable_reason() is None  # offered again
    breaker.admit("m")  # the probe
    with pytest.raises(EndpointUnavailable, match="being probed"):
        breaker.admit("m")
    breaker.failed("reset again")  # a failed probe re-opens for a whole cool-down
    assert breaker.state == "open"
    clocks.now += 10
    breaker.admit("m")
    breaker.abandoned()  # a cancelled probe frees the slot for the next call
    breaker.admit("m")
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.failures == 0


def test_one_breaker_per_endpoint_shared_by_its_backends():
    a = OpenAICompatBackend("http://10.0.0.1:8000/v1/", "model-a")
    b = OpenAICompatBackend("http://10.0.0.1:8000/v1", "model-b")
    c = OpenAICompatBackend("http://10.0.0.2:8000/v1", "model-c")
    assert a.breaker is b.breaker is endpoint_breaker("http://10.0.0.1:8000/v1")
    assert c.breaker is not a.breaker
    for _ in range(a.breaker.threshold):
        a.breaker.admit("m")
        a.breaker.failed("ConnectError")
    # What the engine reads to withhold every alias on that endpoint before the policy sees it.
    assert "unavailable until" in backend_unavailable(b)
    assert backend_unavailable(c) is None and backend_unavailable(ScriptedBackend("x")) is None


# -- the HTTP backend alone ---------------------------------------------------------------------------


def backend(server: FaultServer, **options) -> OpenAICompatBackend:
    # A breaker of its own: the shared registry is keyed by URL, and a port may be reused by a later test.
    options = {"timeout": 0.5, "connect_timeout": 1.0, "backoff_max": 0.05, "max_attempts": 2,
               "breaker": CircuitBreaker(server.base_url), **options}
    return OpenAICompatBackend(server.base_url, "m", **options)


async def drain(b: OpenAICompatBackend) -> tuple[list[TextDelta], ChatResult | None, BackendError | None]:
    deltas, result = [], None
    try:
        async for item in b.stream(HI, sampling=Sampling()):
            if isinstance(item, ChatResult):
                result = item
            else:
                deltas.append(item)
    except BackendError as exc:
        return deltas, result, exc
    finally:
        await b.aclose()
    return deltas, result, None


@pytest.mark.parametrize(
    ("first", "why"),
    [
        (status(429, retry_after="0"), "rate limited, with Retry-After"),
        (status(503, retry_after="0"), "overloaded"),
        (status(500), "server error, jittered backoff"),
        (close(), "connection closed before the headers"),
        (hang(), "no answer within the read timeout"),
    ],
)
async def test_failures_before_the_first_byte_are_retried(first, why):
    async with FaultServer([first, ok("Hello there")]) as server:
        b = backend(server, timeout=0.3)
        deltas, result, error = await drain(b)
    assert error is None, why
    assert result.content == "Hello there" == "".join(d.text for d in deltas)
    assert len(server.chat_requests) == 2
    assert b.breaker.state == "closed" and b.breaker.failures == 0


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (broken("one two three four five six"), r"broke the stream \(RemoteProtocolError\)"),
        (stall("one two three four five six"), r"broke the stream \(ReadTimeout\)"),
        (malformed("one two three four five six", after=2), "not JSON"),
        (cut_clean("one two three four five six"), "ended the stream before the answer was complete"),
    ],
)
async def test_a_stream_failing_after_the_first_byte_is_a_clean_error_not_a_retry(reply, message):
    async with FaultServer([reply, ok("never asked for")]) as server:
        b = backend(server, timeout=0.3)
        deltas, result, error = await drain(b)
    # The text already streamed stays shown; the call fails instead of passing half an answer for a whole.
    assert deltas and result is None
    assert error is not None and re.search(message, str(error)), error
    assert "127.0.0.1" in str(error)
    assert len(server.chat_requests) == 1  # never resent: its first half is already on the screen
    assert b.breaker.failures == 1


async def test_persistent_failure_is_bounded_by_attempts():
    async with FaultServer([status(500)]) as server:
        b = backend(server, max_attempts=3)
        _, result, error = await drain(b)
    assert result is None and "HTTP 500" in str(error) and "after 3 attempt(s)" in str(error)
    assert len(server.chat_requests) == 3


async def test_a_hang_is_bounded_by_the_total_deadline_whatever_the_attempts():
    async with FaultServer([hang()]) as server:
        b = backend(server, timeout=0.2, max_attempts=1000, retry_budget=1000, total_timeout=0.6)
        _, _, error = await drain(b)
    assert "no complete answer" in str(error) and "within 0.6 s" in str(error)
    assert 1 <= len(server.chat_requests) < 1000


async def test_a_server_trickling_forever_is_ended_by_the_total_deadline():
    async with FaultServer([trickle(gap_s=0.02)]) as server:
        b = backend(server, timeout=5.0, total_timeout=0.5)
        deltas, result, error = await drain(b)
    assert deltas and result is None
    assert "within 0.5 s" in str(error)


async def test_a_slow_server_is_not_cut_by_the_read_timeout():
    # Each pause is under the read timeout, all of them together are well over it: the read timeout is
    # the longest silence, not a total.
    async with FaultServer([slow("one two three four five six", gap_s=0.15)]) as server:
        b = backend(server, timeout=0.6)
        deltas, result, error = await drain(b)
    assert error is None and result.content == "one two three four five six" and len(deltas) == 3
    assert len(server.chat_requests) == 1


async def test_a_long_retry_after_gives_up_at_once_and_opens_the_breaker_until_then():
    wall = [1_000_000.0]
    now = [0.0]
    breaker = CircuitBreaker("x", clock=lambda: now[0], wall_clock=lambda: wall[0])
    async with FaultServer([status(429, retry_after="3600"), ok("later")]) as server:
        b = backend(server, breaker=breaker, retry_budget=30)
        _, _, error = await drain(b)
        assert "HTTP 429" in str(error) and len(server.chat_requests) == 1
        assert breaker.state == "open"  # one failure, but the server asked for an hour of quiet
        b = backend(server, breaker=breaker)
        _, _, error = await drain(b)
        assert isinstance(error, EndpointUnavailable)
        assert error.until == wall[0] + 3600
        now[0] += 3600  # the hour is over: the next call is the probe, and it succeeds
        _, result, error = await drain(backend(server, breaker=breaker))
    assert error is None and result.content == "later" and breaker.state == "closed"
    assert len(server.chat_requests) == 2


async def test_the_breaker_opens_fails_fast_then_probes():
    now = [0.0]
    breaker = CircuitBreaker("x", threshold=2, cooldown_s=30, clock=lambda: now[0])
    async with FaultServer([status(500), status(500), ok("back")]) as server:
        for _ in range(2):
            _, _, error = await drain(backend(server, breaker=breaker, max_attempts=1))
            assert "HTTP 500" in str(error)
        assert breaker.state == "open"
        _, _, error = await drain(backend(server, breaker=breaker, max_attempts=1))
        assert isinstance(error, EndpointUnavailable) and "unavailable until" in str(error)
        assert len(server.chat_requests) == 2  # failed fast: nothing was sent
        now[0] += 30
        _, result, error = await drain(backend(server, breaker=breaker, max_attempts=1))
    assert error is None and result.content == "back"
    assert breaker.state == "closed" and len(server.chat_requests) == 3


async def test_a_refused_request_does_not_count_against_the_endpoint():
    breaker = CircuitBreaker("x", threshold=1)
    async with FaultServer([status(400)]) as server:
        _, _, error = await drain(backend(server, breaker=breaker))
    assert "HTTP 400" in str(error)
    assert breaker.state == "closed"  # a 400 is the request's fault: the server is up


async def test_complete_drains_a_healthy_stream():
    async with FaultServer([ok("fine")]) as server:
        b = backend(server)
        result = await complete(b, HI, sampling=Sampling())
        await b.aclose()
    assert result.content == "fine" and result.usage.prompt_tokens == 20


# -- whole episodes -----------------------------------------------------------------------------------


class FakeRunner:
    """Code execution is not under test here: print what the snippet would."""

    name = "fake"

    async def run(self, code: str, *, timeout_s: float = 60) -> CodeResult:
        return CodeResult("42\n", "", 0, False, 0.0, self.name, False)


def write_catalog(folder: Path, base_url: str, *, faulty: str, max_attempts: int = 2) -> Path:
    """A catalog whose `faulty` role (an expert alias, or the policy) lives on the fault server; the other
    backends are injected scripted stand-ins."""
    expert_backend = "faulty" if faulty == "expert" else "expert"
    policy_backend = "faulty" if faulty == "policy" else "policy"
    path = folder / "faults.toml"
    path.write_text(f"""
[catalog]
name = "faults"

[backends.policy]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "Qwen/Qwen3-8B"

[backends.expert]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "gpt-5"

[backends.faulty]
kind = "openai"
base_url = "{base_url}"
model = "{"Qwen/Qwen3-8B" if faulty == "policy" else "gpt-5"}"
timeout = 0.3
connect_timeout = 1.0
max_attempts = {max_attempts}
retry_budget = 10

[policy]
backend = "{policy_backend}"
max_tokens = 200

[expert_defaults]
backend = "expert"
max_tokens = 200
doc_chars = 1000
code_tokens = 1000
context_tokens = 2000

[experts.search-1]
[experts.reasoner-1]
[experts.reasoner-2]
backend = "{expert_backend}"
[experts.answer-1]
answer_style = "gpt"
""", encoding="utf-8")
    return path


def fault_session(tmp_path: Path, base_url: str, *, faulty: str, policy=None, expert=None, **kw) -> Session:
    catalog = load_catalog(write_catalog(tmp_path, base_url, faulty=faulty, **kw))
    backends = {"expert": expert or ScriptedBackend("<answer>42</answer>", model="gpt-5")}
    if policy is not None:
        backends["policy"] = policy
    return Session(
        SessionOptions(catalog=catalog.path, trajectory=tmp_path / "t.jsonl", max_rounds=6),
        catalog=catalog,
        backends=backends,
        retriever=ListRetriever(["Paris is the capital of France."]),
        code_runner=FakeRunner(),
    )


async def run(session: Session, question: str = "What is 6 * 7?") -> list[ev.Event]:
    try:
        return [e async for e in session.ask(question)]
    finally:
        await session.aclose()


def finished_calls(events: list[ev.Event], alias: str) -> list[ev.ToolCallFinished]:
    ids = {e.call_id for e in events if isinstance(e, ev.ToolCallStarted) and e.alias == alias}
    return [e for e in events if isinstance(e, ev.ToolCallFinished) and e.call_id in ids]


EXPERT_CASES = [
    # (script, status of the faulty call, what its error says, chat requests the server saw)
    ([ok(CODE)], "ok", None, 1),
    ([status(429, retry_after="0"), ok(CODE)], "ok", None, 2),
    ([close(), ok(CODE)], "ok", None, 2),
    ([slow(CODE, gap_s=0.05)], "ok", None, 1),
    ([status(500, retry_after="0")], "error", "HTTP 500", 2),
    ([hang()], "error", "ReadTimeout", 2),
    ([broken(CODE)], "error", "RemoteProtocolError", 1),
    ([stall(CODE)], "error", "ReadTimeout", 1),
    ([malformed(CODE)], "error", "not JSON", 1),
    ([close()], "error", "RemoteProtocolError", 2),
]


@pytest.mark.parametrize(("script", "outcome", "error", "requests"), EXPERT_CASES)
async def test_an_expert_on_a_faulty_server(tmp_path, script, outcome, error, requests):
    policy = ScriptedBackend([tool_call_text("enhance_reasoning", "reasoner-2"), tool_call_text("answer", "answer-1")])
    async with FaultServer(script) as server:
        events = await run(fault_session(tmp_path, server.base_url, faulty="expert", policy=policy))
    [call] = finished_calls(events, "reasoner-2")
    assert call.status == outcome
    if error is None:
        assert call.error is None
        assert [e.stdout for e in events if isinstance(e, ev.CodeExecuted)] == ["42\n"]
    else:
        assert error in (call.error or ""), call
        assert not any(isinstance(e, ev.CodeExecuted) for e in events)
    assert len(server.chat_requests) == requests
    # The failed call consumed its round; the episode went on and answered.
    ended = events[-1]
    assert isinstance(ended, ev.EpisodeEnded) and (ended.status, ended.answer) == ("answered", "42")
    assert_trajectory_complete(tmp_path / "t.jsonl", events)


async def test_an_expert_that_keeps_failing_is_made_unavailable(tmp_path):
    policy = ScriptedBackend([tool_call_text("enhance_reasoning", "reasoner-2")] * 4
                             + [tool_call_text("answer", "answer-1")])
    async with FaultServer([status(500, retry_after="0")]) as server:
        session = fault_session(tmp_path, server.base_url, faulty="expert", policy=policy, max_attempts=1)
        events = await run(session)
    calls = finished_calls(events, "reasoner-2")
    assert [c.status for c in calls[:3]] == ["error"] * 3 and all("HTTP 500" in c.error for c in calls[:3])
    # The breaker opened after three failed calls. The fourth was not sent, and the record says until when:
    # as the call's error, or as a refusal once the engine withholds the alias.
    later = [c.error for c in calls[3:]] + [r.detail for r in events
                                            if isinstance(r, ev.RoundRejected) and r.reason == "refused"]
    assert len(later) == 1 and "unavailable until" in later[0]
    assert len(server.chat_requests) == 3
    assert (events[-1].status, events[-1].answer) == ("answered", "42")
    assert_trajectory_complete(tmp_path / "t.jsonl", events)


async def test_an_alias_whose_breaker_is_open_is_not_offered_to_the_policy(tmp_path):
    policy = ScriptedBackend([tool_call_text("enhance_reasoning", "reasoner-2")] * 4
                             + [tool_call_text("answer", "answer-1")])
    async with FaultServer([status(500, retry_after="0")]) as server:
        events = await run(fault_session(tmp_path, server.base_url, faulty="expert", policy=policy, max_attempts=1))
    rounds = [e for e in events if isinstance(e, ev.RoundStarted)]
    assert "reasoner-2" in json.dumps(rounds[2].tools) and "reasoner-2" not in json.dumps(rounds[3].tools)
    [refused] = [e for e in events if isinstance(e, ev.RoundRejected)]
    assert (refused.round, refused.reason) == (4, "refused") and "unavailable until" in refused.detail
    assert len(finished_calls(events, "reasoner-2")) == 3 and len(server.chat_requests) == 3
    assert (events[-1].status, events[-1].answer) == ("answered", "42")


ANSWER_CALL = tool_call_text("answer", "answer-1", thinking="Easy enough.")

POLICY_CASES = [
    # (script, episode status, rejected rounds, chat requests)
    ([status(429, retry_after="0"), ok(ANSWER_CALL)], "answered", 0, 2),
    ([hang(), ok(ANSWER_CALL)], "answered", 0, 2),
    ([broken(ANSWER_CALL), ok(ANSWER_CALL)], "answered", 1, 2),
    ([malformed(ANSWER_CALL), ok(ANSWER_CALL)], "answered", 1, 2),
    ([slow(ANSWER_CALL, gap_s=0.05)], "answered", 0, 1),
    ([status(500, retry_after="0")], "error", 3, 6),
    ([stall(ANSWER_CALL)], "error", 3, 3),
]


@pytest.mark.parametrize(("script", "outcome", "rejected", "requests"), POLICY_CASES)
async def test_the_policy_on_a_faulty_server(tmp_path, script, outcome, rejected, requests):
    async with FaultServer(script) as server:
        events = await run(fault_session(tmp_path, server.base_url, faulty="policy"))
    rejections = [e for e in events if isinstance(e, ev.RoundRejected)]
    assert len(rejections) == rejected and all(r.reason == "error" for r in rejections)
    ended = events[-1]
    assert isinstance(ended, ev.EpisodeEnded) and ended.status == outcome
    if outcome == "answered":
        assert ended.answer == "42"
    else:
        assert "the policy failed 3 rounds in a row" in ended.error
    assert len(server.chat_requests) == requests
    assert_trajectory_complete(tmp_path / "t.jsonl", events)


async def test_a_policy_whose_breaker_is_open_fails_fast_in_the_next_episode(tmp_path):
    async with FaultServer([status(500, retry_after="0")]) as server:
        session = fault_session(tmp_path, server.base_url, faulty="policy", max_attempts=1)
        try:
            first = [e async for e in session.ask("What is 6 * 7?")]
            sent = len(server.chat_requests)
            second = [e async for e in session.ask("And 7 * 8?")]
        finally:
            await session.aclose()
    assert first[-1].status == second[-1].status == "error"
    assert sent == 3 and len(server.chat_requests) == 3  # the second episode sent nothing
    details = [e.detail for e in second if isinstance(e, ev.RoundRejected)]
    assert len(details) == 3 and all("unavailable until" in d for d in details)
    assert_trajectory_complete(tmp_path / "t.jsonl", first + second)

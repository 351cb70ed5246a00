"""Several endpoints behind one alias (backends/pool.py): least-load spreading, one endpoint per episode,
failover once, bounded memory — with gated fake endpoints (each call waits until the test lets it finish),
then two real llama.cpp servers on loopback behind one alias."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestra_tui.backends.base import BackendError, ChatResult, Sampling, TextDelta, Usage, complete
from orchestra_tui.backends.breaker import CircuitBreaker, EndpointUnavailable, backend_unavailable
from orchestra_tui.backends.factory import check_spec, make_backend
from orchestra_tui.backends.http_session import HttpBackendError
from orchestra_tui.backends.launcher import free_port
from orchestra_tui.backends.openai_http import OpenAICompatBackend
from orchestra_tui.backends.pool import EndpointPool, episode_scope
from orchestra_tui.backends.scripted import ScriptedBackend, WordTokenizer, tool_call_text
from orchestra_tui.core.catalog import CatalogError, parse_catalog

WAIT_S = 10.0  # a guard against a hung test, never a timing assumption


class GatedEndpoint:
    """A fake endpoint: each call announces itself on the shared `arrivals` queue as (endpoint, text, gate)
    and answers only once the test sets the gate. `error` is raised before any delta, or after the first
    one with `error_after_delta`. An optional breaker is consulted first, as the HTTP backend does."""

    kind = "fake"
    model = "pooled-model"

    def __init__(self, name: str, arrivals: asyncio.Queue, *, error: BaseException | None = None,
                 error_after_delta: bool = False, breaker: CircuitBreaker | None = None) -> None:
        self.name = name
        self.base_url = f"http://{name}.test/v1"
        self.arrivals = arrivals
        self.error = error
        self.error_after_delta = error_after_delta
        self.breaker = breaker
        self.calls = 0
        self.closed = False
        self.tokenizer = WordTokenizer()

    async def stream(self, messages: list[dict[str, Any]], *, tools: Any = None, sampling: Sampling,
                     constrain_tool_call: bool = False):
        self.calls += 1
        if self.breaker is not None:
            self.breaker.admit(self.name)
        text = messages[-1]["content"]
        if self.error is not None and not self.error_after_delta:
            await self.arrivals.put((self.name, text, None))
            raise self.error
        gate = asyncio.Event()
        await self.arrivals.put((self.name, text, gate))
        await gate.wait()
        yield TextDelta(f"from {self.name}")
        if self.error is not None:
            raise self.error
        yield ChatResult(content=f"from {self.name}", tool_calls=[], usage=Usage(1, 1), seconds=0.0,
                         model=self.model)

    async def aclose(self) -> None:
        self.closed = True


def fakes(arrivals: asyncio.Queue, names: str = "ab", **options: Any) -> list[GatedEndpoint]:
    return [GatedEndpoint(name, arrivals, **options) for name in names]


def url(name: str) -> str:
    return f"http://{name}.test/v1"


async def call(pool: EndpointPool, episode: str | None, text: str) -> ChatResult:
    """One call, made inside `episode` the way the engine makes them (the id set in the calling task)."""
    if episode is not None:
        episode_scope.set(episode)
    return await complete(pool, [{"role": "user", "content": text}], sampling=Sampling())


async def rounds(pool: EndpointPool, episode: str, count: int) -> None:
    episode_scope.set(episode)
    for number in range(count):
        await complete(pool, [{"role": "user", "content": f"{episode}/{number}"}], sampling=Sampling())


async def arrival(arrivals: asyncio.Queue) -> tuple[str, str, asyncio.Event | None]:
    return await asyncio.wait_for(arrivals.get(), WAIT_S)


async def finish(gate: asyncio.Event, task: asyncio.Task) -> ChatResult:
    gate.set()
    return await asyncio.wait_for(task, WAIT_S)


# --- least load -------------------------------------------------------------------------------------


async def test_each_call_goes_to_the_endpoint_with_fewest_requests_in_flight():
    arrivals: asyncio.Queue = asyncio.Queue()
    a, b, c = fakes(arrivals, "abc")
    pool = EndpointPool([a, b, c])
    tasks = [asyncio.create_task(call(pool, None, f"q{i}")) for i in range(3)]
    first = [await arrival(arrivals) for _ in tasks]
    assert [where for where, _, _ in first] == ["a", "b", "c"]
    assert pool.in_flight == (1, 1, 1)

    # b finishes: the next call goes to b, the only idle endpoint — not back to a as a rotation would.
    assert (await finish(first[1][2], tasks[1])).content == "from b"
    assert pool.in_flight == (1, 0, 1)
    fourth = asyncio.create_task(call(pool, None, "q3"))
    where, _, gate4 = await arrival(arrivals)
    assert where == "b" and pool.in_flight == (1, 1, 1)
    # Everything equally busy: the order listed decides.
    fifth = asyncio.create_task(call(pool, None, "q4"))
    where, _, gate5 = await arrival(arrivals)
    assert where == "a" and pool.in_flight == (2, 1, 1)

    for gate, task in ((first[0][2], tasks[0]), (first[2][2], tasks[2]), (gate4, fourth), (gate5, fifth)):
        await finish(gate, task)
    assert pool.in_flight == (0, 0, 0)
    assert pool.served == (2, 2, 1)
    assert pool.episodes == 0  # calls outside episodes leave no assignment behind


async def test_new_episodes_break_ties_by_fewest_assigned_episodes():
    arrivals: asyncio.Queue = asyncio.Queue()
    pool = EndpointPool(fakes(arrivals, "abc"))
    homes = []
    for episode in ("e0", "e1", "e2", "e3"):  # one after another: nothing is ever in flight at a pick
        task = asyncio.create_task(call(pool, episode, "hello"))
        where, _, gate = await arrival(arrivals)
        await finish(gate, task)
        homes.append(where)
    assert homes == ["a", "b", "c", "a"]
    assert pool.assigned == (2, 1, 1)
    assert [pool.endpoint_for(e) for e in ("e0", "e1", "e2", "e3")] == [url(h) for h in homes]


# --- one endpoint per episode -------------------------------------------------------------------------


async def test_an_episode_stays_on_its_endpoint_even_when_another_is_less_loaded():
    arrivals: asyncio.Queue = asyncio.Queue()
    pool = EndpointPool(fakes(arrivals))
    e1_first = asyncio.create_task(call(pool, "e1", "e1 first"))
    assert (await arrival(arrivals))[0] == "a"
    e2_first = asyncio.create_task(call(pool, "e2", "e2 first"))
    _, _, e2_gate = await arrival(arrivals)
    await finish(e2_gate, e2_first)
    assert pool.in_flight == (1, 0)

    # e1 calls again while its first call still runs: b is idle, but e1 belongs to a.
    e1_second = asyncio.create_task(call(pool, "e1", "e1 second"))
    where, text, _ = await arrival(arrivals)
    assert (where, text) == ("a", "e1 second")
    assert pool.in_flight == (2, 0)
    # And e2 stays on b when a is the busy one... and when a is idle again.
    e2_second = asyncio.create_task(call(pool, "e2", "e2 second"))
    assert (await arrival(arrivals))[0] == "b"
    e1_first.cancel()
    e1_second.cancel()
    await asyncio.gather(e1_first, e1_second, return_exceptions=True)
    assert pool.in_flight == (0, 1)
    e2_third = asyncio.create_task(call(pool, "e2", "e2 third"))
    assert (await arrival(arrivals))[0] == "b"
    e2_second.cancel()
    e2_third.cancel()
    await asyncio.gather(e2_second, e2_third, return_exceptions=True)
    assert pool.in_flight == (0, 0)


async def test_concurrent_episodes_each_keep_one_endpoint_while_the_load_shifts():
    arrivals: asyncio.Queue = asyncio.Queue()
    pool = EndpointPool(fakes(arrivals))
    lengths = {"e0": 3, "e1": 1, "e2": 3, "e3": 1, "e4": 3, "e5": 3}
    tasks = {e: asyncio.create_task(rounds(pool, e, n)) for e, n in lengths.items()}
    held: dict[str, tuple[str, asyncio.Event]] = {}
    seen: dict[str, list[str]] = {e: [] for e in lengths}
    for _ in lengths:
        where, text, gate = await arrival(arrivals)
        episode = text.split("/")[0]
        held[episode] = (where, gate)
        seen[episode].append(where)
    assert {e: seen[e][0] for e in lengths} == {"e0": "a", "e1": "b", "e2": "a", "e3": "b", "e4": "a", "e5": "b"}

    # e1 and e3 end: a now has three calls in flight, b one. Least load alone would send the next call of
    # every episode on a to b.
    for episode in ("e1", "e3"):
        held.pop(episode)[1].set()
        await asyncio.wait_for(tasks[episode], WAIT_S)
    assert pool.in_flight == (3, 1)
    order = ["e2", "e4", "e0", "e5"]
    for turn in range(2):
        for episode in order:
            held.pop(episode)[1].set()
            where, text, gate = await arrival(arrivals)
            assert text == f"{episode}/{turn + 1}"
            held[episode] = (where, gate)
            seen[episode].append(where)
        order = order[1:] + order[:1]
    for _, gate in held.values():
        gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks.values()), WAIT_S)

    assert {e: set(w) for e, w in seen.items()} == {
        "e0": {"a"}, "e1": {"b"}, "e2": {"a"}, "e3": {"b"}, "e4": {"a"}, "e5": {"b"}}
    assert all(len(seen[e]) == n for e, n in lengths.items())
    assert {e: pool.last_endpoint_for(e) for e in lengths} == {e: url(w[0]) for e, w in seen.items()}
    assert pool.served == (9, 5) and pool.in_flight == (0, 0)


# --- failover ---------------------------------------------------------------------------------------------


async def test_an_endpoint_failing_before_any_text_moves_the_episode_once():
    arrivals: asyncio.Queue = asyncio.Queue()
    a, b = fakes(arrivals)
    a.error = HttpBackendError("model 'pooled-model': a.test does not answer", None)
    pool = EndpointPool([a, b])
    task = asyncio.create_task(call(pool, "e1", "hello"))
    assert (await arrival(arrivals))[0] == "a"
    where, _, gate = await arrival(arrivals)
    assert where == "b"
    result = await finish(gate, task)
    assert result.content == "from b" and result.model == "pooled-model"
    assert pool.endpoint_for("e1") == pool.last_endpoint_for("e1") == url("b")
    assert pool.assigned == (0, 1) and pool.in_flight == (0, 0)

    # a is back and idle, as is b: the episode stays where it moved (least load alone would pick a).
    a.error = None
    task = asyncio.create_task(call(pool, "e1", "again"))
    where, _, gate = await arrival(arrivals)
    await finish(gate, task)
    assert where == "b" and (a.calls, b.calls) == (1, 2)


async def test_failover_is_tried_once_and_not_after_text_or_for_a_refused_request():
    arrivals: asyncio.Queue = asyncio.Queue()
    down = HttpBackendError("model 'pooled-model': does not answer", None)
    pool = EndpointPool(fakes(arrivals, "abc", error=down))
    with pytest.raises(BackendError, match="does not answer"):
        await call(pool, "e1", "hello")
    assert [pool.members[i].calls for i in range(3)] == [1, 1, 0]
    assert pool.in_flight == (0, 0, 0)

    # A 400 proves the server is up and would be refused anywhere: not moved.
    a, b = fakes(arrivals, error=HttpBackendError("model 'pooled-model': HTTP 400 bad request", 400))
    pool = EndpointPool([a, b])
    with pytest.raises(HttpBackendError, match="400"):
        await call(pool, "e2", "hello")
    assert (a.calls, b.calls) == (1, 0) and pool.endpoint_for("e2") == url("a")

    # Text already handed on cannot be taken back: the error reaches the caller, nothing is retried.
    arrivals = asyncio.Queue()
    a, b = fakes(arrivals, error=down, error_after_delta=True)
    pool = EndpointPool([a, b])
    task = asyncio.create_task(call(pool, "e3", "hello"))
    where, _, gate = await arrival(arrivals)
    gate.set()
    with pytest.raises(BackendError, match="does not answer"):
        await asyncio.wait_for(task, WAIT_S)
    assert where == "a" and (a.calls, b.calls) == (1, 0) and pool.in_flight == (0, 0)


async def test_a_real_endpoint_that_refuses_connections_fails_over_and_its_breaker_keeps_new_episodes_away():
    arrivals: asyncio.Queue = asyncio.Queue()
    dead_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    dead = OpenAICompatBackend(dead_url, "pooled-model", max_attempts=1,
                               breaker=CircuitBreaker(dead_url, threshold=1, cooldown_s=600))
    live = GatedEndpoint("b", arrivals)
    log: list[tuple[str | None, str]] = []
    pool = EndpointPool([Spy(dead, log), live])  # type: ignore[list-item]
    task = asyncio.create_task(call(pool, "e1", "hello"))
    where, _, gate = await arrival(arrivals)
    assert (await finish(gate, task)).content == "from b"
    assert where == "b" and pool.endpoint_for("e1") == url("b")
    assert dead.breaker.state == "open" and backend_unavailable(pool) is None  # b still serves the alias

    # A new episode while b is busy: least load would pick the idle dead endpoint; its open breaker says no.
    busy = asyncio.create_task(call(pool, "e1", "busy"))
    _, _, busy_gate = await arrival(arrivals)
    task = asyncio.create_task(call(pool, "e2", "hello"))
    where, _, gate = await arrival(arrivals)
    assert where == "b" and pool.endpoint_for("e2") == url("b")
    assert log == [("e1", dead_url)]  # tried once, by e1; never again while its breaker is open
    await finish(gate, task)
    await finish(busy_gate, busy)
    await pool.aclose()


async def test_the_pool_is_unavailable_only_when_every_endpoint_is():
    arrivals: asyncio.Queue = asyncio.Queue()
    breakers = [CircuitBreaker(url(n), threshold=1, cooldown_s=600) for n in "ab"]
    a, b = (GatedEndpoint(n, arrivals, breaker=br) for n, br in zip("ab", breakers, strict=True))
    pool = EndpointPool([a, b])
    breakers[0].failed("boom")
    assert backend_unavailable(a) and backend_unavailable(pool) is None
    breakers[1].failed("boom")
    reason = backend_unavailable(pool)
    assert reason and "every endpoint is unavailable" in reason and url("a") in reason and url("b") in reason
    with pytest.raises(EndpointUnavailable):
        await call(pool, "e1", "hello")
    assert (a.calls, b.calls) == (1, 1)


# --- bounded memory ------------------------------------------------------------------------------------


async def test_assignments_are_bounded_in_number_least_recently_used_first():
    arrivals: asyncio.Queue = asyncio.Queue()
    pool = EndpointPool(fakes(arrivals), max_episodes=3)

    async def one(episode: str) -> None:
        task = asyncio.create_task(call(pool, episode, "x"))
        _, _, gate = await arrival(arrivals)
        await finish(gate, task)

    for episode in ("e0", "e1", "e2", "e0", "e3"):  # e0 used again: e1 is now the oldest
        await one(episode)
    assert pool.episodes == 3 and sum(pool.assigned) == 3
    assert pool.endpoint_for("e1") is None
    assert all(pool.endpoint_for(e) for e in ("e0", "e2", "e3"))
    for number in range(4, 40):
        await one(f"e{number}")
    assert pool.episodes == 3 and sum(pool.assigned) == 3


async def test_idle_assignments_are_forgotten_but_never_one_in_flight():
    arrivals: asyncio.Queue = asyncio.Queue()
    now = [0.0]
    pool = EndpointPool(fakes(arrivals), idle_s=100, max_episodes=1, clock=lambda: now[0])
    long_call = asyncio.create_task(call(pool, "long", "x"))
    _, _, long_gate = await arrival(arrivals)

    async def one(episode: str) -> None:
        task = asyncio.create_task(call(pool, episode, "x"))
        _, _, gate = await arrival(arrivals)
        await finish(gate, task)

    now[0] = 500.0  # "long" is both idle by its start time and over the limit: still kept, it is in flight
    await one("short-1")
    await one("short-2")
    assert pool.endpoint_for("long") == url("a") and pool.endpoint_for("short-1") is None
    assert pool.episodes == 2
    await finish(long_gate, long_call)

    now[0] = 550.0
    await one("short-3")  # over the limit again; "long" is no longer in flight
    assert pool.endpoint_for("long") is None and pool.episodes == 1

    pool = EndpointPool(fakes(arrivals), idle_s=100, clock=lambda: now[0])
    now[0] = 0.0
    await one_on(pool, arrivals, "old")
    now[0] = 50.0
    await one_on(pool, arrivals, "recent")
    now[0] = 120.0
    await one_on(pool, arrivals, "new")
    assert pool.endpoint_for("old") is None
    assert pool.endpoint_for("recent") and pool.endpoint_for("new")


async def one_on(pool: EndpointPool, arrivals: asyncio.Queue, episode: str) -> None:
    task = asyncio.create_task(call(pool, episode, "x"))
    _, _, gate = await arrival(arrivals)
    await finish(gate, task)


# --- catalogs, the factory and the engine -----------------------------------------------------------------


async def test_a_catalog_backend_listing_several_urls_becomes_a_pool():
    urls = ["http://127.0.0.1:9/v1", "http://127.0.0.2:9/v1"]
    pool = make_backend({"kind": "openai", "base_url": urls, "model": "m", "param_style": "openai",
                         "max_attempts": 2})
    assert isinstance(pool, EndpointPool) and pool.kind == "openai" and pool.model == "m"
    assert [m.base_url for m in pool.members] == urls and list(pool.endpoints) == urls
    assert all(isinstance(m, OpenAICompatBackend) and m.param_style == "openai" for m in pool.members)
    assert pool.tokenizer is pool.members[0].tokenizer
    await pool.aclose()
    assert isinstance(make_backend({"kind": "openai", "base_url": urls[0], "model": "m"}), OpenAICompatBackend)

    for bad, message in (([urls[0], urls[0]], "distinct"), ([urls[0], 3], "distinct"), ([], "required"),
                         (3, "must be str or list")):
        with pytest.raises(ValueError, match=message):
            check_spec({"kind": "openai", "base_url": bad, "model": "m"})
    data = {"backends": {"x": {"kind": "openai", "base_url": urls, "model": "m"},
                         "y": {"kind": "openai", "base_url": [urls[0], ""], "model": "m"}},
            "policy": {"backend": "x"}}
    with pytest.raises(CatalogError, match="backends.y: backend field 'base_url'"):
        parse_catalog(data, Path("pool.toml"))
    del data["backends"]["y"]
    assert parse_catalog(data, Path("pool.toml")).backends["x"]["base_url"] == urls


async def test_aclose_closes_every_endpoint():
    endpoints = fakes(asyncio.Queue(), "abc")
    await EndpointPool(endpoints).aclose()
    assert all(e.closed for e in endpoints)


async def test_the_engine_runs_each_episode_in_its_own_scope(tmp_path):
    from engine_helpers import collect, scripted_session

    from orchestra_tui.core import events as ev

    experts = [ScriptedBackend("<think>ok</think><answer>4</answer>", model="gpt-5") for _ in range(2)]
    pool = EndpointPool(experts)
    policy = ScriptedBackend(tool_call_text("answer", "answer-1"), model="Qwen/Qwen3-8B")
    session = scripted_session(tmp_path, policy, pool)  # type: ignore[arg-type]
    episode_ids = []
    for question in ("What is 2 + 2?", "And 2 + 2 again?"):
        events = await collect(session, question)
        episode_ids.append(next(e for e in events if isinstance(e, ev.EpisodeStarted)).episode_id)
        assert events[-1].status == "answered"
    await session.aclose()
    assert episode_scope.get() is None  # set inside the episode's task only
    # Each episode was one assignment; the second, started with both idle, went to the emptier endpoint.
    assert [pool.last_endpoint_for(e) for e in episode_ids] == ["endpoint 0", "endpoint 1"]
    assert [len(e.calls) for e in experts] == [1, 1]


# --- real servers --------------------------------------------------------------------------------------


class Spy:
    """A pool member that notes which episode each call belonged to, then calls the real endpoint."""

    def __init__(self, inner: OpenAICompatBackend, log: list[tuple[str | None, str]]) -> None:
        self.inner = inner
        self.log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def stream(self, messages, **kwargs):
        self.log.append((episode_scope.get(), self.inner.base_url))
        async for item in self.inner.stream(messages, **kwargs):
            yield item


@pytest.fixture(scope="module")
def two_servers():
    from orchestra_tui.backends.embedded import smollm2_gguf_path
    from orchestra_tui.backends.launcher import serve

    gguf = str(smollm2_gguf_path())
    servers = []
    try:
        for _ in range(2):
            servers.append(serve("llamacpp", gguf, model_alias="smol", n_ctx=4096))
        yield [s.base_url for s in servers]
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
async def test_two_concurrent_episodes_on_two_real_servers_behind_one_alias(two_servers, tmp_path):
    from engine_helpers import ListRetriever

    from orchestra_tui.core import events as ev
    from orchestra_tui.core.catalog import load_catalog
    from orchestra_tui.core.session import Session, SessionOptions
    from orchestra_tui.services.code_runner import SubprocessRunner

    listed = ", ".join(f'"{u}"' for u in two_servers)
    path = tmp_path / "pooled.toml"
    path.write_text(f"""
[catalog]
name = "pooled"
[backends.policy]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "scripted-policy"
[backends.pooled]
kind = "openai"
base_url = [{listed}]
model = "smol"
[policy]
backend = "policy"
[expert_defaults]
backend = "pooled"
max_tokens = 24
doc_chars = 300
code_tokens = 300
context_tokens = 800
answer_fallback = true
[experts.search-1]
[experts.answer-1]
[prices.models.smol]
input_per_million = "0"
output_per_million = "0"
source = "test"
[prices.models.scripted-policy]
input_per_million = "0"
output_per_million = "0"
source = "test"
""")
    catalog = load_catalog(path)  # the list of URLs passes the catalog's own check
    pool = make_backend(catalog.backends["pooled"])
    assert isinstance(pool, EndpointPool)
    log: list[tuple[str | None, str]] = []
    pool.members = tuple(Spy(m, log) for m in pool.members)  # type: ignore[misc]

    def session(name: str) -> Session:
        policy = ScriptedBackend([tool_call_text("search", "search-1"), tool_call_text("answer", "answer-1")],
                                 model="scripted-policy")
        return Session(SessionOptions(catalog=path, max_rounds=3, trajectory=tmp_path / f"{name}.jsonl"),
                       catalog=catalog, backends={"policy": policy, "pooled": pool},
                       retriever=ListRetriever(["Paris is the capital of France."]),
                       code_runner=SubprocessRunner())

    sessions = [session("one"), session("two")]

    async def run(s: Session, question: str) -> list[Any]:
        return [e async for e in s.ask(question)]

    runs = await asyncio.gather(run(sessions[0], "What is the capital of France?"),
                                run(sessions[1], "Which country is Paris in?"))
    for s in sessions:
        await s.aclose()

    homes = {}
    for events in runs:
        assert events[-1].type == "episode_ended" and events[-1].status != "error", events[-1]
        episode = next(e for e in events if isinstance(e, ev.EpisodeStarted)).episode_id
        outputs = [e for e in events if isinstance(e, ev.ExpertOutput)]
        served = [where for who, where in log if who == episode]
        assert len(served) == len(outputs) >= 2  # every expert call of the episode went through the pool
        assert len(set(served)) == 1, served  # ...and all to one server
        assert pool.last_endpoint_for(episode) == served[0]
        homes[episode] = served[0]
    assert sorted(homes.values()) == sorted(two_servers)  # the two episodes on different servers
    assert all(who is not None for who, _ in log)
    assert pool.in_flight == (0, 0)

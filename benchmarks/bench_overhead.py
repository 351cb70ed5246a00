"""Harness overhead per round: the engine with instant scripted models, against a real embedded round.

    python benchmarks/bench_overhead.py [--reps 3] [--rounds 30] [--embedded-rounds 2] [--profile]

Scripted: a full `Session` (catalog, profile, budget, ledger, trajectory written to disk, context truncation,
tool-list regeneration, every event) whose policy searches every round and whose expert writes a query at
once; a retriever returns five new passages per search. With models that cost nothing, the time between two
`RoundStarted` events is what the engine itself adds to a round.

Embedded: the same `Session` on the shipped embedded catalog (SmolLM2-135M plays the policy and the experts
through llama.cpp), with the in-memory retriever and an instant code runner so that only model time and the
engine are in the round. The two are interleaved; the table gives the overhead as a share of that round.

Every round's time is split with timing wrappers: inside the backend's stream (the model, or the scripted
stand-in counting its prompt), inside the policy tokenizer (the engine truncates the context with it every
round), and the rest, which is the engine itself.

A third variant measures the engine as it was before side by side: events serialised for the trajectory
through `dataclasses.asdict`, which deep-copies every message and tool list only for json.dumps to walk
them again (`Event.to_dict` is now a shallow copy).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import time
from pathlib import Path

import contextlib
import dataclasses

from common import interleaved, isolate_folders, load_average, median, ms, passages, print_machine, table, verdict

SCRATCH = isolate_folders()

from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text  # noqa: E402
from orchestra_tui.core.catalog import load_catalog  # noqa: E402
from orchestra_tui.core.events import EpisodeEnded, Event, RoundStarted  # noqa: E402
from orchestra_tui.core.session import Session, SessionOptions  # noqa: E402
from orchestra_tui.services.code_runner import CodeResult  # noqa: E402

QUESTION = "Which file format does orchestra-tui use for trajectories?"

# Free models, so that no profile budget ends the episode early; everything else as a real catalog.
CATALOG = """
[catalog]
name = "bench"

[backends.policy]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "bench-policy"

[backends.expert]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "bench-expert"

[policy]
backend = "policy"
doc_chars = 1000
code_tokens = 1000
context_tokens = 3000

[expert_defaults]
backend = "expert"
doc_chars = 1000
code_tokens = 1000
context_tokens = 2000

[experts.search-1]
[experts.reasoner-1]
[experts.answer-1]

[prices.models."bench-policy"]
input_per_million = "0"
output_per_million = "0"
source = "benchmark"

[prices.models."bench-expert"]
input_per_million = "0"
output_per_million = "0"
source = "benchmark"
"""


class PassageRetriever:
    """Five passages per search, never seen before in the episode, so the context keeps changing."""

    name = "bench"
    price_key = "retrieval_local"

    def __init__(self) -> None:
        self.pool = passages(1000)
        self.served = 0

    async def retrieve(self, query: str, topk: int) -> list[dict]:
        out = []
        for i in range(5):
            n = self.served + i
            out.append({"id": f"d{n}", "content": f"[{n}] {self.pool[n % len(self.pool)]}", "score": 1 - i / 10})
        self.served += 5
        return out


class InstantRunner:
    name = "instant"

    async def run(self, code: str, *, timeout_s: float = 60) -> CodeResult:
        return CodeResult("42\n", "", 0, False, 0.0, self.name, False)


class Clock:
    """Seconds spent inside wrapped calls, by kind: wall time, and CPU time of the event-loop thread.

    CPU time is what a round costs when the machine is not shared: waiting for a core that another job
    holds counts in wall time only.
    """

    def __init__(self) -> None:
        self.spent = {"backend": 0.0, "tokenizer": 0.0, "backend_cpu": 0.0, "tokenizer_cpu": 0.0}

    def snapshot(self) -> dict[str, float]:
        return dict(self.spent)

    def book(self, kind: str, wall0: float, cpu0: float) -> None:
        self.spent[kind] += time.perf_counter() - wall0
        self.spent[f"{kind}_cpu"] += time.thread_time() - cpu0


class TimedTokenizer:
    def __init__(self, inner, clock: Clock) -> None:
        self.inner, self.clock = inner, clock

    async def encode(self, text: str) -> list[int]:
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            return await self.inner.encode(text)
        finally:
            self.clock.book("tokenizer", wall0, cpu0)

    async def decode_each(self, ids: list[int]) -> list[str]:
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            return await self.inner.decode_each(ids)
        finally:
            self.clock.book("tokenizer", wall0, cpu0)


class TimedBackend:
    """A backend whose time between yields is booked to the clock; the consumer's time is not."""

    def __init__(self, inner, clock: Clock) -> None:
        self.inner, self.clock = inner, clock
        self.kind, self.model = inner.kind, inner.model
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = TimedTokenizer(self.inner.tokenizer, self.clock)
        return self._tokenizer

    async def stream(self, messages, **kwargs):
        items = self.inner.stream(messages, **kwargs)
        while True:
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                return
            finally:
                self.clock.book("backend", wall0, cpu0)
            yield item

    async def aclose(self) -> None:
        await self.inner.aclose()


async def round_times(session: Session, clock: Clock) -> list[dict[str, float]]:
    """Per round: wall seconds from its RoundStarted to the next (the last ends at EpisodeEnded), and the
    seconds of it spent in the backend and the tokenizer.

    Marked by a session listener, which runs as the engine emits: the consumer below reads a queue and,
    with instant models, would see the events in bursts long after they happened.
    """
    marks: list[tuple[float, float, dict[str, float]]] = []

    def mark(event) -> None:
        if isinstance(event, (RoundStarted, EpisodeEnded)):
            marks.append((time.perf_counter(), time.thread_time(), clock.snapshot()))

    session.listeners.append(mark)
    async for _ in session.ask(QUESTION):
        pass
    await session.aclose()
    rounds = []
    for (t0, u0, c0), (t1, u1, c1) in zip(marks, marks[1:]):
        split = {k: c1[k] - c0[k] for k in c0}
        wall, cpu = t1 - t0, u1 - u0
        rounds.append({"wall": wall, "cpu": cpu, **split,
                       "engine": wall - split["backend"] - split["tokenizer"],
                       "engine_cpu": cpu - split["backend_cpu"] - split["tokenizer_cpu"]})
    return rounds


def scripted_episode(rounds: int, catalog_path: Path, counter: list[int]) -> list[dict[str, float]]:
    counter[0] += 1
    clock = Clock()
    policy = ScriptedBackend(tool_call_text("search", "search-1", "I need documents."), model="bench-policy")
    expert = ScriptedBackend("<query>orchestra-tui trajectory format</query>", model="bench-expert")
    options = SessionOptions(catalog=catalog_path, max_rounds=rounds, check_endpoints=False,
                             trajectory=SCRATCH / f"scripted-{counter[0]}.jsonl")
    backends = {"policy": TimedBackend(policy, clock), "expert": TimedBackend(expert, clock)}
    session = Session(options, catalog=load_catalog(catalog_path), backends=backends,
                      retriever=PassageRetriever(), code_runner=InstantRunner())
    return asyncio.run(round_times(session, clock))


_embedded: dict[str, TimedBackend] = {}


def embedded_episode(rounds: int, counter: list[int]) -> list[dict[str, float]]:
    from orchestra_tui.backends.factory import make_backend

    counter[0] += 1
    catalog = load_catalog("embedded")
    clock = Clock()
    if not _embedded:  # one model for the whole run, as in the app; its KV swap carries across episodes
        for name, spec in catalog.backends.items():
            _embedded[name] = TimedBackend(make_backend(spec), clock)
    for backend in _embedded.values():
        backend.clock = clock
        if backend._tokenizer is not None:
            backend._tokenizer.clock = clock
    options = SessionOptions(catalog="embedded", max_rounds=rounds, check_endpoints=False,
                             trajectory=SCRATCH / f"embedded-{counter[0]}.jsonl")
    session = Session(options, catalog=catalog, backends=dict(_embedded), retriever=PassageRetriever(),
                      code_runner=InstantRunner())
    return asyncio.run(round_times(session, clock))


def _deep_to_dict(self: Event) -> dict:
    return {"type": self.type, **dataclasses.asdict(self)}


@contextlib.contextmanager
def deep_events():
    """`Event.to_dict` as it was: the same JSON, through `dataclasses.asdict`'s deep copy."""
    original = Event.to_dict
    Event.to_dict = _deep_to_dict
    try:
        yield
    finally:
        Event.to_dict = original


def scripted_deep(rounds: int, catalog_path: Path, counter: list[int]) -> list[dict[str, float]]:
    with deep_events():
        return scripted_episode(rounds, catalog_path, counter)


def profile_summary(rounds: int, catalog_path: Path, top: int = 14) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    scripted_episode(rounds, catalog_path, [1000])
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
    return "\n".join(lines[start:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30, help="rounds per scripted episode")
    parser.add_argument("--embedded-rounds", type=int, default=2, help="rounds per embedded episode (0: skip)")
    parser.add_argument("--profile", action="store_true", help="print where a scripted episode spends its time")
    args = parser.parse_args()

    print_machine("(shared with other jobs)")
    catalog_path = SCRATCH / "bench_catalog.toml"
    catalog_path.write_text(CATALOG, encoding="utf-8")
    scripted_episode(3, catalog_path, [0])  # imports and caches warm, as in a running app

    counters = [[0], [0]]
    variants = {"scripted": lambda: scripted_episode(args.rounds, catalog_path, counters[0]),
                "deep": lambda: scripted_deep(args.rounds, catalog_path, counters[0])}
    if args.embedded_rounds:
        variants["embedded"] = lambda: embedded_episode(args.embedded_rounds, counters[1])
    results = interleaved(args.reps, variants)

    rows, medians = [], {}
    labels = {"scripted": "scripted (instant models)", "deep": "scripted, before: deep-copying to_dict",
              "embedded": "embedded default (SmolLM2)"}
    for name, label in labels.items():
        if name not in results:
            continue
        rounds = [r for episode in results[name] for r in episode]
        medians[name] = {k: median([r[k] for r in rounds]) for k in rounds[0]}
        m = medians[name]
        rows.append([label, str(len(rounds)), ms(m["wall"]), ms(m["backend"]), ms(m["tokenizer"]),
                     ms(m["engine"]), ms(m["engine_cpu"])])
    print()
    print(table(["rounds of", "rounds", "median round", "in backend", "in tokenizer", "engine (wall)",
                 "engine (CPU)"], rows))
    print()
    engine, engine_cpu = medians["scripted"]["engine"], medians["scripted"]["engine_cpu"]
    print(f"harness overhead per round (engine, instant models): {ms(engine)} wall, {ms(engine_cpu)} CPU, "
          f"medians (target < 2 ms: wall {verdict(engine < 0.002)}, CPU {verdict(engine_cpu < 0.002)})")
    deep = medians["deep"]["engine_cpu"]
    print(f"  before, with the deep-copying Event.to_dict: {ms(deep)} CPU (now {deep / engine_cpu:.2f}x less)")
    scripted_total = medians["scripted"]["wall"]
    print(f"  with the scripted stand-in's Python tokenizer and prompt counting: {ms(scripted_total)} per round")
    if "embedded" in medians:
        m = medians["embedded"]
        harness = m["engine"] + m["tokenizer"]
        share = harness / m["wall"]
        print(f"embedded round: {ms(m['wall'])} median; engine + truncation tokenizing {ms(harness)} = "
              f"{share:.3%} of it (target < 1%: {verdict(share < 0.01)})")
    if args.profile:
        print(f"\nwhere a {args.rounds}-round scripted episode spends its time (cProfile, by own time):")
        print(profile_summary(args.rounds, catalog_path))
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()

"""Trajectory replay: open a 10,000-event file, and jump to any round.

    python benchmarks/bench_replay.py [--events 10000] [--reps 5] [--jumps 30]

The file is written by the real engine and `TrajectoryWriter`: one session of scripted episodes (the
policy searches 24 times, then answers; five new passages per search), follow-up after follow-up, cut
to exactly `--events` events after the header, as a run killed at that point would leave it.

- open = what the app does before drawing: `load_trajectory` (read, parse, rebuild every event) and a
  `ReplayCursor` over the events (its chapter list);
- jump = what a seek does in the app apart from painting: a fresh `EventHandler` view and the pure
  `apply` fold of the events up to the round's start (`replay_controls.replay_seek`). Painting the panes
  is the UI's cost and is measured by bench_ui_stream.py.

Opening and jumping alternate within each repetition; the jumps go to random rounds and always include
the last one, the farthest from the start.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from common import interleaved, isolate_folders, load_average, median, ms, passages, print_machine, table, verdict

SCRATCH = isolate_folders()

from orchestra_tui.backends.scripted import ScriptedBackend, tool_call_text  # noqa: E402
from orchestra_tui.core.catalog import load_catalog  # noqa: E402
from orchestra_tui.core.session import Session, SessionOptions  # noqa: E402
from orchestra_tui.core.trajectory import load_trajectory  # noqa: E402
from orchestra_tui.tui.event_handler import EventHandler  # noqa: E402
from orchestra_tui.tui.replay import ReplayCursor  # noqa: E402

SEARCHES = 24


class Retriever:
    name = "bench"
    price_key = "retrieval_local"

    def __init__(self) -> None:
        self.pool, self.served = passages(1000), 0

    async def retrieve(self, query: str, topk: int) -> list[dict]:
        numbers = range(self.served, self.served + 5)
        out = [{"id": f"d{n}", "content": f"[{n}] {self.pool[n % len(self.pool)]}", "score": 1 - i / 10}
               for i, n in enumerate(numbers)]
        self.served += 5
        return out


class EpisodePolicy:
    """Search `SEARCHES` times, then answer; again for the next question."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, messages, tools) -> str:
        self.calls += 1
        if self.calls % (SEARCHES + 1) == 0:
            return tool_call_text("answer", "answer-1", "Enough.")
        return tool_call_text("search", "search-1", "More documents first.")


def write_trajectory(events: int):
    """Scripted episodes into one trajectory until it holds `events` events; then cut there."""
    from bench_overhead import CATALOG, InstantRunner

    catalog_path = SCRATCH / "catalog.toml"
    catalog_path.write_text(CATALOG, encoding="utf-8")
    path = SCRATCH / "replay.jsonl"
    policy = ScriptedBackend(EpisodePolicy(), model="bench-policy")
    expert = ScriptedBackend(lambda messages, tools: (
        "<answer>JSONL</answer>" if "<answer>" in messages[-1]["content"] else "<query>trajectory format</query>"),
        model="bench-expert")
    session = Session(SessionOptions(catalog=catalog_path, max_rounds=SEARCHES + 1, check_endpoints=False,
                                     trajectory=path),
                      catalog=load_catalog(catalog_path), backends={"policy": policy, "expert": expert},
                      retriever=Retriever(), code_runner=InstantRunner())
    written = [0]
    session.listeners.append(lambda event: written.__setitem__(0, written[0] + (not event.transient)))

    async def run() -> None:
        n = 0
        while written[0] < events:
            n += 1
            session.history.clear()  # keep the problem text one question long, as separate questions are
            async for event in session.ask(f"Question {n}: which file format does orchestra-tui use for trajectories?"):
                if getattr(event, "message", "").startswith("cannot start"):
                    raise SystemExit(f"the engine did not start an episode: {event.message}")
        await session.aclose()

    asyncio.run(run())
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[: events + 1]) + b"\n")  # header + exactly `events` events
    return path


def open_file(path) -> tuple[float, ReplayCursor]:
    started = time.perf_counter()
    trajectory = load_trajectory(path)
    cursor = ReplayCursor(trajectory.events)
    return time.perf_counter() - started, cursor


def jump(cursor: ReplayCursor, chapter: int) -> float:
    started = time.perf_counter()
    position = cursor.chapter_position(chapter)
    handler = EventHandler(mode="replay")
    handler.reset()
    handler.handle_all(cursor.events[:position])
    handler.flush()  # no panes here: painting is the UI's part
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--jumps", type=int, default=30, help="random rounds per repetition (plus the last)")
    args = parser.parse_args()

    print_machine("(shared with other jobs)")
    path = write_trajectory(args.events)
    _, cursor = open_file(path)
    rounds = len(cursor.chapters)
    print(f"trajectory: {len(cursor.events):,} events, {rounds:,} rounds, {path.stat().st_size / 2**20:.1f} MiB")
    rng = random.Random(5)

    def jumps() -> list[float]:
        targets = [rng.randrange(rounds) for _ in range(args.jumps)] + [rounds - 1]
        return [jump(cursor, t) for t in targets]

    results = interleaved(args.reps, {"open": lambda: open_file(path)[0], "jump": jumps})
    opens = results["open"]
    all_jumps = [t for rep in results["jump"] for t in rep]
    last = [rep[-1] for rep in results["jump"]]
    print()
    print(table(["operation", "samples", "median", "max", "target"], [
        ["open (load + cursor)", str(len(opens)), ms(median(opens)), ms(max(opens)), "< 1 s"],
        ["jump to a random round", str(len(all_jumps)), ms(median(all_jumps)), ms(max(all_jumps)), "< 100 ms"],
        ["jump to the last round", str(len(last)), ms(median(last)), ms(max(last)), "< 100 ms"],
    ]))
    # The last round is the farthest jump: its median is the verdict, the slowest single jump is shown.
    print(f"\nopen: {verdict(median(opens) < 1)}; jump to any round (the last): {verdict(median(last) < 0.1)} "
          f"(slowest single jump {ms(max(all_jumps))})")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()

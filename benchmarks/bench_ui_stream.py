"""Does the app keep up with a fast token stream, and do key presses stay snappy meanwhile?

Run: `python benchmarks/bench_ui_stream.py [--rate 2000] [--seconds 5] [--key-interval 0.1]`

The real `OrchestraApp` runs headless (`App.run_test`) over a scripted source that streams one round of
`PolicyDelta` tokens on a schedule: at each wake-up it yields every token that has fallen due, then hands the
event loop back. Meanwhile a thread presses a key every ~100 ms through the app's driver, the way a terminal's
reader thread delivers keys, and it is typed into the question box. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from textual import events, on
from textual.widgets import Input

from orchestra_tui.core.events import EpisodeEnded, EpisodeStarted, Event, PolicyDelta, RoundStarted
from orchestra_tui.tui.app import OrchestraApp
from orchestra_tui.tui.widgets.reasoning import ReasoningPane

KEY = "x"


def token(i: int) -> str:
    return f"w{i} "


@dataclass
class PacedStream:
    """An EpisodeSource streaming `rate` tokens per second for `seconds`, paced by the event loop."""

    rate: float
    seconds: float
    profile_name: str = "bench"
    policy_label: str = "scripted stream"
    offered: list[float] = field(default_factory=list)  # when each token was handed to the app
    done: bool = False

    @property
    def total(self) -> int:
        return int(self.rate * self.seconds)

    async def ask(self, question: str) -> AsyncIterator[Event]:
        yield EpisodeStarted(episode_id="bench", question=question, problem=question, variant="frames",
                             max_rounds=1, profile="bench", policy={"backend": "scripted", "model": "stream"})
        yield RoundStarted(round=1, messages=[], tools=[], context_tokens=0)
        start = time.perf_counter()
        sent = 0
        while sent < self.total:
            due = min(self.total, int((time.perf_counter() - start) * self.rate) + 1)
            while sent < due:
                self.offered.append(time.perf_counter())
                yield PolicyDelta(round=1, text=token(sent))
                sent += 1
            # Back to the loop; whatever falls due meanwhile goes out at the next wake-up.
            await asyncio.sleep(1 / self.rate)
        self.done = True
        yield EpisodeEnded(status="no_answer", answer=None, rounds=1, cost_usd=None,
                           latency_s=time.perf_counter() - start)

    def cancel(self) -> None:
        self.done = True


class BenchApp(OrchestraApp):
    """The real app, plus a note of when each typed key reached the question box's change handler."""

    def __init__(self, source: PacedStream) -> None:
        super().__init__(source, cursor_blink=False)
        self.key_handled: dict[int, float] = {}  # length of the typed text → when it was handled

    @on(Input.Changed, "#ask")
    def _typed(self, event: Input.Changed) -> None:
        if event.value:
            self.key_handled.setdefault(len(event.value), time.perf_counter())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(rate: float, seconds: float, key_interval: float) -> dict[str, object]:
    source = PacedStream(rate, seconds)
    app = BenchApp(source)
    folded: list[float] = []  # when each token was folded into the view
    paints: list[tuple[float, int]] = []  # (when, tokens on screen) at every repaint
    presses: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        handler = app.handler
        real_handle, real_flush = handler.handle, handler.flush

        def handle(event: Event) -> None:
            real_handle(event)
            if isinstance(event, PolicyDelta):
                folded.append(time.perf_counter())

        def flush() -> None:
            real_flush()
            view = handler.state.rounds.get((1, 1))
            paints.append((time.perf_counter(), len(view.streamed) if view else 0))

        handler.handle, handler.flush = handle, flush
        ask = app.query_one("#ask", Input)
        ask.value = "stream"
        # Submitted directly: Pilot's press waits for the app to go idle, which a running stream delays.
        await ask.action_submit()

        def press_keys() -> None:
            # A thread of its own, like a terminal driver's reader: a press happens on the wall clock,
            # whether or not the event loop is free, so the wait for the loop counts in the latency.
            while not source.offered and not source.done:
                time.sleep(0.001)
            while not source.done:
                presses.append(time.perf_counter())
                driver.process_message(events.Key(KEY, KEY))
                time.sleep(key_interval)

        driver = app._driver
        assert driver is not None
        presser = threading.Thread(target=press_keys, daemon=True)
        presser.start()
        await app.workers.wait_for_complete()
        await asyncio.to_thread(presser.join)
        await pilot.pause()
        await pilot.pause()
        shown = app.query_one(ReasoningPane).fold(1).text()
    expected = "".join(token(i) for i in range(source.total)).strip()
    start = source.offered[0]
    # Token → screen: at each repaint that shows new tokens, how long the oldest of them waited.
    lags, painted = [], 0
    for when, count in paints:
        if count > painted:
            lags.append(when - source.offered[painted])
            painted = count
    latencies = [app.key_handled[i + 1] - pressed for i, pressed in enumerate(presses) if i + 1 in app.key_handled]
    stream_s = source.offered[-1] - start
    return {
        "tokens": source.total,
        "offered_rate": (source.total - 1) / stream_s if stream_s else float("inf"),
        "applied_rate": (len(folded) - 1) / (folded[-1] - folded[0]) if len(folded) > 1 else 0.0,
        "applied": len(folded),
        "stream_s": stream_s,
        "repaints": len(paints),
        "repaint_rate": len(paints) / stream_s if stream_s else 0.0,
        "lag_median_ms": 1000 * statistics.median(lags) if lags else 0.0,
        "lag_p95_ms": 1000 * percentile(lags, 0.95) if lags else 0.0,
        "lag_max_ms": 1000 * max(lags) if lags else 0.0,
        "complete": shown.strip() == expected,
        "presses": len(presses),
        "handled": len(latencies),
        "key_median_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "key_p95_ms": 1000 * percentile(latencies, 0.95) if latencies else float("nan"),
        "key_max_ms": 1000 * max(latencies) if latencies else float("nan"),
    }


def report(rate: float, r: dict[str, object]) -> str:
    rows = [
        ("tokens offered", f"{r['tokens']:,} over {r['stream_s']:.2f} s"),
        ("offered rate", f"{r['offered_rate']:,.0f} tokens/s (asked for {rate:,.0f})"),
        ("applied rate", f"{r['applied_rate']:,.0f} tokens/s ({r['applied']:,} folded, "
                         f"{100 * r['applied'] / r['tokens']:.1f}% of offered)"),
        ("repaints", f"{r['repaints']} ({r['repaint_rate']:.0f}/s)"),
        ("token → screen", f"median {r['lag_median_ms']:.0f} ms, p95 {r['lag_p95_ms']:.0f} ms, "
                           f"max {r['lag_max_ms']:.0f} ms"),
        ("final reasoning text", "complete" if r["complete"] else "INCOMPLETE"),
        ("key presses handled", f"{r['handled']} of {r['presses']}"),
        ("press → handler", f"median {r['key_median_ms']:.1f} ms, p95 {r['key_p95_ms']:.1f} ms, "
                            f"max {r['key_max_ms']:.1f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="tokens per second offered")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the stream lasts")
    parser.add_argument("--key-interval", type=float, default=0.1, help="seconds between key presses")
    args = parser.parse_args()
    result = asyncio.run(measure(args.rate, args.seconds, args.key_interval))
    print(report(args.rate, result))
    return 0 if result["complete"] and result["handled"] == result["presses"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

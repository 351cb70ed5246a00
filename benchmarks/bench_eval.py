"""Eval throughput against experts with a fixed latency: questions per second at concurrency 1, 2, 4, 8.

Every backend is the scripted world of `orchestra_tui/eval/scripted.py`: each call (policy round or
expert) waits a fixed time, like a remote model would, then answers. A question takes four calls (search,
then answer: two policy rounds and two experts), so one question alone takes about 4 × latency, and N
questions at once should take about the same — the speed-up shows how much of that the runner delivers
(its own overhead: sessions, trajectories written per event, verdicts, the summary).

    python benchmarks/bench_eval.py [--questions 16] [--latency 0.2] [--levels 1,2,4,8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path


def _isolate(scratch: Path) -> None:
    # Never the user's folders: profiles, prices and caches come from a throw-away place.
    for name in ("CONFIG", "STATE", "CACHE"):
        os.environ[f"ORCHESTRA_TUI_{name}_DIR"] = str(scratch / name.lower())


async def _one_level(questions: list, out: Path, concurrency: int, latency: float) -> float:
    from orchestra_tui.core.session import SessionOptions
    from orchestra_tui.eval.runner import EvalPlan, run_eval
    from orchestra_tui.eval.scripted import ScriptedParts

    plan = EvalPlan(questions=questions, out=out, profiles=["balanced"], concurrency=concurrency,
                    options=SessionOptions(catalog="embedded", max_rounds=4))
    with open(os.devnull, "w") as quiet:  # the per-question lines would drown the table
        started = time.perf_counter()
        await run_eval(plan, ScriptedParts(latency), progress=False, stream=quiet)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per scripted call")
    parser.add_argument("--levels", default="1,2,4,8", help="concurrency levels, comma-separated")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as scratch:
        _isolate(Path(scratch))
        from orchestra_tui.eval.runner import Question

        questions = [Question(f"b{i}", f"Which word is marked? [[w{i}]]", f"w{i}", f"b{i}")
                     for i in range(args.questions)]
        print(f"eval throughput: {args.questions} questions, {args.latency:.2f} s per scripted call, "
              f"4 calls per question (ideal: {4 * args.latency:.2f} s per question alone)")
        print(f"{'concurrency':>11}  {'seconds':>8}  {'questions/s':>11}  {'speed-up':>8}  {'ideal':>6}")
        base = None
        for level in levels:
            seconds = asyncio.run(_one_level(questions, Path(scratch) / f"c{level}", level, args.latency))
            rate = args.questions / seconds
            base = base or rate
            ideal = min(level, args.questions)
            print(f"{level:>11}  {seconds:>8.2f}  {rate:>11.2f}  {rate / base:>7.2f}x  {ideal:>5}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())

"""Shared pieces of the benchmarks: the machine, interleaved repetitions, tables, realistic prompts.

Benchmarks run on machines shared with other jobs, so two variants are never measured one after the other
in blocks: `interleaved` alternates them within each repetition (and reverses the order every other
repetition), and the tables report medians and the ratio of medians measured in the same run.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python benchmarks/bench_X.py` from a source checkout


def isolate_folders() -> Path:
    """Config, state and cache in a scratch folder: a benchmark never reads or writes the user's."""
    scratch = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    for name in ("CONFIG", "STATE", "CACHE"):
        os.environ.setdefault(f"ORCHESTRA_TUI_{name}_DIR", str(scratch / name.lower()))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return scratch


# --- the machine -------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def print_machine(note: str = "") -> None:
    ram = ram_gib()
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, "
          f"{f'{ram:.0f} GiB RAM' if ram else 'RAM unknown'}, Python {platform.python_version()}")
    # The load average says how shared the machine was: other jobs' work shows up in every number.
    print(f"load average (1/5/15 min) at start: {load_average()}" + (f"  {note}" if note else ""))


# --- measuring ---------------------------------------------------------------------------------------


def interleaved(reps: int, variants: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Run every variant once per repetition, alternating their order; collect what each returns."""
    names = list(variants)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(variants[name]())
    return results


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# --- realistic inputs ----------------------------------------------------------------------------------


def passages(chars: int = 1000) -> list[str]:
    """The project's own docs cut into paragraphs of about `chars` characters: real prose for documents."""
    from orchestra_tui.paths import data_dir

    out: list[str] = []
    for path in sorted(data_dir("docs").glob("*.md")):
        current = ""
        for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
            current = f"{current}\n\n{paragraph}" if current else paragraph
            if len(current) >= chars:
                out.append(current[:chars])
                current = ""
        if current:
            out.append(current[:chars])
    return out


def smollm2_path() -> Path:
    from orchestra_tui.backends.embedded import smollm2_gguf_path

    return smollm2_gguf_path()

"""The eval summary, computed from the trajectory files alone (never from the run's memory), so a resumed
or re-read eval reports the same numbers: accuracy, mean and median cost and latency, calls per alias.

Accuracy is right / finished. Unjudged answers (no exact match and no `--judge`) count as not right and
are reported beside it, with the accuracy over the judged ones. Cost is over episodes whose cost is
known; an episode with any unpriced call is counted under `unpriced` instead of being taken as $0.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from orchestra_tui.core.ledger import usd_label, usd_text
from orchestra_tui.eval.runner import ProfileRun, Question, file_state


@dataclass
class ProfileSummary:
    profile: str
    questions: int
    finished: int = 0
    right: int = 0
    wrong: int = 0
    unjudged: int = 0
    accuracy: float | None = None  # right / finished
    accuracy_judged: float | None = None  # right / (right + wrong)
    cost_mean_usd: Decimal | None = None
    cost_median_usd: Decimal | None = None
    cost_total_usd: Decimal | None = None
    unpriced: int = 0  # finished episodes with an unknown cost
    latency_mean_s: float | None = None
    latency_median_s: float | None = None
    calls: dict[str, int] = field(default_factory=dict)  # alias → calls over all questions
    statuses: dict[str, int] = field(default_factory=dict)
    judge_cost_usd: Decimal = Decimal(0)  # what the LLM judge cost (not part of the episodes' cost)

    def to_json(self) -> dict[str, Any]:
        return {k: (usd_text(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


def summarize(profile: str, folder_paths: list[Path]) -> ProfileSummary:
    summary = ProfileSummary(profile, questions=len(folder_paths))
    costs: list[Decimal] = []
    latencies: list[float] = []
    calls: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for path in folder_paths:
        record = file_state(path).record
        if record is None or record.ended is None:
            continue
        summary.finished += 1
        statuses[record.ended.status] += 1
        calls.update(record.calls_per_alias())
        latencies.append(record.ended.latency_s)
        if record.ended.cost_usd is None:
            summary.unpriced += 1
        else:
            costs.append(Decimal(record.ended.cost_usd))
        verdict = record.verdict
        if verdict is None or verdict.correct is None:
            summary.unjudged += 1
        elif verdict.correct:
            summary.right += 1
        else:
            summary.wrong += 1
        if verdict is not None and verdict.cost_usd is not None:
            summary.judge_cost_usd += Decimal(verdict.cost_usd)
    if summary.finished:
        summary.accuracy = summary.right / summary.finished
    if summary.right + summary.wrong:
        summary.accuracy_judged = summary.right / (summary.right + summary.wrong)
    if costs:
        summary.cost_mean_usd = sum(costs, Decimal(0)) / len(costs)
        summary.cost_median_usd = statistics.median(costs)
        summary.cost_total_usd = sum(costs, Decimal(0))
    if latencies:
        summary.latency_mean_s = statistics.fmean(latencies)
        summary.latency_median_s = statistics.median(latencies)
    summary.calls = dict(sorted(calls.items()))
    summary.statuses = dict(sorted(statuses.items()))
    return summary


def summarize_runs(runs: list[ProfileRun], questions: list[Question]) -> list[ProfileSummary]:
    return [summarize(run.name, [run.path(q) for q in questions]) for run in runs]


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _usd(value: Decimal | None) -> str:
    return "—" if value is None else usd_label(value)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def render_table(summaries: list[ProfileSummary]) -> str:
    rows: list[list[str]] = [["", *(s.profile for s in summaries)]]

    def add(label: str, cells: list[str]) -> None:
        rows.append([label, *cells])

    add("finished", [f"{s.finished}/{s.questions}" for s in summaries])
    add("accuracy", [_percent(s.accuracy) for s in summaries])
    add("right / wrong / unjudged", [f"{s.right} / {s.wrong} / {s.unjudged}" for s in summaries])
    add("accuracy of judged", [_percent(s.accuracy_judged) for s in summaries])
    add("cost mean (USD)", [_usd(s.cost_mean_usd) for s in summaries])
    add("cost median (USD)", [_usd(s.cost_median_usd) for s in summaries])
    add("unpriced episodes", [str(s.unpriced) for s in summaries])
    add("latency mean (s)", [_seconds(s.latency_mean_s) for s in summaries])
    add("latency median (s)", [_seconds(s.latency_median_s) for s in summaries])
    for alias in sorted({a for s in summaries for a in s.calls}):
        add(f"calls {alias}", [str(s.calls.get(alias, 0)) for s in summaries])
    for status in sorted({k for s in summaries for k in s.statuses}):
        add(f"ended {status}", [str(s.statuses.get(status, 0)) for s in summaries])
    if any(s.judge_cost_usd for s in summaries):
        add("judge cost (USD)", [_usd(s.judge_cost_usd) for s in summaries])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows) + "\n"


def write_summary(out: Path, summaries: list[ProfileSummary], questions_file: str) -> Path:
    path = out / "summary.json"
    data = {"questions_file": questions_file, "profiles": {s.profile: s.to_json() for s in summaries}}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path

"""`orchestra-tui eval`: every question under every profile, N at a time, resumable, judged.

Layout: `OUT/<profile>/<id>.jsonl` holds one question's trajectory, then its verdict line. Resuming is
reading those files: one that holds `episode_ended` is done (a `cancelled` end — Ctrl+C — is not), one
that does not is what a killed run left and is run again from scratch, and a done one without a verdict
(or left unjudged, when a judge is now given) is only judged. Nothing else records progress, so a SIGKILL
at any moment loses at most the questions in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from orchestra_tui.core.episode_record import EpisodeRecord, Judged, split_episodes
from orchestra_tui.core.export import safe_name
from orchestra_tui.core.session import Session, SessionOptions
from orchestra_tui.core.trajectory import TrajectoryError, load_trajectory
from orchestra_tui.eval.judge import LlmJudge, judge_answer, needs_judging
from orchestra_tui.eval.parts import EngineParts


class EvalError(ValueError):
    pass


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: Any
    name: str  # the id as a file name


def read_questions(path: Path, limit: int | None = None) -> list[Question]:
    """JSONL rows with at least `id`, `question`, `answer` (the reference's input format)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalError(f"{path}: {exc.strerror or exc}") from None
    questions: list[Question] = []
    names: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}: line {number} is not JSON ({exc.msg})") from None
        missing = [k for k in ("id", "question", "answer") if not isinstance(row, dict) or k not in row]
        if missing:
            raise EvalError(f"{path}: line {number} lacks {', '.join(missing)}")
        name = safe_name(row["id"])
        if name in names:
            raise EvalError(f"{path}: line {number}: id {row['id']!r} repeats (or maps to the same file as) "
                            f"id {names[name]!r}")
        names[name] = str(row["id"])
        questions.append(Question(str(row["id"]), str(row["question"]), row["answer"], name))
        if limit is not None and len(questions) >= limit:
            break
    if not questions:
        raise EvalError(f"{path}: no questions")
    return questions


@dataclass
class FileState:
    record: EpisodeRecord | None  # the finished episode, None when the question must run

    @property
    def done(self) -> bool:
        return self.record is not None


def file_state(path: Path) -> FileState:
    if not path.exists():
        return FileState(None)
    try:
        records = split_episodes(load_trajectory(path).events)
    except TrajectoryError:
        return FileState(None)  # killed before its header was whole: run it again
    if records and records[-1].ended is not None and records[-1].ended.status != "cancelled":
        return FileState(records[-1])
    return FileState(None)


def append_line(path: Path, event: Judged) -> None:
    """One whole line in one write, as the trajectory writer does, so a kill cannot tear it."""
    data = (json.dumps(event.to_dict(), ensure_ascii=False, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


@dataclass
class EvalPlan:
    questions: list[Question]
    out: Path
    profiles: list[str]
    options: SessionOptions = dataclasses.field(default_factory=SessionOptions)  # the engine flags
    concurrency: int = 1
    judge: str | None = None  # an alias of the first profile's catalog


class ProfileRun:
    """One profile's shared set-up: its catalog, the backends found usable, its retriever."""

    def __init__(self, name: str, plan: EvalPlan, parts: EngineParts) -> None:
        self.options = dataclasses.replace(plan.options, profile=name, record=False, trajectory=None)
        prototype = Session(self.options)  # resolves the profile, its catalog and variant; runs nothing
        self.name, self.catalog, self.prices = prototype.profile.name, prototype.catalog, prototype.prices
        self.retrieval = prototype.profile.retrieval_spec(self.catalog.retrieval)
        self.folder = plan.out / safe_name(self.name)
        self.parts = parts
        self.backends: dict[str, Any] = {}

    async def prepare(self) -> None:
        problems = await self.parts.problems(self.catalog)
        policy = self.catalog.policy.backend
        if policy in problems:
            raise EvalError(f"profile {self.name}: the policy backend is unavailable: {problems[policy]}")
        used = {policy, *(spec.backend for spec in self.catalog.experts.values())}
        # Unusable backends are left out: each question's session then marks their aliases unavailable.
        self.backends = {n: self.parts.backend(self.catalog.backends[n]) for n in used if n not in problems}
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, question: Question) -> Path:
        return self.folder / f"{question.name}.jsonl"

    def session(self, path: Path) -> Session:
        options = dataclasses.replace(self.options, record=True, trajectory=path)
        return Session(options, catalog=self.catalog, backends=dict(self.backends),
                       retriever=self.parts.retriever(self.retrieval), code_runner=self.parts.code_runner())


def make_judge(alias: str | None, run: ProfileRun) -> LlmJudge | None:
    if alias is None:
        return None
    spec = run.catalog.experts.get(alias)
    if spec is None:
        raise EvalError(f"--judge: {alias!r} is not an alias of catalog {run.catalog.name} "
                        f"(aliases: {', '.join(run.catalog.experts)})")
    return LlmJudge(alias, spec, run.parts.backend(run.catalog.backends[spec.backend]), run.prices)


Report = Callable[[str], None]


async def _episode(run: ProfileRun, question: Question, path: Path) -> EpisodeRecord | None:
    path.unlink(missing_ok=True)  # what a killed run left: start the question over
    session = run.session(path)
    try:
        async for _ in session.ask(question.question):
            pass
    finally:
        await session.aclose()
    return file_state(path).record


async def run_question(run: ProfileRun, question: Question, judge: LlmJudge | None, report: Report) -> str:
    """Run (unless done) and judge (unless judged) one question; returns what was done."""
    path = run.path(question)
    record = file_state(path).record
    ran = record is None
    if ran:
        record = await _episode(run, question, path)
        if record is None:
            report(f"failed {run.name}/{question.id}: the episode did not end (see {path.name})")
            return "failed"
    assert record is not None and record.ended is not None
    verdict = record.verdict
    if needs_judging(verdict, judge):
        verdict = await judge_answer(question.id, question.question, record.ended.answer, question.answer, judge)
        append_line(path, verdict)
    word = {True: "right", False: "wrong", None: "unjudged"}[verdict.correct if verdict else None]
    report(f"{'ran' if ran else 'judged'} {run.name}/{question.id}: {record.ended.status}, {word}")
    return "ran" if ran else "judged"


def pending(plan: EvalPlan, runs: list[ProfileRun], judge: LlmJudge | None) -> list[tuple[ProfileRun, Question]]:
    """Jobs still to do, interleaved so the profiles advance side by side."""
    jobs = []
    for question in plan.questions:
        for run in runs:
            state = file_state(run.path(question))
            if not state.done or needs_judging(state.record.verdict, judge):  # type: ignore[union-attr]
                jobs.append((run, question))
    return jobs


async def run_eval(plan: EvalPlan, parts: EngineParts | None = None, *, stream: TextIO | None = None,
                   progress: bool = True) -> list[ProfileRun]:
    from tqdm import tqdm

    if plan.concurrency < 1:
        raise EvalError("--concurrency must be at least 1")
    parts = parts or EngineParts(unsafe_code=plan.options.unsafe_code, check_endpoints=plan.options.check_endpoints)
    stream = stream or sys.stderr
    runs = [ProfileRun(name, plan, parts) for name in plan.profiles]
    try:
        for run in runs:
            await run.prepare()
        judge = make_judge(plan.judge, runs[0])
        jobs = pending(plan, runs, judge)
        total = len(plan.questions) * len(runs)
        bar = tqdm(total=total, initial=total - len(jobs), file=stream, unit="q", disable=not progress,
                   desc="eval", dynamic_ncols=True)
        report: Report = lambda line: tqdm.write(line, file=stream)  # noqa: E731 - prints above the bar
        report(f"{total - len(jobs)} of {total} already done; {len(jobs)} to do, {plan.concurrency} at a time")
        queue: asyncio.Queue[tuple[ProfileRun, Question]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker() -> None:
            while not queue.empty():
                run, question = queue.get_nowait()
                try:
                    await run_question(run, question, judge, report)
                except Exception as exc:  # one question's failure must not stop the others
                    report(f"failed {run.name}/{question.id}: {type(exc).__name__}: {exc}")
                bar.update(1)

        try:
            await asyncio.gather(*(worker() for _ in range(min(plan.concurrency, max(len(jobs), 1)))))
        finally:
            bar.close()
    finally:
        await parts.aclose()
    return runs

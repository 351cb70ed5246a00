"""Subcommands over saved trajectories: replay, export, fork, diff, eval (their logic lives in core/ and
eval/; these only parse, call and print)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .options import UsageError, session_options


def replay(args: argparse.Namespace) -> int:
    from orchestra_tui.console import Printer
    from orchestra_tui.core.trajectory import load_trajectory

    trajectory = load_trajectory(args.file)
    if args.print:
        printer = Printer(sys.stdout)
        for event in trajectory.events:
            printer(event)
        if trajectory.torn_tail:
            print("(the last line was incomplete: the run was killed while writing it)")
        return 0
    from orchestra_tui.tui import run_app

    return run_app(None, replay_events=trajectory.events, header=trajectory.header)


def export(args: argparse.Namespace) -> int:
    from orchestra_tui.core.export import reference_records, write_reference
    from orchestra_tui.core.trajectory import load_trajectory

    trajectory = load_trajectory(args.file)
    if args.out:
        for path in write_reference(trajectory, Path(args.out).expanduser()):
            print(path)
    else:
        for record in reference_records(trajectory):
            print(json.dumps(record, ensure_ascii=False, default=str))
    return 0


async def fork(args: argparse.Namespace) -> int:
    from orchestra_tui.console import Printer
    from orchestra_tui.core.events import EpisodeEnded
    from orchestra_tui.core.fork import ForkError, fork_path, resume_point
    from orchestra_tui.core.session import Session
    from orchestra_tui.core.trajectory import load_trajectory

    if not args.profile:
        raise UsageError("fork: --profile is required (the profile to continue under)")
    trajectory = load_trajectory(args.file)
    try:
        resume = resume_point(trajectory, args.at, args.episode)
    except ForkError as exc:
        raise UsageError(str(exc)) from None
    # The continuation must see the catalog and prompt wording the recorded rounds saw.
    args.catalog = args.catalog or trajectory.header.get("catalog")
    args.variant = args.variant or resume.variant
    args.trajectory = args.trajectory or str(fork_path(trajectory.path, args.at, args.profile))
    session = Session(session_options(args))
    if session.catalog.digest != trajectory.header.get("catalog_hash"):
        print(f"orchestra-tui: note: catalog {session.catalog.name} differs from the one the original ran with",
              file=sys.stderr)
    session.listeners.append(Printer(sys.stderr))
    ended: EpisodeEnded | None = None
    try:
        async for event in session.ask(resume.question, resume=resume):
            ended = event if isinstance(event, EpisodeEnded) else ended
    finally:
        path = session.trajectory_path
        await session.aclose()
    print(ended.answer if ended and ended.answer is not None else f"(no answer: {ended.status if ended else 'none'})")
    print(f"trajectory: {path}", file=sys.stderr)
    return 0 if ended and ended.status in ("answered", "no_answer") else 1


def diff(args: argparse.Namespace) -> int:
    from orchestra_tui.core.diff import render
    from orchestra_tui.core.episode_record import pick_episode, split_episodes
    from orchestra_tui.core.trajectory import load_trajectory

    records = []
    for name in (args.a, args.b):
        trajectory = load_trajectory(name)
        try:
            records.append(pick_episode(split_episodes(trajectory.events), args.episode, trajectory.path.name))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    print(render(records[0], records[1], args.a, args.b), end="")
    return 0


async def evaluate(args: argparse.Namespace) -> int:
    from orchestra_tui.eval.command import eval_command
    from orchestra_tui.eval.runner import EvalError

    if args.trajectory:
        raise UsageError("eval writes one trajectory per question under --out; --trajectory does not apply")
    try:
        return await eval_command(args, session_options(args))
    except EvalError as exc:
        raise UsageError(str(exc)) from None

"""`orchestra-tui eval` from parsed flags to the summary on stdout, summary.json and summary.png."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestra_tui.core.session import SessionOptions
from orchestra_tui.eval.runner import EvalError, EvalPlan, read_questions, run_eval
from orchestra_tui.eval.summary import render_table, summarize_runs, write_summary


def profile_names(args: argparse.Namespace) -> list[str]:
    if args.profile and args.profiles:
        raise EvalError("give --profile or --profiles, not both")
    if args.profiles:
        names = [n.strip() for n in args.profiles.split(",") if n.strip()]
        if not names:
            raise EvalError("--profiles: no profile named")
        return list(dict.fromkeys(names))  # a profile listed twice runs once
    if args.profile:
        return [args.profile]
    from orchestra_tui.core.profiles import default_profile_name

    return [default_profile_name()]


async def eval_command(args: argparse.Namespace, options: SessionOptions) -> int:
    if args.limit is not None and args.limit < 1:
        raise EvalError("--limit must be at least 1")
    questions_file = Path(args.questions).expanduser()
    plan = EvalPlan(questions=read_questions(questions_file, args.limit), out=Path(args.out).expanduser(),
                    profiles=profile_names(args), options=options, concurrency=args.concurrency, judge=args.judge)
    parts = None
    if args.scripted_latency is not None:  # the hidden test and benchmark world: no model at all
        from orchestra_tui.eval.scripted import ScriptedParts

        parts = ScriptedParts(args.scripted_latency)
    runs = await run_eval(plan, parts, progress=not args.no_progress)
    summaries = summarize_runs(runs, plan.questions)
    print(render_table(summaries), end="")
    print(f"summary: {write_summary(plan.out, summaries, questions_file.name)}", file=sys.stderr)
    try:
        from orchestra_tui.eval.plot import plot_summary

        print(f"plot: {plot_summary(summaries, plan.out / 'summary.png')}", file=sys.stderr)
    except ImportError:
        print("plot: skipped (matplotlib is not installed)", file=sys.stderr)
    return 0

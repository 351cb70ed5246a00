"""The command line: engine flags may come before or after the subcommand, and a pipe closed early is
not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orchestra_tui.cli import build_parser


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv", [
    ("--profile", "cheap", "--max-rounds", "3", "run", "q"),
    ("run", "q", "--profile", "cheap", "--max-rounds", "3"),
    ("--profile", "balanced", "--max-rounds", "9", "run", "q", "--profile", "cheap", "--max-rounds", "3"),
])
def test_engine_flags_before_or_after_the_subcommand(argv):
    args = parse(*argv)
    assert (args.profile, args.max_rounds, args.question) == ("cheap", 3, "q")


def test_defaults_hold_when_no_flag_is_given():
    args = parse("run", "q")
    assert (args.profile, args.catalog, args.max_rounds, args.unsafe_code, args.trajectory) == (None, None, 50, False, None)
    assert parse("--unsafe-code", "eval", "q.jsonl", "--out", "o").unsafe_code is True
    assert parse("fork", "t.jsonl", "--at", "2", "--profile", "cheap").profile == "cheap"


def test_chat_prompt_and_catalog_keep_flags_given_first():
    assert parse("--profile", "cheap", "chat", "--functions", "f.toml").profile == "cheap"
    assert parse("--variant", "hle", "prompt", "--problem", "p").variant == "hle"
    assert parse("prompt", "--problem", "p", "--variant", "train").variant == "train"
    assert parse("prompt", "--problem", "p").variant is None  # the handler takes the default wording
    assert parse("--catalog", "paper", "catalog", "show").catalog == "paper"
    assert parse("catalog", "show").catalog is None  # the handler shows the embedded catalog


def test_output_to_a_closed_pipe_ends_quietly():
    # `orchestra-tui catalog show | head -1` once head has gone: here the reader is closed before the
    # program starts, so its first write fails for certain.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "orchestra_tui", "catalog", "show", "--catalog", "paper",
                               "--no-probe"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr[-500:]

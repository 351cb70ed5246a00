"""The real thing on the embedded default: `orchestra-tui run` in a subprocess, SmolLM2 via llama.cpp,
retrieval over the shipped docs with MiniLM, code in a subprocess. And SIGKILL mid-episode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ORCHESTRA_TUI_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRA_TUI_CONFIG_DIR=str(tmp_path / "config"),
        # The index cache is shared across tests of one run: building it once is enough.
        ORCHESTRA_TUI_CACHE_DIR=os.environ.get("ORCHESTRA_TEST_CACHE", str(tmp_path / "cache")),
        HF_HUB_OFFLINE="1",
    )
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestra_tui", *args]


def test_run_json_on_the_embedded_default(tmp_path):
    done = subprocess.run(
        _cli("run", "What is 17 * 23?", "--json", "--max-rounds", "4"),
        env=_env(tmp_path), capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)  # exactly one JSON object on stdout
    assert set(out) >= {"answer", "trajectory", "rounds", "tool_calls", "cost_usd", "latency_s"}
    assert out["rounds"] >= 1 and out["latency_s"] > 0
    assert all(set(c) == {"tool", "alias", "model"} for c in out["tool_calls"])
    assert "round 1:" in done.stderr  # progress goes to stderr

    lines = Path(out["trajectory"]).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    kinds = Counter(r["type"] for r in records)
    assert records[0]["type"] == "header" and kinds["round_started"] >= 1
    assert kinds["tool_call_started"] >= 1 and kinds["expert_output"] >= 1
    # Every call has a ledger entry: each policy round, each expert, retrieval and code.
    charged = {(r["call_id"], r["kind"]) for r in records if r["type"] == "charged"}
    policy_rounds = {r["round"] for r in records if r["type"] == "policy_output"}
    assert {f"r{n}-policy" for n in policy_rounds} <= {c for c, k in charged if k == "policy"}
    for started in (r for r in records if r["type"] == "tool_call_started"):
        assert (started["call_id"], "expert") in charged
    for kind in ("documents_retrieved", "code_executed"):
        expected = "retrieval" if kind == "documents_retrieved" else "code"
        for r in (r for r in records if r["type"] == kind):
            assert (r["call_id"], expected) in charged
    assert out["cost_usd"] is not None  # everything on the embedded default is priced (local = $0)


def test_sigkill_mid_episode_leaves_a_readable_trajectory(tmp_path):
    trajectory = tmp_path / "killed.jsonl"
    proc = subprocess.Popen(
        _cli("run", "Which file format does orchestra-tui use for trajectories?", "--max-rounds", "6",
             "--trajectory", str(trajectory)),
        env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        # Progress lines arrive on stderr as events happen; kill once a tool call has started.
        for line in proc.stderr:
            if line.lstrip().startswith("→"):
                break
        else:
            pytest.fail("the run ended before any tool call started")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    lines = trajectory.read_text().splitlines()
    parsed = [json.loads(line) for line in lines]  # every line parses
    assert parsed[0]["type"] == "header"
    assert any(r["type"] == "tool_call_started" for r in parsed)
    assert not any(r["type"] == "episode_ended" for r in parsed)  # it really died mid-episode
    from orchestra_tui.core.trajectory import load_trajectory

    assert not load_trajectory(trajectory).torn_tail

"""The real app in a real terminal: `orchestra-tui` on its embedded default inside tmux, asked a question.

Everything here is the shipped path — the console entry point, Textual's terminal driver, the Session, the
embedded SmolLM2 through llama.cpp, retrieval and the code sandbox — read back the way a user sees it, from
the terminal's screen. The waits poll the screen with a deadline: they bound how long an external process
may take, they never measure it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

WIDTH, HEIGHT = 160, 48
CANARY = "sk-" + "canary" + uuid.uuid4().hex
QUESTION = "What is 17 * 23?"
DRAW_TIMEOUT_S = 180  # importing torch and llama.cpp on a busy two-core machine
ANSWER_TIMEOUT_S = 600  # a few rounds of SmolLM2 on CPU, plus building the retrieval index once
EXIT_TIMEOUT_S = 60
POLL_S = 0.5

# The header's status once an episode is over (see tui/widgets/header.py).
ENDED = re.compile(r"✓ answered|○ no answer|✗ error|⊘ cancelled|\$ budget reached")
TOOL_ROW = re.compile(r"\bR\d+\s+(search|enhance_reasoning|answer)\s+(search|reasoner|answer)(-math)?-\d\b")
QUESTION_COST = re.compile(r"question\s+(≥?\$\d[\d.,]*|unpriced)")


class Terminal:
    """One tmux server of our own (its own socket), holding one session of a fixed size."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env
        self.last_screen = ""

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, capture_output=True, text=True,
                              check=check, timeout=30)

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", "app", "-x", str(WIDTH), "-y", str(HEIGHT), command)

    @property
    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "app", check=False).returncode == 0

    def screen(self) -> str:
        done = self.tmux("capture-pane", "-p", "-t", "app", check=False)
        if done.returncode == 0:
            self.last_screen = done.stdout
        return self.last_screen

    def send(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "app", *(["-l"] if literal else []), *keys)

    def wait_for(self, what: str, ready: Callable[[str], bool], timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive:
                pytest.fail(f"the app exited while waiting for {what}; last screen:\n{self.last_screen}")
            screen = self.screen()
            if ready(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout_s} s; screen:\n{screen}")
            time.sleep(POLL_S)

    def close(self) -> None:
        self.tmux("kill-server", check=False)


@pytest.fixture
def terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "COLUMNS", "LINES")}
    env.update(
        ORCHESTRA_TUI_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRA_TUI_CONFIG_DIR=str(tmp_path / "config"),
        # The retrieval index is shared across the tests of one run when the runner says where.
        ORCHESTRA_TUI_CACHE_DIR=os.environ.get("ORCHESTRA_TEST_CACHE", str(tmp_path / "cache")),
        HF_HUB_OFFLINE="1",
        # A canary key in the app's environment: it must reach no screen and no file.
        OPENAI_API_KEY=CANARY,
    )
    term = Terminal(f"orchestra-e2e-{os.getpid()}", env)
    yield term
    term.close()


def _app_command(exit_file: Path, env: dict[str, str]) -> str:
    """The app under `env` (passed on the command line: a tmux server started earlier keeps its own
    environment), writing its exit status where the test can read it after the session is gone."""
    names = ("ORCHESTRA_TUI_STATE_DIR", "ORCHESTRA_TUI_CONFIG_DIR", "ORCHESTRA_TUI_CACHE_DIR", "HF_HUB_OFFLINE",
             "OPENAI_API_KEY")
    assignments = " ".join(f"{name}={shlex.quote(env[name])}" for name in names)
    app = f"{shlex.quote(sys.executable)} -m orchestra_tui --max-rounds 4"
    return f"env {assignments} {app}; echo $? > {shlex.quote(str(exit_file))}"


def test_the_real_app_answers_a_question_in_tmux(terminal, tmp_path):
    exit_file = tmp_path / "exit-status"
    terminal.start(_app_command(exit_file, terminal.env))
    terminal.wait_for("drawn app", lambda s: "Ask a question" in s and "orchestra-tui" in s, DRAW_TIMEOUT_S)

    terminal.send(QUESTION, literal=True)
    terminal.send("Enter")
    terminal.wait_for("question in the transcript", lambda s: f"› {QUESTION}" in s, DRAW_TIMEOUT_S)
    screen = terminal.wait_for("end of the episode", lambda s: bool(ENDED.search(s.splitlines()[0])),
                               ANSWER_TIMEOUT_S)

    header = screen.splitlines()[0]
    assert "✗ error" not in header, screen
    assert "profile balanced" in header, screen
    # Reasoning: one fold per round, titled with what the round decided.
    assert re.search(r"Round 1\b", screen), screen
    # Tool calls: a row with the tool and the alias that ran it.
    assert TOOL_ROW.search(screen), screen
    # Cost: this question's total is a dollar amount or explicitly unpriced, never blank.
    assert QUESTION_COST.search(screen), screen
    assert CANARY not in screen

    terminal.send("C-q")
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while terminal.alive and time.monotonic() < deadline:
        time.sleep(POLL_S)
    assert not terminal.alive, f"the app did not quit on Ctrl+Q; screen:\n{terminal.screen()}"
    assert exit_file.read_text().strip() == "0"

    trajectories = list((tmp_path / "state" / "trajectories").glob("*.jsonl"))
    assert len(trajectories) == 1
    text = trajectories[0].read_text()
    assert '"type": "episode_started"' in text and '"type": "episode_ended"' in text
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert CANARY not in path.read_text(errors="replace"), path

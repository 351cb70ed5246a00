"""Running the Python that `enhance_reasoning` experts write.

The reference runs it with no sandbox and a 60 s timeout; only stdout reaches the policy. A runner takes
code and a timeout and returns a CodeResult; the engine depends on nothing else, so a stricter runner
(a bubblewrap sandbox) can replace SubprocessRunner without touching the engine.

SubprocessRunner isolates only what a plain subprocess can: a fresh working folder, a minimal environment
(API keys are not passed), its own process group killed as a whole. It is NOT a sandbox: the code runs as
this user, can read this user's files, and on Linux can read the parent's environment through
/proc/<ppid>/environ.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

# After the program is gone, how long to wait for its pipes to close. They stay open only if some
# descendant left the process group (setsid) while holding them; we stop reading rather than hang.
DRAIN_GRACE_S = 2.0
# After the kill, how long to wait for the group's last processes to be reaped. Orphans are reaped by
# init, on its own schedule; until then they count against the user's RLIMIT_NPROC (a sandbox uid
# shared by every run), so a run after a fork bomb could not fork.
REAP_GRACE_S = 5.0
# The only variables a snippet sees. Everything else, API keys included, stays with us.
PASSED_ENV = ("PATH", "LANG", "LC_ALL")


class CodeRunnerError(RuntimeError):
    """The runner itself failed (not the code it ran); the message is one line meant for the user."""


@dataclass(frozen=True)
class CodeResult:
    stdout: str
    stderr: str
    exit_code: int | None  # None when the program did not exit by itself (timed out, killed)
    timed_out: bool
    seconds: float
    runner: str
    truncated: bool  # stdout or stderr went over the runner's cap and was cut


@runtime_checkable
class CodeRunner(Protocol):
    name: str

    async def run(self, code: str, *, timeout_s: float = 60) -> CodeResult: ...


class SubprocessRunner:
    """Runs code with `python -I -B` in a throw-away folder, in a new session, with a clean environment."""

    name = "subprocess"

    def __init__(self, python: str = sys.executable, max_output_bytes: int = 1_000_000) -> None:
        self.python = python
        self.max_output_bytes = max_output_bytes

    def _environment(self, home: str) -> dict[str, str]:
        env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
        env.setdefault("PATH", os.defpath)
        env["HOME"] = home
        env["PYTHONIOENCODING"] = "utf-8"  # for Pythons the snippet starts itself (ours runs with -X utf8)
        return env

    async def run(self, code: str, *, timeout_s: float = 60) -> CodeResult:
        workdir = tempfile.mkdtemp(prefix="orchestra-code-")
        try:
            script = Path(workdir) / "snippet.py"
            script.write_text(code, encoding="utf-8")
            argv = [
                self.python,
                "-I",  # ignore PYTHON* variables and the user's site-packages
                "-B",  # no __pycache__ left behind
                "-X",  # -I also ignores PYTHONIOENCODING, so ask for UTF-8 stdio explicitly:
                "utf8",  # we decode the output as UTF-8 whatever the locale
                script.name,
            ]
            return await run_collected(argv, env=self._environment(workdir), cwd=workdir, timeout_s=timeout_s,
                                       max_output_bytes=self.max_output_bytes, runner=self.name)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class OutputCollector(asyncio.SubprocessProtocol):
    """Receives a child's output and tells apart its exit from the closing of its pipes.

    The high-level `Process.wait()` returns only once the pipes are closed too, so a grandchild that
    keeps stdout open would hide the exit (and the timeout would fire on a program that finished).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, cap: int) -> None:
        self.streams = {1: _CappedBuffer(cap), 2: _CappedBuffer(cap)}
        self._exited = loop.create_future()
        self._finished = loop.create_future()  # exited and every pipe closed

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.streams[fd].feed(data)

    def process_exited(self) -> None:
        if not self._exited.done():
            self._exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._finished.done():
            self._finished.set_result(None)

    async def wait_for_exit(self, timeout_s: float) -> bool:
        """Wait for the child to exit; True when `timeout_s` passed first."""
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), timeout_s)
        except asyncio.TimeoutError:
            return True
        return False

    async def wait_for_pipes(self, grace_s: float) -> None:
        await asyncio.wait([self._finished], timeout=grace_s)


class _CappedBuffer:
    """Keeps the first `cap` bytes of a stream and drops the rest as it arrives, so memory stays bounded
    whatever the program prints (and the pipe is still drained, so the writer never blocks on it)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty


async def wait_for_group_gone(pgid: int, grace_s: float) -> None:
    """Return once no process of the group is left, zombies included, or after `grace_s`."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)  # succeeds while any member, even a zombie, is left
        except (ProcessLookupError, PermissionError):
            return
        await asyncio.sleep(0.01)


async def run_collected(
    argv: list[str],
    *,
    env: dict[str, str],
    timeout_s: float,
    max_output_bytes: int,
    runner: str,
    cwd: str | None = None,
    pass_fds: tuple[int, ...] = (),
) -> CodeResult:
    """Run `argv` in its own process group with capped output and a wall-clock timeout; every runner
    (bare or sandboxed) goes through here so the kill and drain rules are the same everywhere."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        transport, collector = await loop.subprocess_exec(
            lambda: OutputCollector(loop, max_output_bytes),
            *argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            start_new_session=True,  # its own process group, so one killpg reaches every descendant
        )
    except OSError as error:
        raise CodeRunnerError(f"cannot start {argv[0]}: {error.strerror or error}") from None
    try:
        timed_out = await collector.wait_for_exit(timeout_s)
        seconds = time.monotonic() - started
    finally:
        # Also after a normal exit or a cancellation: children the snippet left running go too.
        kill_group(transport.get_pid())
        # Their deaths close the pipes. Should a descendant have left the group (setsid) with a
        # pipe open, stop waiting after a grace period instead of hanging.
        await collector.wait_for_pipes(DRAIN_GRACE_S)
        await wait_for_group_gone(transport.get_pid(), REAP_GRACE_S)
        transport.close()
    out, err = collector.streams[1], collector.streams[2]
    return CodeResult(
        stdout=out.text(),
        stderr=err.text(),
        exit_code=None if timed_out else transport.get_returncode(),
        timed_out=timed_out,
        seconds=round(seconds, 3),
        runner=runner,
        truncated=out.truncated or err.truncated,
    )

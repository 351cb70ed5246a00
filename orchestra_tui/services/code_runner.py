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
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

READ_CHUNK = 64 * 1024
# After the program is gone, how long to wait for its pipes to close. They stay open only if some
# descendant left the process group (setsid) while holding them; we stop reading rather than hang.
DRAIN_GRACE_S = 2.0
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
        started = time.monotonic()
        try:
            script = Path(workdir) / "snippet.py"
            script.write_text(code, encoding="utf-8")
            try:
                process = await asyncio.create_subprocess_exec(
                    self.python,
                    "-I",  # ignore PYTHON* variables and the user's site-packages
                    "-B",  # no __pycache__ left behind
                    "-X",  # -I also ignores PYTHONIOENCODING, so ask for UTF-8 stdio explicitly:
                    "utf8",  # we decode the output as UTF-8 whatever the locale
                    script.name,
                    cwd=workdir,
                    env=self._environment(workdir),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,  # its own process group, so one killpg reaches every descendant
                )
            except OSError as error:
                raise CodeRunnerError(f"cannot start {self.python}: {error.strerror or error}") from None
            return await self._collect(process, timeout_s, started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    async def _collect(self, process: asyncio.subprocess.Process, timeout_s: float, started: float) -> CodeResult:
        assert process.stdout is not None and process.stderr is not None
        out, err = _CappedBuffer(self.max_output_bytes), _CappedBuffer(self.max_output_bytes)
        readers = [asyncio.create_task(out.drain(process.stdout)), asyncio.create_task(err.drain(process.stderr))]
        timed_out = False
        try:
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except asyncio.TimeoutError:
                timed_out = True
            finally:
                # Also on normal exit and on cancellation: children the snippet left running go too.
                _kill_group(process.pid)
                await process.wait()
            seconds = time.monotonic() - started
            await asyncio.wait(readers, timeout=DRAIN_GRACE_S)
        finally:
            for task in readers:
                task.cancel()
        return CodeResult(
            stdout=out.text(),
            stderr=err.text(),
            exit_code=None if timed_out else process.returncode,
            timed_out=timed_out,
            seconds=round(seconds, 3),
            runner=self.name,
            truncated=out.truncated or err.truncated,
        )


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty


class _CappedBuffer:
    """Collects a stream up to `cap` bytes; what was read survives if the reader is cancelled."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        # Bytes past the cap are read and dropped rather than left in the pipe: a writer blocked on a
        # full pipe would never finish, and memory stays bounded whatever the program prints.
        while chunk := await stream.read(READ_CHUNK):
            room = self.cap - len(self.data)
            if len(chunk) > room:
                self.truncated = True
                chunk = chunk[: max(room, 0)]
            self.data += chunk

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

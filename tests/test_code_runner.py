"""The subprocess code runner, with real child processes."""

from __future__ import annotations

import os
import sys

import pytest

from orchestra_tui.services.code_runner import CodeResult, CodeRunner, CodeRunnerError, SubprocessRunner


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an exited child nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def test_stdout_and_stderr_are_captured_separately():
    result = await SubprocessRunner().run("import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n")
    assert isinstance(result, CodeResult)
    assert (result.stdout, result.stderr) == ("to out\n", "to err\n")
    assert (result.exit_code, result.timed_out, result.truncated, result.runner) == (0, False, False, "subprocess")
    assert result.seconds >= 0


async def test_exit_code_and_traceback_are_reported():
    result = await SubprocessRunner().run("print('before')\nraise SystemExit(3)\n")
    assert (result.exit_code, result.stdout) == (3, "before\n")
    crashed = await SubprocessRunner().run("1 / 0\n")
    assert crashed.exit_code == 1
    assert "ZeroDivisionError" in crashed.stderr


async def test_unicode_output_survives():
    result = await SubprocessRunner().run("print('π ≈ 3.14159 — ✓')\n")
    assert result.stdout == "π ≈ 3.14159 — ✓\n"


async def test_runs_in_a_fresh_folder_that_is_removed_afterwards():
    code = (
        "import os, pathlib\n"
        "print(os.getcwd())\n"
        "print(os.environ['HOME'])\n"
        "pathlib.Path('made.txt').write_text('x')\n"
    )
    result = await SubprocessRunner().run(code)
    workdir, home = result.stdout.split()
    assert workdir == home
    assert not os.path.exists(workdir)


async def test_stdin_is_closed():
    result = await SubprocessRunner().run("import sys\nprint(repr(sys.stdin.read()))\n", timeout_s=30)
    assert (result.stdout, result.timed_out) == ("''\n", False)


async def test_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
with open({str(pid_file)!r}, "w") as f:
    f.write(str(child.pid))
print("spawned", flush=True)
while True:
    pass
"""
    result = await SubprocessRunner().run(code, timeout_s=1)
    assert result.timed_out
    assert result.exit_code is None
    assert result.stdout == "spawned\n"  # output written before the kill is kept
    grandchild = int(pid_file.read_text())
    assert not is_running(grandchild)


async def test_children_left_running_after_a_normal_exit_are_killed(tmp_path):
    pid_file = tmp_path / "daemon.pid"
    code = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
open({str(pid_file)!r}, "w").write(str(child.pid))
"""
    result = await SubprocessRunner().run(code, timeout_s=30)
    assert (result.exit_code, result.timed_out) == (0, False)
    assert not is_running(int(pid_file.read_text()))


async def test_output_over_the_cap_is_truncated():
    runner = SubprocessRunner(max_output_bytes=1000)
    result = await runner.run("import sys\nprint('x' * 100_000)\nprint('small', file=sys.stderr)\n")
    assert result.stdout == "x" * 1000
    assert result.stderr == "small\n"
    assert result.truncated and result.exit_code == 0
    exact = await runner.run("print('y' * 999)\n")  # 999 + newline: exactly at the cap
    assert (len(exact.stdout), exact.truncated) == (1000, False)


async def test_api_keys_do_not_reach_the_code(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "canary-7f3e9c1d")
    monkeypatch.setenv("PYTHONPATH", "/canary/path")
    result = await SubprocessRunner().run("import os, sys\nprint(dict(os.environ))\nprint(sys.path)\n")
    assert "canary" not in result.stdout
    environment = eval(result.stdout.splitlines()[0])  # noqa: S307 - our own child's repr of a dict of str
    assert set(environment) <= {"PATH", "LANG", "LC_ALL", "HOME", "PYTHONIOENCODING", "LC_CTYPE"}
    assert environment["PYTHONIOENCODING"] == "utf-8"


async def test_a_missing_interpreter_is_a_runner_error(tmp_path):
    runner = SubprocessRunner(python=str(tmp_path / "no-python"))
    assert isinstance(runner, CodeRunner)
    with pytest.raises(CodeRunnerError, match="cannot start"):
        await runner.run("print(1)")


def test_default_interpreter_is_ours():
    assert SubprocessRunner().python == sys.executable


async def test_a_descendant_that_escapes_the_group_does_not_hang_the_runner(tmp_path, monkeypatch):
    monkeypatch.setattr("orchestra_tui.services.code_runner.DRAIN_GRACE_S", 0.2)
    pid_file = tmp_path / "escaped.pid"
    # The escaped process inherits stdout and never closes it.
    code = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
open({str(pid_file)!r}, "w").write(str(child.pid))
print("done", flush=True)
"""
    try:
        result = await SubprocessRunner().run(code, timeout_s=30)
    finally:
        escaped = int(pid_file.read_text())
        os.kill(escaped, 9)
    assert (result.stdout, result.exit_code, result.timed_out) == ("done\n", 0, False)

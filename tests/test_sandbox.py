"""The bubblewrap sandbox against the escapes a model-written snippet might try, and the runner choice.

The escape tests start real sandboxes (CI runs them as root with a real bubblewrap). Each snippet reports
every attempt as `<label> blocked <error>` or `<label> OPEN <value>`; a test asserts the verdicts, checks
the host where it matters, and then runs a normal snippet to show the sandbox still works.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from orchestra_tui.services.code_runner import CodeRunnerError, SubprocessRunner
from orchestra_tui.services.sandbox import (
    BubblewrapRunner,
    SandboxLimits,
    SandboxProbe,
    UnavailableRunner,
    UnsandboxedRunner,
    make_code_runner,
    probe_sandbox,
)
from orchestra_tui.services.sandbox_layout import WORK_DIR

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap (bwrap) is not installed; CI installs it (apt-get install bubblewrap)",
)
PROJECT = Path(__file__).resolve().parents[1]
ALLOWED_ENV = {"PATH", "LANG", "HOME", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "LD_LIBRARY_PATH", "PWD"}
LIMITS = SandboxLimits(cpu_s=30, memory_mb=512, processes=32, file_mb=4, tmp_mb=16, work_mb=16, output_bytes=200_000)

# Prepended to escape snippets: runs one attempt and prints its verdict on one line.
ATTEMPT = '''
def attempt(label, action):
    try:
        value = action()
    except BaseException as error:
        print(label, "blocked", type(error).__name__, flush=True)
    else:
        print(label, "OPEN", repr(value)[:300], flush=True)
'''


def verdicts(stdout: str) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) >= 2 and parts[1] in ("blocked", "OPEN"):
            found[parts[0]] = parts[1]
    return found


def assert_all_blocked(result, labels: list[str]) -> None:
    found = verdicts(result.stdout)
    assert set(found) == set(labels), (result.stdout, result.stderr)  # every attempt reported
    assert all(verdict == "blocked" for verdict in found.values()), result.stdout


async def assert_still_works(runner: BubblewrapRunner) -> None:
    result = await runner.run("import sys\nprint(sum(range(10)))\nprint('note', file=sys.stderr)\n", timeout_s=60)
    assert (result.stdout, result.stderr, result.exit_code, result.timed_out) == ("45\n", "note\n", 0, False)


def survivors(pid_namespace: str) -> list[int]:
    """Host pids still running (not exiting) in the given pid namespace (a `pid:[inode]` link)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != pid_namespace:
                continue
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone already, or not ours to inspect
        state, flags = fields[0], int(fields[6])
        if state not in ("Z", "X") and not flags & 0x4:  # 0x4: PF_EXITING, already on its way out
            alive.append(int(entry))
    return alive


@pytest.fixture
def runner() -> BubblewrapRunner:
    return BubblewrapRunner(LIMITS)


@pytest.fixture
def host_helper():
    """A host process whose initial environment holds a canary key, as the app's would hold API keys."""
    canary = "sk-" + "canary" + uuid.uuid4().hex
    env = {**os.environ, "ORCHESTRA_CANARY_KEY": canary}
    helper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, env=env)
    try:
        yield helper, canary
    finally:
        helper.stdin.close()
        helper.wait(timeout=30)


# --- normal use ----------------------------------------------------------------------------------------


@needs_bwrap
async def test_normal_code_runs_as_an_unprivileged_user_in_a_private_folder(runner):
    code = (
        "import os, sys\n"
        "print(os.getuid(), os.geteuid(), os.getgid(), os.getcwd(), os.environ['HOME'])\n"
        "print(' '.join(sorted(os.environ)), len(os.listdir('/proc/self/fd')))\n"
        "open('made.txt', 'w').write('x'); open('/tmp/t.txt', 'w').write('y')\n"
        "print(open('made.txt').read() + open('/tmp/t.txt').read(), 'π ≈ 3.14 ✓')\n"
        "print('to err', file=sys.stderr); raise SystemExit(3)\n"
    )
    result = await runner.run(code, timeout_s=60)
    ids, env, files = result.stdout.splitlines()
    assert ids == "65534 65534 65534 /work /work"
    *names, open_fds = env.split()
    assert set(names) <= ALLOWED_ENV
    assert open_fds == "4"  # stdin, stdout, stderr and the listing itself: no descriptor of the app leaks
    assert files == "xy π ≈ 3.14 ✓"
    assert (result.stderr, result.exit_code, result.runner, result.timed_out) == ("to err\n", 3, "bubblewrap", False)


@needs_bwrap
async def test_large_code_and_the_installed_libraries_are_available(runner):
    code = "value = 0\n" + "value += 1\n" * 20_000 + "import json\nprint(json.dumps(value))\n"
    result = await runner.run(code, timeout_s=60)
    assert (result.stdout, result.exit_code) == ("20000\n", 0), result.stderr


# --- network -------------------------------------------------------------------------------------------


@needs_bwrap
async def test_a_listener_on_the_host_loopback_is_unreachable(runner):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10):  # the listener does work from the host
            listener.accept()[0].close()
        code = ATTEMPT + "import socket\n"
        code += f"attempt('loopback', lambda: socket.create_connection(('127.0.0.1', {port}), 5))\n"
        result = await runner.run(code, timeout_s=60)
        assert_all_blocked(result, ["loopback"])
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing from the sandbox ever arrived
    finally:
        listener.close()
    await assert_still_works(runner)


@needs_bwrap
async def test_public_addresses_and_name_resolution_fail(runner):
    code = ATTEMPT + (
        "import socket, urllib.request\n"
        "attempt('ipv4', lambda: socket.create_connection(('1.1.1.1', 80), 5))\n"
        "attempt('ipv6', lambda: socket.create_connection(('2606:4700:4700::1111', 80), 5))\n"
        "attempt('dns', lambda: socket.getaddrinfo('example.com', 80))\n"
        "attempt('http', lambda: urllib.request.urlopen('http://example.com/', timeout=5))\n"
        "print('interfaces', [name for _, name in socket.if_nameindex()])\n"
    )
    result = await runner.run(code, timeout_s=60)
    assert_all_blocked(result, ["ipv4", "ipv6", "dns", "http"])
    assert "interfaces ['lo']\n" in result.stdout  # a network namespace of its own, loopback only
    await assert_still_works(runner)


# --- files ---------------------------------------------------------------------------------------------


@needs_bwrap
async def test_secrets_and_host_folders_are_not_there(runner):
    home = Path.home()
    code = ATTEMPT + (
        "import os\n"
        "attempt('shadow', lambda: open('/etc/shadow').read())\n"
        "attempt('root_home', lambda: os.listdir('/root'))\n"
        "attempt('root_profile', lambda: open(os.path.join('/root', '.bashrc')).read())\n"
        f"attempt('user_home', lambda: os.listdir({str(home)!r}))\n"
        f"attempt('project', lambda: os.listdir({str(PROJECT)!r}))\n"
        f"attempt('this_test', lambda: open({__file__!r}).read())\n"
        "attempt('host_etc', lambda: open('/etc/hostname').read())\n"
        "print('passwd', open('/etc/passwd').read().count(':x:'))\n"
    )
    result = await runner.run(code, timeout_s=60)
    assert_all_blocked(result, ["shadow", "root_home", "root_profile", "user_home", "project", "this_test", "host_etc"])
    assert "passwd 1\n" in result.stdout  # a generated passwd naming only the sandbox user
    await assert_still_works(runner)


@needs_bwrap
async def test_writes_outside_the_work_folder_fail_and_leave_the_host_untouched(runner):
    name = f"escape-{uuid.uuid4().hex}"
    inside = ["/usr", "/etc", "/tmp/..", "/opt", "/proc", "/dev", "/usr/local/bin"]
    code = ATTEMPT + "import os, sys, site\n"
    for index, folder in enumerate(inside):
        code += f"attempt('w{index}', lambda: open({folder!r} + '/{name}', 'w').write('x'))\n"
    code += f"attempt('prefix', lambda: open(sys.base_prefix + '/{name}', 'w').write('x'))\n"
    code += f"attempt('site', lambda: open(site.getsitepackages()[0] + '/{name}', 'w').write('x'))\n"
    code += f"attempt('mkdir', lambda: os.mkdir('/{name}'))\n"
    code += f"open('{WORK_DIR}/{name}', 'w').write('x'); open('/tmp/{name}', 'w').write('x'); print('private ok')\n"
    result = await runner.run(code, timeout_s=60)
    assert_all_blocked(result, [f"w{i}" for i in range(len(inside))] + ["prefix", "site", "mkdir"])
    assert "private ok\n" in result.stdout  # the work folder and /tmp are writable...
    import site as host_site  # ... but all of it stayed inside: nothing under any host folder

    host_folders = ["/", "/usr", "/etc", "/opt", "/tmp", "/usr/local/bin", sys.base_prefix, tempfile.gettempdir()]
    host_folders += host_site.getsitepackages()
    assert [folder for folder in host_folders if (Path(folder) / name).exists()] == []
    await assert_still_works(runner)


@needs_bwrap
async def test_big_files_and_filling_the_work_folder_are_bounded(runner):
    code = ATTEMPT + (
        f"attempt('big_file', lambda: open('big', 'wb').write(b'x' * {(LIMITS.file_mb + 1) << 20}))\n"
        "import os\n"
        "total = 0\n"
        "try:\n"
        "    for index in range(1000):\n"
        "        with open(f'part{index}', 'wb') as part:\n"
        "            part.write(b'y' * (1 << 20))\n"
        "        total += 1\n"
        "except OSError as error:\n"
        "    print('full', total, error.errno)\n"
    )
    result = await runner.run(code, timeout_s=60)
    assert verdicts(result.stdout) == {"big_file": "blocked"}, result.stderr
    full = [line for line in result.stdout.splitlines() if line.startswith("full ")]
    assert len(full) == 1
    assert int(full[0].split()[1]) <= LIMITS.work_mb  # stopped by the tmpfs size, not by the loop's end
    await assert_still_works(runner)


# --- processes, memory, time, output -------------------------------------------------------------------


@needs_bwrap
async def test_the_process_limit_binds(runner):
    # As root this only holds because the sandbox runs as a real unprivileged uid (NPROC ignores uid 0).
    code = (
        "import os\n"
        "count = 0\n"
        "try:\n"
        "    while count < 1000:\n"
        "        if os.fork() == 0:\n"
        "            import time; time.sleep(600); os._exit(0)\n"
        "        count += 1\n"
        "except OSError as error:\n"
        "    print('stopped', count, type(error).__name__)\n"
    )
    result = await runner.run(code, timeout_s=60)
    words = result.stdout.split()
    assert words[0] == "stopped" and words[2] == "BlockingIOError", result
    assert int(words[1]) < LIMITS.processes
    await assert_still_works(runner)


@needs_bwrap
async def test_a_fork_bomb_is_bounded_and_fully_killed(runner):
    code = (
        "import os\n"
        "print(os.readlink('/proc/self/ns/pid'), flush=True)\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    result = await runner.run(code, timeout_s=3)
    assert result.timed_out and result.exit_code is None
    namespace = result.stdout.splitlines()[0]
    assert namespace.startswith("pid:[")
    assert survivors(namespace) == []
    await assert_still_works(runner)


@needs_bwrap
async def test_the_timeout_kills_every_process_even_a_new_session(runner):
    code = (
        "import os, subprocess, sys\n"
        "print(os.readlink('/proc/self/ns/pid'), flush=True)\n"
        "subprocess.Popen([sys.executable, '-c', 'import os; os.setsid()\\nwhile True: pass'])\n"
        "while True:\n"
        "    pass\n"
    )
    result = await runner.run(code, timeout_s=2)
    assert (result.timed_out, result.exit_code) == (True, None)
    assert survivors(result.stdout.splitlines()[0]) == []
    await assert_still_works(runner)


@needs_bwrap
async def test_the_cpu_limit_binds():
    runner = BubblewrapRunner(SandboxLimits(cpu_s=1))
    result = await runner.run("while True:\n    pass\n", timeout_s=120)
    assert not result.timed_out  # ended by RLIMIT_CPU, well before the wall-clock timeout
    assert result.exit_code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL)
    await assert_still_works(runner)


@needs_bwrap
async def test_memory_bombs_fail(runner):
    code = ATTEMPT + (
        "attempt('at_once', lambda: bytearray(4 << 30))\n"
        "chunks = []\n"
        "def grow():\n"
        "    while True:\n"
        "        chunks.append(bytearray(64 << 20))\n"
        "attempt('gradual', grow)\n"
        "print('held', len(chunks) * 64)\n"
    )
    result = await runner.run(code, timeout_s=60)
    assert_all_blocked(result, ["at_once", "gradual"])
    assert "at_once blocked MemoryError" in result.stdout
    held = int(result.stdout.split("held ")[1].split()[0])
    assert held < LIMITS.memory_mb
    await assert_still_works(runner)


@needs_bwrap
async def test_an_infinite_loop_times_out(runner):
    result = await runner.run("while True:\n    pass\n", timeout_s=2)
    assert (result.timed_out, result.exit_code, result.stdout) == (True, None, "")
    await assert_still_works(runner)


@needs_bwrap
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_endless_output_is_capped(runner, stream):
    code = f"import sys\nwhile True:\n    sys.{stream}.write('x' * 10000)\n"
    result = await runner.run(code, timeout_s=3)
    captured = getattr(result, stream)
    assert result.truncated and result.timed_out
    assert 0 < len(captured.encode()) <= LIMITS.output_bytes
    assert set(captured) == {"x"}
    await assert_still_works(runner)


# --- the app's secrets and processes -------------------------------------------------------------------


@needs_bwrap
async def test_the_canary_key_is_never_seen(runner, host_helper, monkeypatch):
    helper, canary = host_helper
    monkeypatch.setenv("ORCHESTRA_CANARY_KEY", canary)  # as an API key in the app's own environment
    with open(f"/proc/{helper.pid}/environ", "rb") as environ:  # on the host it can be read...
        assert canary.encode() in environ.read()
    pids = sorted({os.getpid(), os.getppid(), helper.pid})
    code = (
        "import os\n"
        "print('own', dict(os.environ))\n"
        "targets = ['self', '1', str(os.getppid())] + [d for d in os.listdir('/proc') if d.isdigit()]\n"
        f"targets += {[str(pid) for pid in pids]!r}\n"
        "for pid in targets:\n"
        "    try:\n"
        "        print(pid, open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as error:\n"
        "        print(pid, 'unreadable', type(error).__name__)\n"
    )
    result = await runner.run(code, timeout_s=60)
    assert "own {" in result.stdout and "HOME=/work" in result.stdout  # ... the snippet did read environs
    assert canary not in result.stdout + result.stderr
    for pid in pids:  # host pids do not exist in the sandbox's pid namespace
        assert f"\n{pid} unreadable FileNotFoundError" in result.stdout
    await assert_still_works(runner)


@needs_bwrap
async def test_signals_to_the_host_do_not_arrive(runner, host_helper):
    helper, _ = host_helper
    code = ATTEMPT + (
        "import os, signal\n"
        f"attempt('test_runner', lambda: os.kill({os.getpid()}, signal.SIGKILL))\n"
        f"attempt('helper', lambda: os.kill({helper.pid}, signal.SIGKILL))\n"
        f"attempt('group', lambda: os.killpg({os.getpgid(0)}, signal.SIGKILL))\n"
        "try:\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    os.kill(-1, signal.SIGKILL)\n"  # every process it may signal: only the sandbox's own
        "except OSError:\n"
        "    pass\n"
    )
    result = await runner.run(code, timeout_s=60)
    assert_all_blocked(result, ["test_runner", "helper", "group"])
    assert helper.poll() is None  # the host helper survived (and so did this test)
    await assert_still_works(runner)


@needs_bwrap
async def test_ptrace_of_host_processes_fails(runner, host_helper):
    helper, _ = host_helper
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]\n"
        f"for pid in ({os.getpid()}, {helper.pid}, os.getppid(), 1):\n"
        "    rc = libc.ptrace(16, pid, None, None)\n"  # PTRACE_ATTACH
        "    print(pid, rc, os.strerror(ctypes.get_errno()) if rc else 'attached')\n"
    )
    result = await runner.run(code, timeout_s=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result
    for line in lines[:2]:  # the two host pids
        assert line.split()[1] == "-1", line
    for pid in (os.getpid(), helper.pid):
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            assert "TracerPid:\t0\n" in status.read()
    await assert_still_works(runner)


def test_a_non_dumpable_process_hides_its_environment_from_its_own_user():
    # A child of the same (unprivileged) user reads its parent's environ unless the parent is
    # non-dumpable. As root the check would pass for any reason, so the script first drops to 65534.
    script = (
        "import ctypes, os, sys\n"
        "from orchestra_tui.services.sandbox import make_process_non_dumpable\n"
        "if os.getuid() == 0:\n"
        "    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)\n"
        "ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)\n"  # changing uid made it non-dumpable; undo that first
        "if sys.argv[1] == 'protect':\n"
        "    assert make_process_non_dumpable()\n"
        "if os.fork() == 0:\n"
        "    try:\n"
        "        data = open(f'/proc/{os.getppid()}/environ', 'rb').read()\n"
        "        os.write(1, b'read canary' if os.environ['CANARY'].encode() in data else b'read')\n"
        "    except PermissionError:\n"
        "        os.write(1, b'denied')\n"
        "    os._exit(0)\n"
        "os.wait()\n"
    )
    env = {**os.environ, "CANARY": "sk-" + "canary" + uuid.uuid4().hex}
    outcomes = [
        subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True, timeout=60)
        for mode in ("plain", "protect")
    ]
    assert [(done.stdout, done.returncode) for done in outcomes] == [("read canary", 0), ("denied", 0)], outcomes


# --- the probe and the choice of runner ----------------------------------------------------------------


@needs_bwrap
def test_the_probe_finds_a_working_bubblewrap():
    probe = probe_sandbox()
    assert probe.kind == "bubblewrap", probe.detail
    assert probe_sandbox() is probe  # cached


def test_the_probe_reports_a_missing_bwrap(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = probe_sandbox()
    assert (probe.kind, probe.detail) == ("none", "bwrap is not installed")


def test_the_probe_reports_why_bwrap_fails_and_runs_it_once(tmp_path):
    calls = tmp_path / "calls"
    fake = tmp_path / "bwrap"
    fake.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    probe = probe_sandbox(str(fake))
    assert probe.kind == "none"
    assert "setting up uid map: Permission denied" in probe.detail
    assert probe_sandbox(str(fake)) is probe
    assert calls.read_text() == "x\n"


def test_the_probe_rejects_a_bwrap_that_does_not_run_the_code(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert probe_sandbox(str(fake)).kind == "none"


def test_a_working_sandbox_is_used_even_when_unsafe_is_allowed():
    works = SandboxProbe("bubblewrap", "ok")
    for unsafe in (False, True):
        runner = make_code_runner(unsafe, limits=LIMITS, probe=works)
        assert isinstance(runner, BubblewrapRunner) and runner.limits == LIMITS


async def test_without_a_sandbox_the_code_tool_says_what_to_install():
    runner = make_code_runner(probe=SandboxProbe("none", "bwrap is not installed"))
    assert isinstance(runner, UnavailableRunner)
    result = await runner.run("print('must not run')\n")
    assert (result.stdout, result.exit_code, result.timed_out, result.runner) == ("", None, False, "unavailable")
    assert "apt-get install bubblewrap" in result.stderr
    assert "--unsafe-code" in result.stderr
    assert "bwrap is not installed" in result.stderr


async def test_unsafe_runs_bare_and_says_so():
    runner = make_code_runner(True, probe=SandboxProbe("none", "bwrap is not installed"))
    assert isinstance(runner, UnsandboxedRunner) and isinstance(runner, SubprocessRunner)
    result = await runner.run("print(6 * 7)\n")
    assert result.stdout == "42\n"
    assert "unsandboxed" in result.runner


def test_the_default_choice_follows_the_probe(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    assert isinstance(make_code_runner(), UnavailableRunner)
    assert isinstance(make_code_runner(unsafe=True), UnsandboxedRunner)


async def test_a_runner_without_bwrap_refuses_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CodeRunnerError, match="apt-get install bubblewrap"):
        await BubblewrapRunner().run("print(1)\n")


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=0)

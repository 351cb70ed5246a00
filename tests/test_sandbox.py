"""The sandboxes against the escapes a model-written snippet might try, and the runner choice.

The escape tests start real sandboxes, each with both runners: bubblewrap, and the Landlock + seccomp
layer used where bubblewrap cannot run (CI runs them as root, with a real bubblewrap and a kernel with
Landlock). Each snippet reports every attempt as `<label> blocked <error>` or `<label> OPEN <value>`; a
test asserts the verdicts, checks the host where it matters, and then runs a normal snippet to show the
sandbox still works. Where the two differ by design (bubblewrap hides the host, Landlock refuses it),
each runner's own property is asserted.
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

from orchestra_tui.services import landlock as landlock_mod
from orchestra_tui.services import sandbox as sandbox_mod
from orchestra_tui.services.code_runner import CodeRunnerError, SubprocessRunner
from orchestra_tui.services.sandbox import (
    BubblewrapRunner,
    LandlockRunner,
    SandboxLimits,
    SandboxProbe,
    UnavailableRunner,
    UnsandboxedRunner,
    make_code_runner,
    probe_sandbox,
)


def _landlock_missing() -> str | None:
    try:
        abi = landlock_mod.abi_version()
    except OSError as error:
        return f"the kernel lacks Landlock ({error.strerror}); CI's kernel has it"
    if os.geteuid() != 0 and abi < 6:
        return f"Landlock ABI {abi} cannot scope signals, which the runner needs when not run as root"
    return None


needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap (bwrap) is not installed; CI installs it (apt-get install bubblewrap)",
)
needs_landlock = pytest.mark.skipif(_landlock_missing() is not None, reason=str(_landlock_missing()))
RUNNERS = [pytest.param("bubblewrap", marks=needs_bwrap), pytest.param("landlock", marks=needs_landlock)]
PROJECT = Path(__file__).resolve().parents[1]
ALLOWED_ENV = {"PATH", "LANG", "HOME", "TMPDIR", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "LD_LIBRARY_PATH",
               "PWD"}
LIMITS = SandboxLimits(cpu_s=30, memory_mb=512, processes=32, file_mb=4, tmp_mb=16, work_mb=16, output_bytes=200_000)
SANDBOX_UID = LIMITS.uid if os.geteuid() == 0 else os.getuid()  # the Landlock runner switches uid only as root
SIGKILL_BIT = 1 << (signal.SIGKILL - 1)

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


def errors(stdout: str) -> dict[str, str]:
    """label -> the exception type that blocked it."""
    return {parts[0]: parts[2] for parts in (line.split() for line in stdout.splitlines())
            if len(parts) == 3 and parts[1] == "blocked"}


def assert_all_blocked(result, labels: list[str]) -> None:
    found = verdicts(result.stdout)
    assert set(found) == set(labels), (result.stdout, result.stderr)  # every attempt reported
    assert all(verdict == "blocked" for verdict in found.values()), result.stdout


async def assert_still_works(runner) -> None:
    result = await runner.run("import sys\nprint(sum(range(10)))\nprint('note', file=sys.stderr)\n", timeout_s=60)
    assert (result.stdout, result.stderr, result.exit_code, result.timed_out) == ("45\n", "note\n", 0, False)


def make_runner(kind: str, limits: SandboxLimits = LIMITS) -> BubblewrapRunner | LandlockRunner:
    return BubblewrapRunner(limits) if kind == "bubblewrap" else LandlockRunner(limits)


# Printed first by the process snippets: what identifies the sandbox's processes on the host.
MARKER = {
    "bubblewrap": "print(os.readlink('/proc/self/ns/pid'), flush=True)\n",  # its own pid namespace
    "landlock": "print(os.getpgid(0), flush=True)\n",  # its own process group, which it cannot leave
}


def survivors(runner_name: str, marker: str, pids: tuple[int, ...] = ()) -> list[int]:
    """Host pids of the sandbox (by `marker`, or listed) that are still running, not exiting."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if runner_name == "bubblewrap":
                ours = os.readlink(f"/proc/{entry}/ns/pid") == marker
            else:
                ours = fields[2] == marker or int(entry) in pids
            if not ours:
                continue
            with open(f"/proc/{entry}/status", encoding="ascii") as status:
                pending = [int(line.split()[1], 16) for line in status if line.startswith(("SigPnd:", "ShdPnd:"))]
        except OSError:
            continue  # gone already, or not ours to inspect
        state, flags = fields[0], int(fields[6])
        doomed = any(mask & SIGKILL_BIT for mask in pending)  # killed, not yet scheduled to die
        if state not in ("Z", "X") and not flags & 0x4 and not doomed:  # 0x4: PF_EXITING, on its way out
            alive.append(int(entry))
    return alive


@pytest.fixture(params=RUNNERS)
def runner(request) -> BubblewrapRunner | LandlockRunner:
    return make_runner(request.param)


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


async def test_normal_code_runs_as_an_unprivileged_user_in_a_private_folder(runner):
    code = (
        "import os, sys, tempfile\n"
        "def is_open(fd):\n"
        "    try:\n"
        "        os.fstat(fd)\n"
        "    except OSError:\n"
        "        return False\n"
        "    return True\n"
        "print(os.getuid(), os.geteuid(), os.getgid(), os.getcwd(), os.environ['HOME'])\n"
        "print(' '.join(sorted(os.environ)), '|', [fd for fd in range(3, 1024) if is_open(fd)])\n"
        "tmp = os.path.join(tempfile.gettempdir(), 't.txt')\n"  # /tmp in bubblewrap, TMPDIR under Landlock
        "open('made.txt', 'w').write('x'); open(tmp, 'w').write('y')\n"
        "print(open('made.txt').read() + open(tmp).read(), 'π ≈ 3.14 ✓')\n"
        "print('to err', file=sys.stderr); raise SystemExit(3)\n"
    )
    result = await runner.run(code, timeout_s=60)
    ids, env, files = result.stdout.splitlines()
    names, open_fds = env.split(" | ")
    names = names.split()
    assert set(names) <= ALLOWED_ENV
    assert open_fds == "[]"  # beyond stdin, stdout and stderr no descriptor of the app leaks
    assert files == "xy π ≈ 3.14 ✓"
    assert (result.stderr, result.exit_code, result.runner, result.timed_out) == ("to err\n", 3, runner.name, False)
    if runner.name == "bubblewrap":
        assert ids == "65534 65534 65534 /work /work"
    else:
        uid, euid, gid, cwd, home = ids.split()
        assert (int(uid), int(euid), cwd) == (SANDBOX_UID, SANDBOX_UID, home)
        assert os.geteuid() != 0 or int(gid) == LIMITS.gid
        assert Path(cwd).name.startswith("orchestra-landlock-") and "TMPDIR" in names
        assert not Path(cwd).exists()  # the private folder went with the run


async def test_large_code_and_the_installed_libraries_are_available(runner):
    code = "value = 0\n" + "value += 1\n" * 20_000 + "import json\nprint(json.dumps(value))\n"
    result = await runner.run(code, timeout_s=60)
    assert (result.stdout, result.exit_code) == ("20000\n", 0), result.stderr


# --- network -------------------------------------------------------------------------------------------


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
        if runner.name == "landlock":  # the host's loopback is there, but no socket can be made
            assert errors(result.stdout) == {"loopback": "PermissionError"}
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing from the sandbox ever arrived
    finally:
        listener.close()
    await assert_still_works(runner)


async def test_public_addresses_and_name_resolution_fail(runner):
    code = ATTEMPT + (
        "import socket, urllib.request\n"
        "attempt('ipv4', lambda: socket.create_connection(('1.1.1.1', 80), 5))\n"
        "attempt('ipv6', lambda: socket.create_connection(('2606:4700:4700::1111', 80), 5))\n"
        "attempt('dns', lambda: socket.getaddrinfo('example.com', 80))\n"
        "attempt('http', lambda: urllib.request.urlopen('http://example.com/', timeout=5))\n"
    )
    labels = ["ipv4", "ipv6", "dns", "http"]
    if runner.name == "bubblewrap":
        code += "print('interfaces', [name for _, name in socket.if_nameindex()])\n"
    else:  # no family at all, AF_UNIX included (pathname sockets reach D-Bus and the like) ...
        code += (
            "attempt('unix', lambda: socket.socket(socket.AF_UNIX))\n"
            "attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n"
            "attempt('netlink', socket.if_nameindex)\n"
            "attempt('inet_pair', lambda: socket.socketpair(socket.AF_INET))\n"
            "a, b = socket.socketpair(); a.sendall(b'pair'); print('socketpair', b.recv(4).decode())\n"
        )
        labels += ["unix", "udp", "netlink", "inet_pair"]
    result = await runner.run(code, timeout_s=60)
    assert_all_blocked(result, labels)
    if runner.name == "bubblewrap":
        assert "interfaces ['lo']\n" in result.stdout  # a network namespace of its own, loopback only
    else:  # ... but a connected AF_UNIX pair, which leads nowhere, still works (asyncio needs one)
        found = errors(result.stdout)
        assert {found[label] for label in ("ipv4", "ipv6", "unix", "udp", "inet_pair")} == {"PermissionError"}
        assert "socketpair pair\n" in result.stdout
    await assert_still_works(runner)


# --- files ---------------------------------------------------------------------------------------------


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
        "attempt('app', lambda: __import__('orchestra_tui.services.sandbox'))\n"  # no app code to read secrets
        "attempt('proc', lambda: os.listdir('/proc'))\n"
    )
    labels = ["shadow", "root_home", "root_profile", "user_home", "project", "this_test", "host_etc", "app"]
    if runner.name == "bubblewrap":
        code += "print('passwd', open('/etc/passwd').read().count(':x:'))\n"
    else:
        code += "attempt('passwd', lambda: open('/etc/passwd').read())\n"
        labels += ["passwd", "proc"]
    result = await runner.run(code, timeout_s=60)
    found = verdicts(result.stdout)
    if runner.name == "bubblewrap":
        assert found.pop("proc") == "OPEN"  # its own /proc, of its own pid namespace
        assert "passwd 1\n" in result.stdout  # a generated passwd naming only the sandbox user
    assert set(found) == set(labels), (result.stdout, result.stderr)
    assert all(verdict == "blocked" for verdict in found.values()), result.stdout
    await assert_still_works(runner)


async def test_writes_outside_the_work_folder_fail_and_leave_the_host_untouched(runner):
    name = f"escape-{uuid.uuid4().hex}"
    inside = ["/usr", "/etc", "/tmp/..", "/opt", "/proc", "/dev", "/usr/local/bin"]
    code = ATTEMPT + "import os, sys, site, tempfile\n"
    for index, folder in enumerate(inside):
        code += f"attempt('w{index}', lambda: open({folder!r} + '/{name}', 'w').write('x'))\n"
    code += f"attempt('prefix', lambda: open(sys.base_prefix + '/{name}', 'w').write('x'))\n"
    code += f"attempt('site', lambda: open(site.getsitepackages()[0] + '/{name}', 'w').write('x'))\n"
    code += f"attempt('mkdir', lambda: os.mkdir('/{name}'))\n"
    # Landlock does not confine metadata calls; seccomp refuses them.
    code += "attempt('chmod', lambda: os.chmod(sys.base_prefix, 0o700))\n"
    code += "attempt('utime', lambda: os.utime(site.getsitepackages()[0], (0, 0)))\n"
    labels = [f"w{i}" for i in range(len(inside))] + ["prefix", "site", "mkdir", "chmod", "utime"]
    if runner.name == "landlock":  # the host's /tmp: only the private folder is TMPDIR
        code += f"attempt('host_tmp', lambda: open('/tmp/{name}', 'w').write('x'))\n"
        labels.append("host_tmp")
    code += f"open('{name}', 'w').write('x'); open(os.path.join(tempfile.gettempdir(), '{name}'), 'w').write('x')\n"
    code += "print('private ok')\n"
    import site as host_site

    watched = [sys.base_prefix, *host_site.getsitepackages()]
    before = [os.stat(path) for path in watched]
    result = await runner.run(code, timeout_s=60)
    assert_all_blocked(result, labels)
    assert "private ok\n" in result.stdout  # the work folder and the temporary folder are writable...
    # ... but all of it stayed inside: nothing under any host folder, no mode or time changed
    host_folders = ["/", "/usr", "/etc", "/opt", "/tmp", "/usr/local/bin", sys.base_prefix, tempfile.gettempdir()]
    host_folders += host_site.getsitepackages()
    assert [folder for folder in host_folders if (Path(folder) / name).exists()] == []
    after = [os.stat(path) for path in watched]
    assert [(s.st_mode, s.st_mtime_ns) for s in after] == [(s.st_mode, s.st_mtime_ns) for s in before]
    await assert_still_works(runner)


async def test_big_files_and_filling_the_work_folder_are_bounded(runner):
    if runner.name == "landlock" and os.geteuid() != 0:
        pytest.skip("the Landlock work folder is a capped tmpfs only as root (it needs a mount namespace)")
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


async def test_a_fork_bomb_is_bounded_and_fully_killed(runner):
    code = (
        "import os\n"
        + MARKER[runner.name]
        + "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    result = await runner.run(code, timeout_s=3)
    assert result.timed_out and result.exit_code is None
    marker = result.stdout.splitlines()[0]
    assert marker.startswith("pid:[") if runner.name == "bubblewrap" else int(marker) > 1
    assert survivors(runner.name, marker) == []
    await assert_still_works(runner)


async def test_the_timeout_kills_every_process_even_a_new_session(runner):
    child = (
        "import os\n"
        "try:\n"
        "    os.setsid()\n"
        "    print('OPEN', flush=True)\n"
        "except OSError as error:\n"
        "    print('blocked', type(error).__name__, flush=True)\n"
        "while True: pass\n"
    )
    code = (
        "import os, subprocess, sys\n"
        + MARKER[runner.name]
        + f"child = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE)\n"
        "print('setsid', child.stdout.readline().decode().strip(), flush=True)\n"
        "print('child', child.pid, flush=True)\n"
        "while True:\n"
        "    pass\n"
    )
    result = await runner.run(code, timeout_s=5)
    assert (result.timed_out, result.exit_code) == (True, None), result
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result
    if runner.name == "bubblewrap":
        assert lines[1] == "setsid OPEN"  # it may leave the group: the pid namespace holds it anyway
        assert survivors(runner.name, lines[0]) == []
    else:
        assert lines[1] == "setsid blocked PermissionError"  # it stays in the group the timeout kills
        assert survivors(runner.name, lines[0], (int(lines[2].split()[1]),)) == []
    await assert_still_works(runner)


@pytest.mark.parametrize("kind", RUNNERS)
async def test_the_cpu_limit_binds(kind):
    runner = make_runner(kind, SandboxLimits(cpu_s=1))
    result = await runner.run("while True:\n    pass\n", timeout_s=120)
    assert not result.timed_out  # ended by RLIMIT_CPU, well before the wall-clock timeout
    if kind == "bubblewrap":  # bwrap reports a death by signal N as 128 + N
        assert result.exit_code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL)
    else:
        assert result.exit_code in (-signal.SIGXCPU, -signal.SIGKILL)
    await assert_still_works(runner)


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


async def test_an_infinite_loop_times_out(runner):
    result = await runner.run("while True:\n    pass\n", timeout_s=2)
    assert (result.timed_out, result.exit_code, result.stdout) == (True, None, "")
    await assert_still_works(runner)


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


async def test_the_canary_key_is_never_seen(runner, host_helper, monkeypatch):
    helper, canary = host_helper
    monkeypatch.setenv("ORCHESTRA_CANARY_KEY", canary)  # as an API key in the app's own environment
    with open(f"/proc/{helper.pid}/environ", "rb") as environ:  # on the host it can be read...
        assert canary.encode() in environ.read()
    pids = sorted({os.getpid(), os.getppid(), helper.pid})
    code = (
        "import os\n"
        "print('own', dict(os.environ))\n"
        "targets = ['self', '1', str(os.getppid())]\n"
        "try:\n"
        "    targets += [d for d in os.listdir('/proc') if d.isdigit()]\n"
        "except OSError as error:\n"
        "    print('listing unreadable', type(error).__name__)\n"
        f"targets += {[str(pid) for pid in pids]!r}\n"
        "for pid in targets:\n"
        "    try:\n"
        "        print(pid, open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as error:\n"
        "        print(pid, 'unreadable', type(error).__name__)\n"
    )
    result = await runner.run(code, timeout_s=60)
    assert "own {" in result.stdout and "'HOME': " in result.stdout, result
    assert canary not in result.stdout + result.stderr
    if runner.name == "bubblewrap":
        assert "HOME=/work" in result.stdout  # the snippet did read environs: its own /proc works
        for pid in pids:  # host pids do not exist in the sandbox's pid namespace
            assert f"\n{pid} unreadable FileNotFoundError" in result.stdout
    else:  # the host's /proc is there, but Landlock grants nothing of it, not even the snippet's own
        assert "listing unreadable PermissionError\n" in result.stdout
        for pid in ["self", *map(str, pids)]:
            assert f"\n{pid} unreadable PermissionError" in result.stdout
    await assert_still_works(runner)


async def test_signals_to_the_host_do_not_arrive(runner, host_helper):
    helper, _ = host_helper
    code = ATTEMPT + (
        "import os, signal\n"
        f"attempt('test_runner', lambda: os.kill({os.getpid()}, signal.SIGKILL))\n"
        f"attempt('helper', lambda: os.kill({helper.pid}, signal.SIGKILL))\n"
        f"attempt('group', lambda: os.killpg({os.getpgid(0)}, signal.SIGKILL))\n"
    )
    labels = ["test_runner", "helper", "group"]
    if runner.name == "landlock":  # its parent is the app itself here, not a sandbox's pid 1
        code += "attempt('parent', lambda: os.kill(os.getppid(), 0))\n"
        labels.append("parent")
    code += (
        "try:\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    os.kill(-1, signal.SIGKILL)\n"  # every process it may signal: only the sandbox's own
        "except OSError:\n"
        "    pass\n"
    )
    result = await runner.run(code, timeout_s=60)
    assert_all_blocked(result, labels)
    assert helper.poll() is None  # the host helper survived (and so did this test)
    await assert_still_works(runner)


async def test_ptrace_of_host_processes_fails(runner, host_helper):
    helper, _ = host_helper
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]\n"
        "buffer = ctypes.create_string_buffer(8)\n"
        "iovec = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 8)\n"  # any address: the call is what fails
        f"for pid in ({os.getpid()}, {helper.pid}, os.getppid(), 1):\n"
        "    rc = libc.ptrace(16, pid, None, None)\n"  # PTRACE_ATTACH
        "    print(pid, rc, os.strerror(ctypes.get_errno()) if rc else 'attached', end=' | ')\n"
        "    rc = libc.process_vm_readv(pid, iovec, 1, iovec, 1, 0)\n"
        "    print(rc, os.strerror(ctypes.get_errno()) if rc < 0 else 'read')\n"
    )
    result = await runner.run(code, timeout_s=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result
    for line in lines[:2]:  # the two host pids
        attach, read = line.split(" | ")
        assert attach.split()[1] == "-1" and read.split()[0] == "-1", line
    if runner.name == "landlock":  # refused by seccomp whatever the target: the host's pids are visible
        assert all(line.count("Operation not permitted") == 2 for line in lines), lines
    for pid in (os.getpid(), helper.pid):
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            assert "TracerPid:\t0\n" in status.read()
    await assert_still_works(runner)


@needs_landlock
@pytest.mark.skipif(os.geteuid() != 0, reason="starting a helper under the sandbox's uid needs root")
async def test_landlock_keeps_processes_of_its_own_uid_out_of_reach():
    # Without root there is no uid to switch to: every process of the user shares the snippet's uid, and
    # only Landlock's scopes and seccomp stand between them. A helper under the sandbox uid stands in.
    canary = "sk-" + "canary" + uuid.uuid4().hex
    helper = subprocess.Popen([shutil.which("sleep") or "/bin/sleep", "600"], user=LIMITS.uid, group=LIMITS.gid,
                              extra_groups=[], env={"ORCHESTRA_CANARY_KEY": canary})
    try:
        code = ATTEMPT + (
            "import ctypes, os, signal\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            f"print('same uid', os.stat('/proc/{helper.pid}').st_uid == os.getuid())\n"
            f"attempt('probe', lambda: os.kill({helper.pid}, 0))\n"
            f"attempt('kill', lambda: os.kill({helper.pid}, signal.SIGKILL))\n"
            f"attempt('environ', lambda: open('/proc/{helper.pid}/environ', 'rb').read())\n"
            "def attach(pid):\n"
            "    if libc.ptrace(16, pid, 0, 0) != 0:\n"  # PTRACE_ATTACH
            "        raise OSError(ctypes.get_errno(), 'ptrace')\n"
            f"attempt('ptrace', lambda: attach({helper.pid}))\n"
            "try:\n"
            "    os.kill(-1, signal.SIGKILL)\n"  # all it may signal: its own processes only
            "except OSError:\n"
            "    pass\n"
        )
        result = await LandlockRunner(LIMITS).run(code, timeout_s=60)
        assert "same uid True\n" in result.stdout, result
        assert_all_blocked(result, ["probe", "kill", "environ", "ptrace"])
        assert canary not in result.stdout + result.stderr
        assert helper.poll() is None  # still running
    finally:
        helper.kill()
        helper.wait(timeout=30)


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


@pytest.fixture
def fresh_probes():
    """The probes are cached per process; tests that change what they find start and end uncached."""
    sandbox_mod._probe.cache_clear()
    sandbox_mod._probe_landlock.cache_clear()
    yield
    sandbox_mod._probe.cache_clear()
    sandbox_mod._probe_landlock.cache_clear()


@pytest.fixture
def no_landlock(monkeypatch, fresh_probes):
    """A kernel without Landlock, as landlock_create_ruleset reports it (ENOSYS)."""

    def missing() -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(landlock_mod, "abi_version", missing)


@needs_bwrap
def test_the_probe_finds_a_working_bubblewrap():
    probe = probe_sandbox()
    assert probe.kind == "bubblewrap", probe.detail
    assert probe_sandbox() is probe  # cached


@needs_landlock
def test_without_bwrap_the_probe_chooses_landlock(monkeypatch, tmp_path, fresh_probes):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    probe = probe_sandbox()
    assert probe.kind == "landlock", probe.detail
    assert probe.detail.startswith(f"Landlock ABI {landlock_mod.abi_version()} + seccomp work")
    assert "bubblewrap not usable: bwrap is not installed" in probe.detail
    assert probe_sandbox() is probe  # cached
    for unsafe in (False, True):  # a working sandbox is used even when bare execution is allowed
        runner = make_code_runner(unsafe)
        assert isinstance(runner, LandlockRunner) and runner.name == "landlock"


@needs_landlock
def test_when_bwrap_fails_the_probe_chooses_landlock_and_says_why(tmp_path, fresh_probes):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    probe = probe_sandbox(str(fake))
    assert probe.kind == "landlock"
    assert "bubblewrap not usable: bubblewrap failed: bwrap: No permissions to create new namespace" in probe.detail


def test_the_probe_reports_a_missing_bwrap_and_a_kernel_without_landlock(monkeypatch, tmp_path, no_landlock):
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = probe_sandbox()
    assert probe.kind == "none"
    assert probe.detail.startswith("bwrap is not installed; the kernel lacks Landlock (Function not implemented)")
    assert "Linux 5.13 or newer" in probe.detail


def test_the_probe_reports_why_bwrap_fails_and_runs_it_once(tmp_path, no_landlock):
    calls = tmp_path / "calls"
    fake = tmp_path / "bwrap"
    fake.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    probe = probe_sandbox(str(fake))
    assert probe.kind == "none"
    assert "setting up uid map: Permission denied" in probe.detail
    assert probe_sandbox(str(fake)) is probe
    assert calls.read_text() == "x\n"


def test_the_probe_rejects_a_bwrap_that_does_not_run_the_code(tmp_path, no_landlock):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert probe_sandbox(str(fake)).kind == "none"


@needs_landlock
def test_the_probe_reports_a_failing_landlock_bootstrap(monkeypatch, tmp_path, fresh_probes):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(landlock_mod, "bootstrap", lambda: "raise SystemExit('sandbox bootstrap: no ruleset')")
    probe = probe_sandbox()
    assert (probe.kind, probe.detail) == ("none", "bwrap is not installed; Landlock confinement failed: "
                                                  "sandbox bootstrap: no ruleset")


@needs_landlock
def test_the_probe_rejects_a_bootstrap_that_does_not_confine(monkeypatch, tmp_path, fresh_probes):
    # Runs the snippet exactly as the real bootstrap does, minus every restriction: Python starts fine,
    # so only the probe snippet's own checks can tell.
    bare = (
        "import json, os, sys\n"
        "spec = json.loads(sys.argv[1])\n"
        "open(spec['script'], 'wb').write(os.read(spec['code_fd'], 1 << 20))\n"
        "os.execv(spec['argv'][0], spec['argv'])\n"
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(landlock_mod, "bootstrap", lambda: bare)
    probe = probe_sandbox()
    assert (probe.kind, probe.detail) == ("none", "bwrap is not installed; Landlock confinement failed: "
                                                  "the sandbox is not confined")


def test_a_working_sandbox_is_used_even_when_unsafe_is_allowed():
    for probe, kind in ((SandboxProbe("bubblewrap", "ok"), BubblewrapRunner), (SandboxProbe("landlock", "ok"),
                                                                                 LandlockRunner)):
        for unsafe in (False, True):
            runner = make_code_runner(unsafe, limits=LIMITS, probe=probe)
            assert type(runner) is kind and runner.limits == LIMITS


async def test_without_a_sandbox_the_code_tool_says_what_to_install():
    runner = make_code_runner(probe=SandboxProbe("none", "bwrap is not installed"))
    assert isinstance(runner, UnavailableRunner)
    result = await runner.run("print('must not run')\n")
    assert (result.stdout, result.exit_code, result.timed_out, result.runner) == ("", None, False, "unavailable")
    assert "apt-get install bubblewrap" in result.stderr
    assert "a kernel with Landlock (Linux 5.13 or newer" in result.stderr
    assert "--unsafe-code" in result.stderr
    assert "bwrap is not installed" in result.stderr


async def test_unsafe_runs_bare_and_says_so():
    runner = make_code_runner(True, probe=SandboxProbe("none", "bwrap is not installed"))
    assert isinstance(runner, UnsandboxedRunner) and isinstance(runner, SubprocessRunner)
    result = await runner.run("print(6 * 7)\n")
    assert result.stdout == "42\n"
    assert "unsandboxed" in result.runner


def test_the_default_choice_follows_the_probe(monkeypatch, tmp_path, no_landlock):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found, and no Landlock
    assert isinstance(make_code_runner(), UnavailableRunner)
    assert isinstance(make_code_runner(unsafe=True), UnsandboxedRunner)


async def test_a_landlock_runner_on_a_kernel_without_it_refuses(no_landlock):
    with pytest.raises(CodeRunnerError, match="the Landlock sandbox cannot start: Function not implemented"):
        await LandlockRunner().run("print(1)\n")


async def test_a_runner_without_bwrap_refuses_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CodeRunnerError, match="apt-get install bubblewrap"):
        await BubblewrapRunner().run("print(1)\n")


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=0)

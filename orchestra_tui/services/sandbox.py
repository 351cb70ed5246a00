"""A real sandbox for the Python that `enhance_reasoning` experts write, and the choice of runner.

BubblewrapRunner runs each snippet in a throw-away bubblewrap container: no network (a new network
namespace), a new pid namespace (the app's processes and their /proc are invisible), the system
read-only, private size-capped tmpfs folders for /tmp and the work folder, an unprivileged uid, rlimits
on CPU time, address space, processes, file size and open files, a wall-clock timeout that kills the
whole container, capped output and an allow-listed environment. The layout and the bwrap command line
live in sandbox_layout.py.

LandlockRunner is the middle layer, for machines where bubblewrap cannot run (user namespaces blocked,
bwrap not installed): the host's file system, network and process table stay shared, so a bootstrap in
the child confines itself before the snippet runs, with a Landlock domain (read-only system and Python
folders, one private work folder writable), a seccomp filter (no sockets but socketpair, no ptrace, no
leaving the process group, ...), the same rlimits and, as root, the same unprivileged uid. What each
piece blocks, and what it cannot, is in landlock.py. Both runners go through code_runner.run_collected,
so output caps, the timeout and the process-group kill are the same.

`make_code_runner` picks the runner from a probe that really starts a sandbox once per process:
bubblewrap when it works, else Landlock when the kernel has it and a confined snippet really runs.
Where neither works the code tool is unavailable, with a message saying what to install, unless the
user asked for bare execution (`--unsafe-code`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from orchestra_tui.services import landlock as landlock_mod
from orchestra_tui.services import sandbox_layout as layout_mod
from orchestra_tui.services.code_runner import CodeResult, CodeRunnerError, SubprocessRunner, run_collected

PROBE_TIMEOUT_S = 20.0
INSTALL_HINT = "apt-get install bubblewrap"
LANDLOCK_HINT = "Linux 5.13 or newer with Landlock enabled (CONFIG_SECURITY_LANDLOCK, `landlock` in lsm=)"
# The probe's snippet fails unless the confinement really holds, not only when Python cannot start.
PROBE_CODE = (
    "import os, socket\n"
    "for attempt in (socket.socket, lambda: os.listdir('/')):\n"
    "    try:\n"
    "        attempt()\n"
    "    except PermissionError:\n"
    "        continue\n"
    "    raise SystemExit('the sandbox is not confined')\n"
    "print('sandbox ok')\n"
)
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


@dataclass(frozen=True)
class SandboxLimits:
    cpu_s: int = 60  # RLIMIT_CPU: SIGXCPU after this much CPU time, SIGKILL a second later
    memory_mb: int = 512  # RLIMIT_AS: address space per process
    processes: int = 64  # RLIMIT_NPROC: processes and threads of the sandbox user
    file_mb: int = 16  # RLIMIT_FSIZE: largest file a process may write
    open_files: int = 256  # RLIMIT_NOFILE
    tmp_mb: int = 64  # size of the private /tmp and of /dev/shm each (tmpfs: memory, not disk); bubblewrap only
    work_mb: int = 64  # size of the private work folder (tmpfs too; under Landlock only as root)
    output_bytes: int = 1_000_000  # kept of stdout and of stderr each; the rest is drained and dropped
    uid: int = 65534
    gid: int = 65534

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be a positive integer, not {value!r}")


class BubblewrapRunner:
    """Runs code in a bubblewrap sandbox; see the module docstring for what that means."""

    name = "bubblewrap"

    def __init__(self, limits: SandboxLimits | None = None, *, bwrap: str | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.bwrap = bwrap or shutil.which("bwrap")
        self.layout = layout_mod.python_layout()

    @contextlib.contextmanager
    def _command(self, code: str) -> Iterator[tuple[list[str], list[int]]]:
        """The bwrap argv and the memfds it reads its files from; the fds are closed afterwards."""
        if not self.bwrap:
            raise CodeRunnerError(f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
        limits, layout = self.limits, self.layout
        as_root = os.geteuid() == 0
        fds: list[int] = []

        def data_fd(text: str) -> str:
            # memfds rather than host files: nothing to clean up, and no pipe to deadlock on large code.
            fd = os.memfd_create("orchestra-sandbox", 0)
            os.write(fd, text.encode("utf-8"))
            os.lseek(fd, 0, os.SEEK_SET)
            fds.append(fd)
            return str(fd)

        try:
            argv = [self.bwrap, *layout_mod.namespace_args(as_root, limits.uid, limits.gid)]
            files = {**layout_mod.identity_files(limits.uid, limits.gid), **layout.data_files}
            created = [*files, *(inside for _, inside in layout.ro_binds), *(link for _, link in layout.symlinks)]
            argv += layout_mod.parent_dir_args([*created, *layout_mod.ETC_FILES])
            argv += layout_mod.system_args()
            for path, text in files.items():
                argv += ["--perms", "0644", "--ro-bind-data", data_fd(text), path]
            for host, inside in layout.ro_binds:
                argv += ["--ro-bind", host, inside]
            for target, link in layout.symlinks:
                argv += ["--symlink", target, link]
            argv += ["--proc", "/proc", "--dev", "/dev"]
            for tmp in ("/tmp", "/dev/shm"):  # /dev/shm for multiprocessing; capped like /tmp
                argv += ["--perms", "1777", "--size", str(limits.tmp_mb << 20), "--tmpfs", tmp]
            argv += ["--perms", "1777", "--size", str(limits.work_mb << 20), "--tmpfs", layout_mod.WORK_DIR]
            script = f"{layout_mod.WORK_DIR}/{layout_mod.SCRIPT_NAME}"
            argv += ["--perms", "0644", "--file", data_fd(code), script, "--chdir", layout_mod.WORK_DIR]
            # The root is a tmpfs of bwrap's own, with no size limit; in a user namespace the sandbox user
            # could fill it (host memory). Only /tmp and the work folder, both capped, stay writable.
            argv += ["--remount-ro", "/", "--remount-ro", "/dev"]  # the same holds for /dev's tmpfs
            argv += ["--clearenv"]
            for key, value in self._environment().items():
                argv += ["--setenv", key, value]
            launch = layout_mod.rlimit_args(limits)
            if as_root:
                launch.append(f"drop={limits.uid}:{limits.gid}")
            argv += ["--", layout.launcher, "-I", "-S", "-B", "-c", layout_mod.LAUNCHER, *launch, "--"]
            # -X utf8: -I ignores PYTHONIOENCODING, and we decode the output as UTF-8 whatever the locale.
            argv += [layout.python, "-I", "-B", "-X", "utf8", layout_mod.SCRIPT_NAME]
            yield argv, fds
        finally:
            for fd in fds:
                os.close(fd)

    def _environment(self) -> dict[str, str]:
        return {**sandbox_environment(self.layout.path_dirs, layout_mod.WORK_DIR), **self.layout.env}

    async def run(self, code: str, *, timeout_s: float = 60) -> CodeResult:
        with self._command(code) as (argv, fds):
            # bwrap's own environment shows in the sandbox's /proc/1/environ: keep it empty. Killing bwrap's
            # group kills the container's pid 1, and with it, by the kernel, every process of the pid
            # namespace (--die-with-parent). bwrap reports a snippet killed by signal N as 128 + N.
            return await run_collected(argv, env={}, pass_fds=tuple(fds), timeout_s=timeout_s,
                                       max_output_bytes=self.limits.output_bytes, runner=self.name)


class LandlockRunner:
    """Runs code confined by Landlock + seccomp (+ a uid change as root); see landlock.py."""

    name = "landlock"

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()

    @contextlib.contextmanager
    def _command(self, code: str) -> Iterator[landlock_mod.Launch]:
        """The bootstrap's argv, environment, work folder and fds; the folder is removed afterwards."""
        bin_dirs = (os.path.dirname(sys.executable), os.path.join(os.path.realpath(sys.base_prefix), "bin"))
        env = sandbox_environment(bin_dirs, "")
        with contextlib.ExitStack() as stack:
            try:  # only the start is an OSError of ours; the caller's errors pass through unchanged
                launch = stack.enter_context(landlock_mod.launch(code, self.limits, env))
            except OSError as error:
                raise CodeRunnerError(f"the Landlock sandbox cannot start: {error.strerror or error}") from None
            yield launch

    async def run(self, code: str, *, timeout_s: float = 60) -> CodeResult:
        with self._command(code) as launch:
            # setsid and setpgid are refused inside, so the group kill reaches every descendant.
            # A snippet killed by signal N exits with -N, as with the bare runner.
            return await run_collected(launch.argv, env=launch.env, cwd=launch.cwd, pass_fds=launch.fds,
                                       timeout_s=timeout_s, max_output_bytes=self.limits.output_bytes,
                                       runner=self.name)


def sandbox_environment(path_dirs: tuple[str, ...], home: str) -> dict[str, str]:
    """The whole environment a sandboxed snippet gets (the Landlock runner sets HOME and TMPDIR itself)."""
    return {
        "PATH": ":".join(dict.fromkeys((*path_dirs, "/usr/local/bin", "/usr/bin", "/bin"))),
        "LANG": "C.UTF-8",
        "HOME": home,
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


class UnsandboxedRunner(SubprocessRunner):
    """The bare runner, chosen only with --unsafe-code; its name says so in every result."""

    name = "unsandboxed-subprocess"


class UnavailableRunner:
    """Stands in for the code tool when no sandbox works: every run explains what to do instead."""

    name = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.message = (
            f"Python code was not run: no sandbox is available ({reason}). "
            f"Install bubblewrap 0.8 or newer (`{INSTALL_HINT}`) to run it sandboxed, or, where user namespaces "
            f"are blocked, use a kernel with Landlock ({LANDLOCK_HINT}); or start with --unsafe-code "
            "to run it bare on this machine, as this user, with no sandbox."
        )

    async def run(self, code: str, *, timeout_s: float = 60) -> CodeResult:
        return CodeResult("", self.message, None, False, 0.0, self.name, False)


@dataclass(frozen=True)
class SandboxProbe:
    kind: Literal["bubblewrap", "landlock", "none"]
    detail: str


def probe_sandbox(bwrap: str | None = None) -> SandboxProbe:
    """Start one real sandbox (with the runner's own command line) and report which kind works:
    bubblewrap first, else Landlock, else none.

    The result is cached per bwrap path for the life of the process.
    """
    return _probe(bwrap or shutil.which("bwrap") or "")


@functools.lru_cache(maxsize=None)
def _probe(bwrap: str) -> SandboxProbe:
    bubblewrap = _probe_bubblewrap(bwrap)
    if bubblewrap.kind == "bubblewrap":
        return bubblewrap
    fallback = _probe_landlock()
    if fallback.kind == "landlock":
        return SandboxProbe("landlock", f"{fallback.detail}; bubblewrap not usable: {bubblewrap.detail}")
    return SandboxProbe("none", f"{bubblewrap.detail}; {fallback.detail}")


def _probe_bubblewrap(bwrap: str) -> SandboxProbe:
    if not bwrap:
        return SandboxProbe("none", "bwrap is not installed")
    runner = BubblewrapRunner(bwrap=bwrap)
    try:
        with runner._command("print('sandbox ok')\n") as (argv, fds):
            done = subprocess.run(
                argv, env={}, pass_fds=fds, capture_output=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL
            )
    except (OSError, subprocess.SubprocessError) as error:
        return SandboxProbe("none", f"{bwrap} could not be run: {error}")
    if done.returncode != 0 or done.stdout != b"sandbox ok\n":
        return SandboxProbe("none", f"bubblewrap failed: {_last_line(done)}")
    user = "as root, switching to uid" if os.geteuid() == 0 else "user namespace, uid"
    return SandboxProbe("bubblewrap", f"{bwrap} works ({user} {runner.limits.uid}, no network)")


@functools.lru_cache(maxsize=None)
def _probe_landlock() -> SandboxProbe:
    try:
        abi = landlock_mod.abi_version()
    except OSError as error:
        return SandboxProbe("none", f"the kernel lacks Landlock ({error.strerror}); it needs {LANDLOCK_HINT}")
    runner = LandlockRunner()
    try:
        with runner._command(PROBE_CODE) as launch:
            done = subprocess.run(launch.argv, env=launch.env, cwd=launch.cwd, pass_fds=launch.fds,
                                  capture_output=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except CodeRunnerError as error:
        return SandboxProbe("none", str(error))
    except (OSError, subprocess.SubprocessError) as error:
        return SandboxProbe("none", f"Landlock could not be used: {error}")
    if done.returncode != 0 or done.stdout != b"sandbox ok\n":
        return SandboxProbe("none", f"Landlock confinement failed: {_last_line(done)}")
    user = f"switching to uid {runner.limits.uid}" if os.geteuid() == 0 else f"as uid {os.getuid()}"
    return SandboxProbe("landlock", f"Landlock ABI {abi} + seccomp work ({user}, no network)")


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def make_code_runner(
    unsafe: bool = False, *, limits: SandboxLimits | None = None, probe: SandboxProbe | None = None
) -> BubblewrapRunner | LandlockRunner | UnsandboxedRunner | UnavailableRunner:
    """The sandbox that works (bubblewrap, else Landlock); otherwise the bare runner if `unsafe`, else an
    UnavailableRunner.

    `unsafe` only allows the fallback: a working sandbox is used either way.
    """
    probe = probe or probe_sandbox()
    if probe.kind == "bubblewrap":
        return BubblewrapRunner(limits)
    if probe.kind == "landlock":
        return LandlockRunner(limits)
    if unsafe:
        return UnsandboxedRunner()
    return UnavailableRunner(probe.detail)


def make_process_non_dumpable() -> bool:
    """Make this process non-dumpable, so processes of the same user (code we run included) cannot read
    its /proc/<pid>/environ (API keys) or ptrace it. True when done; False off Linux or if prctl fails."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 and libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0

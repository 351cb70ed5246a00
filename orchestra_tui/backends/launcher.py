"""Run a model server as a child process for as long as the app runs.

`ServerLauncher` starts a command (vLLM, llama-cpp-python's server, anything OpenAI-compatible), waits
until `GET {root}/v1/models` answers, exposes `base_url`, and stops the server again. The reference's users
were left with stray GPU servers after crashes; here a server ends with the app in every way the app can
end:
- `stop()` or leaving the `with` block: SIGTERM to the server's process group, SIGKILL after a grace period;
- normal interpreter exit: an `atexit` hook stops every server still running;
- the app being killed outright: on Linux the child asks the kernel (PR_SET_PDEATHSIG) for a SIGTERM when
  its parent dies.

The server runs in its own process group, so a stop reaches the worker processes it forks (vLLM's engine
core) and a Ctrl-C meant for the terminal app does not reach the server before the app decides to stop it.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from .serve_commands import llamacpp_command, vllm_command

DEFAULT_STARTUP_TIMEOUT = 600.0  # loading 16 GB of weights from a slow disk takes minutes
VLLM_STARTUP_TIMEOUT = 1800.0  # vLLM also profiles memory and captures CUDA graphs before it listens
DEFAULT_STOP_GRACE = 15.0  # vLLM needs a few seconds to release the GPU cleanly
POLL_INTERVAL = 0.5
TAIL_CHARS = 3000

# Answers that prove the server is up: a server started with an API key refuses the anonymous health check.
_READY_STATUSES = frozenset({200, 401, 403})
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_PR_SET_PDEATHSIG = 1


class ServerLaunchError(RuntimeError):
    """The server could not be started or did not answer; the message is safe to show."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's choice); another process may still take it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _connect_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _die_with_parent_hook(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies; None elsewhere.

    SIGTERM rather than SIGKILL so that vLLM can still tear down its own workers and free the GPU. The
    libc function is looked up here, in the parent, so the child does nothing but one system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    # The kernel sends the signal when the *thread* that forked exits, not the process: from a worker
    # thread the server would die with that thread. Only the main thread lives as long as the app.
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def _group_has_live_members(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. Zombies do not count: they have exited, and the
    orphaned ones are reaped by init, not by us."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Poll until the SIGKILLed members of a group are gone (they are not our children: no wait())."""
    deadline = time.monotonic() + timeout
    while _group_has_live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _scrub(text: str, env: Mapping[str, str]) -> str:
    """Servers echo their settings at start-up; keep the values of key-like variables out of messages."""
    for name, value in env.items():
        if _SECRET_NAME.search(name) and len(value) >= 8:
            text = text.replace(value, "***")
    return text


class ServerLauncher:
    """One server process. `start()` returns once it answers; `stop()` is idempotent."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        host: str = "127.0.0.1",
        name: str | None = None,
        health_path: str = "/v1/models",
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        stop_grace: float = DEFAULT_STOP_GRACE,
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not command:
            raise ValueError("the server command is empty")
        self.command = [str(part) for part in command]
        self.host = host
        self.port = port
        self.name = name or Path(self.command[0]).name
        self.health_path = "/" + health_path.lstrip("/")
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.env = dict(os.environ if env is None else env)
        self.log_path = Path(log_path) if log_path is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"ServerLauncher({self.name!r}, {self.root_url!r}, {state})"

    # -- addresses ------------------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://{_url_host(_connect_host(self.host))}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, as `OpenAICompatBackend` and the catalogs expect it."""
        return self.root_url + "/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> ServerLauncher:
        """Start the server and wait until it answers; on any failure nothing is left running."""
        with self._lock:
            if self._process is not None:
                raise ServerLaunchError(f"{self.name} was already started")
            if _port_in_use(_connect_host(self.host), self.port):
                # Else the health check could pass against whatever already listens there.
                raise ServerLaunchError(f"port {self.port} on {self.host} is already in use")
            self._log = open(self.log_path, "ab") if self.log_path else tempfile.TemporaryFile()
            hook = _die_with_parent_hook(os.getpid())
            try:
                self._process = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    # One file for both streams: vLLM logs to stdout, Python tracebacks go to stderr.
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    preexec_fn=hook,
                )
            except OSError as exc:
                self._close_log()
                raise ServerLaunchError(f"cannot run {self.command[0]}: {exc.strerror or exc}") from None
            _live.add(self)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        process = self._process
        assert process is not None
        url = self.root_url + self.health_path
        deadline = time.monotonic() + self.startup_timeout
        # trust_env=False: a user's HTTP proxy must not intercept a check of a server on this machine.
        with httpx.Client(timeout=POLL_INTERVAL * 4, trust_env=False) as client:
            while True:
                code = process.poll()
                if code is not None:
                    raise ServerLaunchError(
                        f"{self.name} exited with code {code} before answering at {url}; "
                        f"its output ends with:\n{self.output_tail()}"
                    )
                try:
                    if client.get(url).status_code in _READY_STATUSES:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServerLaunchError(
                        f"{self.name} did not answer at {url} within {self.startup_timeout:g} s; "
                        f"its output ends with:\n{self.output_tail()}"
                    )
                # Waiting on the process rather than sleeping notices a crash at once.
                try:
                    process.wait(timeout=min(POLL_INTERVAL, remaining))
                except subprocess.TimeoutExpired:
                    pass

    def output_tail(self, chars: int = TAIL_CHARS) -> str:
        """The last `chars` characters the server printed, with key-like values removed."""
        if self._log is None or self._log.closed:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        # pread leaves the file offset alone: the child shares it and is still writing.
        data = os.pread(fd, min(size, chars * 4), max(0, size - chars * 4))
        return _scrub(data.decode("utf-8", errors="replace")[-chars:], self.env)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block while the server runs (e.g. for `orchestra-tui serve`); its exit code, or None on timeout."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM the server's group, SIGKILL it after `stop_grace` seconds, and reap the server."""
        with self._lock:
            process = self._process
            if process is None:
                return
            if process.poll() is None:
                self._signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=self.stop_grace)
                except subprocess.TimeoutExpired:
                    self._signal_group(process.pid, signal.SIGKILL)
                    process.wait()
            # Workers the server forked and left behind keep the group alive (and a GPU busy): end them,
            # and wait for them, so that no process of the server outlives stop().
            if self._signal_group(process.pid, signal.SIGKILL):
                _wait_group_gone(process.pid, self.stop_grace)
            _live.discard(self)
            self._close_log()

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> bool:
        """Signal every process in the group; False when the group is already empty."""
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> ServerLauncher:
        if self._process is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


_live: set[ServerLauncher] = set()


@atexit.register
def _stop_all() -> None:
    for launcher in list(_live):
        try:
            launcher.stop()
        except Exception:  # noqa: BLE001 - at exit, one failure must not keep the others running
            pass


_BUILDERS: dict[str, Callable[..., list[str]]] = {"vllm": vllm_command, "llamacpp": llamacpp_command}
SERVER_KINDS = tuple(_BUILDERS)


def serve(
    kind: str,
    model: str,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    startup_timeout: float | None = None,
    stop_grace: float = DEFAULT_STOP_GRACE,
    log_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **command_options: Any,
) -> ServerLauncher:
    """Start a `kind` server ("vllm" or "llamacpp") for `model` and return it once it answers.

    `command_options` go to the command builder (`vllm_command` / `llamacpp_command`), e.g.
    `served_name=`, `max_model_len=`, `n_ctx=`, `n_gpu_layers=`, `extra=`.
    """
    if kind not in _BUILDERS:
        raise ValueError(f"server kind must be one of {', '.join(SERVER_KINDS)}, not {kind!r}")
    port = port or free_port(_connect_host(host))
    command = _BUILDERS[kind](model, port=port, host=host, **command_options)
    if startup_timeout is None:
        startup_timeout = VLLM_STARTUP_TIMEOUT if kind == "vllm" else DEFAULT_STARTUP_TIMEOUT
    launcher = ServerLauncher(
        command,
        port=port,
        host=host,
        name=kind,
        startup_timeout=startup_timeout,
        stop_grace=stop_grace,
        env=env,
        log_path=log_path,
    )
    return launcher.start()

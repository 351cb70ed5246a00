"""The model-server launcher: exact vLLM command line, and real processes on loopback.

Fast tests run a tiny stand-in server (Python's http.server answering `/v1/models`) to check the life
cycle: ready, stop, SIGKILL after the grace period, workers left in the group, a crash, a deadline, atexit
and the parent's death. The slow test runs the real llama.cpp server with SmolLM2 and chats with it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestra_tui.backends.base import Sampling, complete
from orchestra_tui.backends.launcher import ServerLauncher, ServerLaunchError, free_port, serve
from orchestra_tui.backends.openai_http import OpenAICompatBackend
from orchestra_tui.backends.serve_commands import llamacpp_command, vllm_command

FAKE_SERVER = textwrap.dedent(
    """
    import http.server, json, signal, subprocess, sys

    port, modes = int(sys.argv[1]), sys.argv[2:]
    if "ignore-term" in modes:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "worker" in modes:
        # A forked worker that ignores SIGTERM, as a stuck engine process would.
        worker = subprocess.Popen([sys.executable, "-c",
            "import signal\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: signal.pause()"])
        with open(modes[-1], "w") as f:
            f.write(str(worker.pid))
    print("secret is sk-test-canary-0123456789", flush=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"data": [{"id": "fake"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


@pytest.fixture
def fake_server(tmp_path: Path) -> Path:
    path = tmp_path / "fake_server.py"
    path.write_text(FAKE_SERVER, encoding="utf-8")
    return path


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live process, from /proc; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2])


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has exited; only its parent's bookkeeping is left


def group_members(pgid: int) -> list[int]:
    """Processes (zombies excluded) still in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[1] == pgid and stat[0] != "Z":
                members.append(int(entry.name))
    return members


def assert_gone(pid: int) -> None:
    assert not alive(pid), f"server process {pid} is still running"
    assert group_members(pid) == [], f"processes left in the server's group: {group_members(pid)}"


def wait_for_exit(pid: int, deadline_s: float) -> bool:
    """Block until a process that is not our child exits (pidfd), at most `deadline_s` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], deadline_s)
        return bool(readable) or not alive(pid)
    finally:
        os.close(fd)


# -- command lines -------------------------------------------------------------------------------------


def test_vllm_command_is_the_reference_plus_24gb_settings():
    assert vllm_command("/ckpt/Orchestrator-8B", port=8000) == [
        "vllm", "serve", "/ckpt/Orchestrator-8B",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--max-model-len", "40960",
        "--gpu-memory-utilization", "0.92",
        "--host", "127.0.0.1",
        "--port", "8000",
    ]  # fmt: skip


def test_vllm_command_with_served_name_and_extra_flags():
    command = vllm_command(
        "ckpt",
        port=9001,
        host="0.0.0.0",
        served_name="nvidia/Orchestrator-8B",
        max_model_len=32768,
        gpu_memory_utilization=0.85,
        extra=("--kv-cache-dtype", "fp8"),
    )
    assert command == [
        "vllm", "serve", "ckpt",
        "--served-model-name", "nvidia/Orchestrator-8B",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--max-model-len", "32768",
        "--gpu-memory-utilization", "0.85",
        "--host", "0.0.0.0",
        "--port", "9001",
        "--kv-cache-dtype", "fp8",
    ]  # fmt: skip


def test_llamacpp_command_uses_flags_the_installed_server_knows():
    command = llamacpp_command("m.gguf", port=8080, n_ctx=4096, n_gpu_layers=-1, model_alias="orch", n_threads=2)
    assert command[:3] == [sys.executable, "-m", "llama_cpp.server"]
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert options == {
        "--model": "m.gguf",
        "--model_alias": "orch",
        "--n_ctx": "4096",
        "--n_gpu_layers": "-1",
        "--n_threads": "2",
        "--host": "127.0.0.1",
        "--port": "8080",
    }
    usage = subprocess.run(
        [sys.executable, "-m", "llama_cpp.server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in options:
        assert f"[{flag} " in usage, f"llama_cpp.server does not know {flag}"


# -- life cycle with a stand-in server -------------------------------------------------------------------


def test_start_answers_and_stop_leaves_nothing(fake_server):
    port = free_port()
    with ServerLauncher([sys.executable, str(fake_server), str(port)], port=port, name="fake") as launcher:
        assert launcher.running
        assert launcher.base_url == f"http://127.0.0.1:{port}/v1"
        pid = launcher.pid
        assert alive(pid)
    assert launcher.returncode == -signal.SIGTERM
    assert_gone(pid)
    launcher.stop()  # idempotent


def test_a_server_ignoring_sigterm_is_killed_after_the_grace_period(fake_server):
    port = free_port()
    launcher = ServerLauncher(
        [sys.executable, str(fake_server), str(port), "ignore-term"], port=port, stop_grace=0.5
    ).start()
    pid = launcher.pid
    launcher.stop()
    assert launcher.returncode == -signal.SIGKILL
    assert_gone(pid)


def test_workers_left_in_the_group_are_ended(fake_server, tmp_path):
    port = free_port()
    worker_file = tmp_path / "worker.pid"
    launcher = ServerLauncher(
        [sys.executable, str(fake_server), str(port), "worker", str(worker_file)], port=port
    ).start()
    worker = int(worker_file.read_text())
    assert alive(worker)
    pid = launcher.pid
    launcher.stop()
    assert_gone(pid)
    # The worker's parent is gone, so init reaps it; SIGKILL has been sent, so wait for that to land.
    assert wait_for_exit(worker, 30)


def test_a_server_that_exits_at_once_fails_with_its_output():
    port = free_port()
    code = "import sys; print('loading weights failed: no such file', file=sys.stderr); sys.exit(3)"
    launcher = ServerLauncher([sys.executable, "-c", code], port=port, name="crashy", startup_timeout=300)
    with pytest.raises(ServerLaunchError) as info:
        launcher.start()
    message = str(info.value)
    assert "crashy exited with code 3" in message
    assert "loading weights failed: no such file" in message
    assert not launcher.running


def test_a_server_that_never_answers_hits_the_deadline_and_is_stopped():
    port = free_port()
    launcher = ServerLauncher(
        [sys.executable, "-c", "import signal; signal.pause()"], port=port, name="mute", startup_timeout=1.0
    )
    with pytest.raises(ServerLaunchError, match="mute did not answer .* within 1 s"):
        launcher.start()
    assert_gone(launcher.pid)


def test_a_busy_port_is_refused_before_starting(fake_server):
    port = free_port()
    with ServerLauncher([sys.executable, str(fake_server), str(port)], port=port):
        second = ServerLauncher([sys.executable, str(fake_server), str(port)], port=port)
        with pytest.raises(ServerLaunchError, match=f"port {port} .* already in use"):
            second.start()
        assert second.pid is None


def test_secrets_in_the_server_output_are_scrubbed(fake_server):
    port = free_port()
    env = {**os.environ, "SOME_API_KEY": "sk-test-canary-0123456789"}
    with ServerLauncher([sys.executable, str(fake_server), str(port)], port=port, env=env) as launcher:
        tail = launcher.output_tail()
    assert "secret is ***" in tail
    assert "sk-test-canary" not in tail


def test_missing_executable_is_a_launch_error():
    with pytest.raises(ServerLaunchError, match="cannot run no-such-server-binary"):
        ServerLauncher(["no-such-server-binary"], port=free_port()).start()


def _run_script(body: str, tmp_path: Path, **kwargs) -> subprocess.Popen:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env, **kwargs)


def test_servers_are_stopped_at_interpreter_exit(fake_server, tmp_path):
    # Started from a worker thread, so the parent-death signal is not armed: only atexit can stop it.
    app = _run_script(
        f"""
        import sys, threading
        from orchestra_tui.backends.launcher import ServerLauncher, free_port
        port = free_port()
        box = []
        thread = threading.Thread(target=lambda: box.append(
            ServerLauncher([sys.executable, {str(fake_server)!r}, str(port)], port=port).start()))
        thread.start(); thread.join()
        print(box[0].pid, flush=True)
        """,
        tmp_path,
    )
    out, _ = app.communicate(timeout=120)
    assert app.returncode == 0
    assert_gone(int(out.split()[0]))


def test_the_server_dies_with_a_killed_parent(fake_server, tmp_path):
    app = _run_script(
        f"""
        import sys
        from orchestra_tui.backends.launcher import ServerLauncher, free_port
        port = free_port()
        launcher = ServerLauncher([sys.executable, {str(fake_server)!r}, str(port)], port=port).start()
        print(launcher.pid, flush=True)
        sys.stdin.read()  # until the test kills us
        """,
        tmp_path,
        stdin=subprocess.PIPE,
    )
    try:
        server_pid = int(app.stdout.readline())
        assert alive(server_pid)
        app.kill()  # SIGKILL: no atexit, no cleanup in the app at all
        app.wait(timeout=60)
        assert wait_for_exit(server_pid, 60), "the server outlived its killed parent"
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()


# -- the real llama.cpp server ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_llamacpp_server_starts_chats_and_stops(smollm2_path):
    launcher = serve("llamacpp", str(smollm2_path), n_ctx=2048, model_alias="smollm2")
    pid = launcher.pid
    try:
        backend = OpenAICompatBackend(launcher.base_url, "smollm2")
        try:
            assert await backend.list_models() == ["smollm2"]
            result = await complete(
                backend,
                [{"role": "user", "content": "Say hello."}],
                sampling=Sampling(temperature=0.0, max_tokens=16, seed=1),
            )
        finally:
            await backend.aclose()
        assert result.content.strip()
        assert result.usage.completion_tokens > 0
    finally:
        launcher.stop()
    assert_gone(pid)


@pytest.mark.slow
def test_llamacpp_server_with_a_bad_model_path_fails_fast(tmp_path):
    missing = tmp_path / "no-such-model.gguf"
    with pytest.raises(ServerLaunchError) as info:
        serve("llamacpp", str(missing), startup_timeout=600)
    message = str(info.value)
    assert "llamacpp exited with code" in message  # not the 600 s deadline
    assert "no-such-model.gguf" in message  # the server's own complaint, from its stderr

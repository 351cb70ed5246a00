"""API keys come from the environment, else from the system keyring; never from anywhere else, and a
keyring key is as secret as an environment one."""

from __future__ import annotations

import json

import keyring
import pytest
from keyring.backend import KeyringBackend
from loopback_http import serve_get

from orchestra_tui import keys
from orchestra_tui.backends.base import BackendError
from orchestra_tui.backends.http_session import HttpSession
from orchestra_tui.core.availability import key_problem
from orchestra_tui.services.web_search import web_search_unavailable_reason


class MemoryKeyring(KeyringBackend):
    """A keyring backend in memory: keyring's own API in front of it, like GNOME Keyring or KWallet."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.asked: list[tuple[str, str]] = []

    def get_password(self, service, username):
        self.asked.append((service, username))
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring(monkeypatch):
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    monkeypatch.setenv(keys.KEYRING_SWITCH, "1")
    keys.forget_keyring()
    yield ring
    keyring.set_keyring(previous)
    keys.forget_keyring()


def test_the_environment_wins_then_the_keyring(memory_keyring, monkeypatch):
    memory_keyring.set_password("orchestra-tui", "OPENAI_API_KEY", "sk-from-keyring")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert keys.read_key("OPENAI_API_KEY") == "sk-from-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert keys.read_key("OPENAI_API_KEY") == "sk-from-keyring"
    assert keys.read_key("TOGETHER_API_KEY") is None
    assert ("orchestra-tui", "TOGETHER_API_KEY") in memory_keyring.asked


def test_the_switch_turns_the_keyring_off(memory_keyring, monkeypatch):
    memory_keyring.set_password("orchestra-tui", "OPENAI_API_KEY", "sk-from-keyring")
    monkeypatch.setenv(keys.KEYRING_SWITCH, "0")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert keys.read_key("OPENAI_API_KEY") is None and memory_keyring.asked == []


def test_a_machine_without_a_keyring_backend_means_no_key(monkeypatch):
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # what a headless server has: every lookup raises
    monkeypatch.setenv(keys.KEYRING_SWITCH, "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    keys.forget_keyring()
    try:
        assert keys.read_key("OPENAI_API_KEY") is None
    finally:
        keyring.set_keyring(previous)
        keys.forget_keyring()


def test_availability_and_web_search_see_keyring_keys(memory_keyring, monkeypatch):
    for name in ("OPENAI_API_KEY", "TAVILY_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    spec = {"kind": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-5", "api_key_env": "OPENAI_API_KEY"}
    assert key_problem(spec, keys.KEYS) == "OPENAI_API_KEY is not set"
    assert web_search_unavailable_reason() is not None
    memory_keyring.set_password("orchestra-tui", "OPENAI_API_KEY", "sk-ring")
    memory_keyring.set_password("orchestra-tui", "TAVILY_API_KEY", "tvly-ring")
    keys.forget_keyring()
    assert key_problem(spec, keys.KEYS) is None and keys.KEYS["OPENAI_API_KEY"] == "sk-ring"
    assert web_search_unavailable_reason() is None


async def test_a_keyring_key_is_sent_and_never_shown(memory_keyring, monkeypatch):
    canary = "canary-from-the-keyring-0123456789"  # not key-shaped: only scrub() by value can hide it
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    memory_keyring.set_password("orchestra-tui", "OPENAI_API_KEY", canary)
    seen: list[str] = []

    def refuse(request) -> tuple[int, bytes]:
        seen.append(request.headers.get("Authorization", ""))
        # A client error, whose body is quoted (scrubbed) in the message; this server echoes the key.
        return 400, json.dumps({"error": f"a server that echoes the key {canary}"}).encode()

    with serve_get(refuse) as port:
        session = HttpSession(f"http://127.0.0.1:{port}/v1", api_key_env="OPENAI_API_KEY", label="test",
                              max_attempts=1)
        try:
            with pytest.raises(BackendError) as caught:
                await session.send("GET", session.url("/models"))
        finally:
            await session.aclose()
    assert seen == [f"Bearer {canary}"]  # the keyring's key went to the server...
    assert canary not in str(caught.value) and "***" in str(caught.value)  # ...and is in no message

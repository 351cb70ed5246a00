"""API keys: the one place that reads them.

A catalog names the environment variable that holds a key (`api_key_env = "OPENAI_API_KEY"`). The key is
taken from the environment; when the environment lacks it and the optional `keyring` package finds a real
system keyring (GNOME Keyring, KWallet, macOS Keychain, Windows Credential Locker), from there — stored
under the service "orchestra-tui" with the variable's name as user name:

    keyring set orchestra-tui OPENAI_API_KEY

Keys stay in this process's memory: they are never written to a trajectory, a log or an export, never
passed to model-written code (its environment is an allow-list), and the app is non-dumpable so other
processes of the same user cannot read them from /proc. `ORCHESTRA_TUI_KEYRING=0` turns the keyring off
(the tests do, so a developer's own keyring cannot change what they see).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping

KEYRING_SERVICE = "orchestra-tui"
KEYRING_SWITCH = "ORCHESTRA_TUI_KEYRING"


def read_key(variable: str) -> str | None:
    """The key named by `variable`: the environment first (read at every call, so a key set or unset while
    the app runs counts), then the keyring. None when neither has it."""
    value = os.environ.get(variable)
    if value:
        return value
    if os.environ.get(KEYRING_SWITCH, "1") == "0":
        return None
    return _from_keyring(variable)


@functools.cache
def _from_keyring(variable: str) -> str | None:
    # Cached: a keyring lookup may cross D-Bus, and HTTP backends read their key at every request.
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:  # the optional dependency is not installed
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, variable) or None
    except (KeyringError, RuntimeError, OSError):  # no usable backend (a headless server), locked, …
        return None


def forget_keyring() -> None:
    """Drop what was read from the keyring (after the user changed it, and in tests)."""
    _from_keyring.cache_clear()


class KeySource(Mapping[str, str]):
    """The environment with the keyring behind it, for code that takes a mapping of variables."""

    def __getitem__(self, variable: str) -> str:
        value = read_key(variable)
        if value is None:
            raise KeyError(variable)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)  # the keyring cannot be listed; only looked up by name

    def __len__(self) -> int:
        return len(os.environ)


KEYS = KeySource()

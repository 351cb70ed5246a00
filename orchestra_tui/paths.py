"""Where things live: shipped data folders and the user's XDG folders.

The data folders (`tools/`, `profiles/`, and `docs/`, which is also the embedded retrieval corpus) sit at the top of a source checkout and inside the
package (`orchestra_tui/_data/`) in an installed wheel; `data_dir()` finds whichever exists.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import platformdirs

APP = "orchestra-tui"
_PACKAGE = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """A shipped data folder: `tools`, `profiles` or `docs`."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shipped data folder {name!r} is missing from this installation")


def config_dir() -> Path:
    return Path(os.environ.get("ORCHESTRA_TUI_CONFIG_DIR") or platformdirs.user_config_dir(APP))


def state_dir() -> Path:
    """Trajectories and logs."""
    return Path(os.environ.get("ORCHESTRA_TUI_STATE_DIR") or platformdirs.user_state_dir(APP))


def cache_dir() -> Path:
    """Built indexes and other derived data."""
    return Path(os.environ.get("ORCHESTRA_TUI_CACHE_DIR") or platformdirs.user_cache_dir(APP))


def trajectories_dir() -> Path:
    return state_dir() / "trajectories"

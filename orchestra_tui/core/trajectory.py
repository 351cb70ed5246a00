"""Trajectories: append-only JSONL, one header line then one line per event, flushed per event.

A crash, SIGKILL or Ctrl+C leaves every complete line readable; the reader tolerates a torn last line.
The format is documented in docs/TRAJECTORY.md and versioned: a reader accepts any minor version of its
major and refuses a newer major with a clear message.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestra_tui.core.events import Event, UnknownEvent, event_from_dict

SCHEMA = "orchestra-tui.trajectory"
VERSION = "1.0"
MAJOR = int(VERSION.split(".")[0])


class TrajectoryError(ValueError):
    pass


def new_trajectory_path(folder: Path, label: str = "run") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return folder / f"{stamp}-{label}-{uuid.uuid4().hex[:6]}.jsonl"


class TrajectoryWriter:
    """Writes the header at open, then each persistent event as it happens."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._write({"type": "header", "schema": SCHEMA, "version": VERSION, **header})

    def _write(self, obj: dict[str, Any]) -> None:
        if self._fd is None:
            return
        data = (json.dumps(obj, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        # One unbuffered write per line hands it whole to the kernel: a SIGKILL of this process after
        # the call cannot lose it, and none can leave half a line behind a buffered writer.
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def write(self, event: Event) -> None:
        if not event.transient:
            self._write(event.to_dict())

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


@dataclass
class Trajectory:
    path: Path
    header: dict[str, Any]
    events: list[Event]
    torn_tail: bool = False  # the last line was incomplete (the writer was killed mid-line)


def _check_header(path: Path, header: Any) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("type") != "header" or header.get("schema") != SCHEMA:
        raise TrajectoryError(f"{path}: line 1 is not an orchestra-tui trajectory header")
    version = str(header.get("version", ""))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise TrajectoryError(f"{path}: header version {version!r} is not a version number") from None
    if major > MAJOR:
        raise TrajectoryError(
            f"{path}: trajectory format {version} is newer than this orchestra-tui reads ({VERSION}); upgrade"
        )
    return header


def load_trajectory(path: Path | str) -> Trajectory:
    path = Path(path)
    try:
        raw_lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise TrajectoryError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TrajectoryError(f"{path}: not a UTF-8 text file") from None
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    if not raw_lines:
        raise TrajectoryError(f"{path}: empty file, no trajectory header")
    try:
        header = _check_header(path, json.loads(raw_lines[0]))
    except (json.JSONDecodeError, RecursionError):
        raise TrajectoryError(f"{path}: line 1 is not JSON") from None
    events: list[Event] = []
    torn = False
    last = len(raw_lines)
    for number, line in enumerate(raw_lines[1:], start=2):
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, RecursionError):  # nesting past the recursion limit is no event either
            if number == last:
                torn = True  # killed mid-write: everything before it stands
                break
            raise TrajectoryError(f"{path}: line {number} is not JSON") from None
        if not isinstance(data, dict):
            raise TrajectoryError(f"{path}: line {number} is not a JSON object")
        try:
            events.append(event_from_dict(data))
        except UnknownEvent:
            continue  # a newer minor version's event: skip, keep the rest readable
        except TypeError as exc:
            raise TrajectoryError(f"{path}: line {number}: {exc}") from None
    return Trajectory(path, header, events, torn)


def read_trajectory(path: Path | str) -> tuple[dict[str, Any], list[Event]]:
    t = load_trajectory(path)
    return t.header, t.events

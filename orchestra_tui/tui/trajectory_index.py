"""The saved trajectories the app can open: newest first, each with its first question and when it started.

Only the head of each file is read — up to its first `episode_started` line — because a trajectory keeps
every message the policy saw and can run to megabytes; listing a folder of them must stay instant.
No Textual here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

# A file whose first question is further in than this many lines is listed without one.
HEAD_LINES = 64
LISTED = 200  # the newest ones; an older file can still be opened with `orchestra-tui replay FILE`


@dataclass(frozen=True)
class TrajectoryInfo:
    path: Path
    modified: float  # the file's mtime: when it was last written
    started: float | None  # the first episode's timestamp, when the file has one
    question: str | None
    profile: str | None

    @property
    def when(self) -> float:
        return self.started if self.started is not None else self.modified

    def date_label(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.when))


def _head(path: Path) -> tuple[dict | None, dict | None]:
    """(header, first episode_started) from the first lines of a trajectory; None where missing."""
    header = episode = None
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines):
                if number >= HEAD_LINES:
                    break
                try:
                    record = json.loads(line)
                except ValueError:
                    break  # a torn line: whatever came before still counts
                if not isinstance(record, dict):
                    break
                if number == 0:
                    header = record if record.get("type") == "header" else None
                    if header is None:
                        break
                elif record.get("type") == "episode_started":
                    episode = record
                    break
    except OSError:
        pass
    return header, episode


def describe(path: Path) -> TrajectoryInfo | None:
    """What the picker shows for one file, or None when it is not a trajectory at all."""
    try:
        modified = path.stat().st_mtime
    except OSError:
        return None
    header, episode = _head(path)
    if header is None:
        return None
    started = episode.get("ts") if episode else None
    question = episode.get("question") if episode else None
    return TrajectoryInfo(
        path=path,
        modified=modified,
        started=float(started) if isinstance(started, (int, float)) else None,
        question=str(question) if question else None,
        profile=str(header.get("profile")) if header.get("profile") else None,
    )


def list_trajectories(folder: Path, limit: int = LISTED) -> list[TrajectoryInfo]:
    """The newest `limit` trajectories in `folder` (by modification time), newest first."""
    try:
        files = [p for p in folder.glob("*.jsonl") if p.is_file()]
    except OSError:
        return []

    def newest_first(path: Path) -> tuple[float, str]:
        try:
            return path.stat().st_mtime, path.name  # the name breaks ties so the order is stable
        except OSError:
            return 0.0, path.name

    files.sort(key=newest_first, reverse=True)
    infos = (describe(path) for path in files[:limit])
    return [info for info in infos if info is not None]

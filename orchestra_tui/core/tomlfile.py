"""Reading the project's TOML files (catalogs, profiles, function tools) with one kind of one-line error."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any


class TomlFileError(ValueError):
    """`problem` is one line; `line` is the TOML line when the parser said which."""

    def __init__(self, path: Path, problem: str, line: int | None = None) -> None:
        super().__init__(f"{path.name}: {problem}")
        self.path, self.problem, self.line = path, problem, line


def syntax_line(message: str) -> int | None:
    """tomllib says where: "... (at line 3, column 7)"."""
    found = re.search(r"at line (\d+)", message)
    return int(found.group(1)) if found else None


def read_toml(path: Path) -> tuple[dict[str, Any], bytes]:
    """The parsed table and the raw bytes (callers hash them or look up key lines)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TomlFileError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TomlFileError(path, "not UTF-8 text") from None
    try:
        return tomllib.loads(text), raw
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        raise TomlFileError(path, f"invalid TOML: {message}", syntax_line(message)) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise TomlFileError(path, "invalid TOML: nested too deeply") from None

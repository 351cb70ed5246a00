"""What a preference profile file may say, checked by hand so every error is one useful line.

The checks here are the authority; `profiles/profile.schema.json` describes the same shape for editors and
a test keeps the two in step. Hand checks rather than jsonschema at run time because a message has to name
the file, the TOML line, the key path and the nearest valid name — jsonschema knows none of the first two.

An error reads `FILE:LINE: KEY: what is wrong (did you mean 'X'?)`. The line comes from the TOML parser for
syntax errors; for a value we dislike it is looked up in the text, and left out when the lookup is unsure
(a made-up line number sends the reader to the wrong place, which is worse than none).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from orchestra_tui.core.prompts import VARIANTS
from orchestra_tui.core.toolset import REFERENCE_ALIASES, TOOL_NAMES

ALL_ALIASES: tuple[str, ...] = tuple(a for names in REFERENCE_ALIASES.values() for a in names)
TOP_KEYS = ("name", "description", "weights", "aliases", "tools", "models", "rules", "budget", "sampling",
            "variant", "catalog")
WEIGHT_KEYS = ("cost", "latency", "quality", "remote")
RULE_KEYS = ("exclude", "exclude_models", "local_only", "no_web")
BUDGET_KEYS = ("usd_per_question", "usd_per_session", "max_rounds", "max_calls_per_alias")
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "max_tokens")
CONFIG_KEYS = ("default_profile",)
# A profile is found by its file name, so names must be safe file stems; `config` is the settings file.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RESERVED_NAMES = ("config",)


class ProfileError(ValueError):
    """One line: `file[:line]: key: problem`. The parts stay available for the TUI and `profiles validate`."""

    def __init__(self, file: str, problem: str, *, key: str = "", line: int | None = None) -> None:
        self.file, self.key, self.line = file, key, line
        self.problem = " ".join(problem.split())  # fold any newline a parser put in: this is a row
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {self.problem}" if key else f"{where}: {self.problem}")


class Bad(Exception):
    """Raised inside the checks with a key path; `validate` adds the file and the line."""

    def __init__(self, path: tuple[str, ...], problem: str) -> None:
        super().__init__(problem)
        self.path, self.problem = path, problem


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def shown(value: Any) -> str:
    """A value as the TOML file spells it (`true`, not Python's `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def dotted(path: tuple[str, ...]) -> str:
    # A quoted key is escaped as TOML's basic strings are (JSON's escapes are the same): a key holding a
    # newline must not break the one-line error.
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p, ensure_ascii=False) for p in path)


# --- finding the line of a key ----------------------------------------------------------------------

_PART = re.compile(r'"([^"]*)"|\'([^\']*)\'|([^.\s"\']+)')
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _parts(text: str) -> list[str]:
    return [a or b or c for a, b, c in _PART.findall(text)]


def line_of(text: str, path: tuple[str, ...]) -> int | None:
    """The 1-based line that defines `path` (or the nearest enclosing key), when a plain reading finds it.

    Understands `[table]` headers and `key = value` lines, which is how profiles are written; dotted keys
    and inline tables are not followed, and then no line is given.
    """
    table: tuple[str, ...] = ()
    enclosing: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        key = None if header else _KEY.match(line)
        if header:
            table = tuple(_parts(header.group(1)))
            full = table
        elif key:
            full = (*table, *_parts(key.group(1))[:1])
        else:
            continue
        if full == path:
            return number
        # A value inside an array or table on this line (`exclude = [..., "bad"]`): its key's line.
        if key and enclosing is None and len(full) < len(path) and full == path[: len(full)]:
            enclosing = number
    return enclosing


# --- value checks ------------------------------------------------------------------------------------


def _table(value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Bad(path, f"expected a table, got {shown(value)}")
    return value


def _known(table: dict[str, Any], path: tuple[str, ...], allowed: tuple[str, ...], what: str = "key") -> None:
    for key in table:
        if key not in allowed:
            raise Bad((*path, key), f"unknown {what}{suggest(key, allowed)}")


def _weight(value: Any, path: tuple[str, ...]) -> float:
    # bool is an int in Python; `true` as a weight is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise Bad(path, f"expected a number from 0 to 1, got {shown(value)}")
    if not 0 <= value <= 1:
        raise Bad(path, f"{shown(value)} is outside 0..1")
    return float(value)


def _weights(value: Any, path: tuple[str, ...], names: tuple[str, ...] | None, what: str) -> dict[str, float]:
    table = _table(value, path)
    if names is not None:
        _known(table, path, names, what)
    return {str(k): _weight(v, (*path, str(k))) for k, v in table.items()}


def _bool(value: Any, path: tuple[str, ...]) -> bool:
    if not isinstance(value, bool):
        raise Bad(path, f"expected true or false, got {shown(value)}")
    return value


def _whole(value: Any, path: tuple[str, ...], minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Bad(path, f"expected a whole number >= {minimum}, got {shown(value)}")
    return value


_USD_TEXT = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*$")  # plain decimals only, as the JSON Schema says


def usd(value: Any, path: tuple[str, ...]) -> Decimal:
    """Dollars as an exact Decimal. Strings keep exactness; a TOML float goes through its shortest repr."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (
            isinstance(value, str) and not _USD_TEXT.match(value)):
        raise Bad(path, f"expected an amount in dollars such as \"0.05\", got {shown(value)}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise Bad(path, f"{shown(value)} is not an amount in dollars") from None
    if not amount.is_finite() or amount < 0:
        raise Bad(path, f"expected an amount >= 0, got {shown(value)}")
    return amount


def _strings(value: Any, path: tuple[str, ...], choices: tuple[str, ...] | None, what: str) -> list[str]:
    if not isinstance(value, list):
        raise Bad(path, f"expected a list of {what}s, got {shown(value)}")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise Bad(path, f"item {i + 1}: expected a {what} name, got {shown(item)}")
        if choices is not None and item not in choices:
            raise Bad(path, f"unknown {what} {shown(item)}{suggest(item, choices)}")
        if item not in out:
            out.append(item)
    return out


def _rules(value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    table = _table(value, path)
    _known(table, path, RULE_KEYS)
    out: dict[str, Any] = {}
    if "exclude" in table:
        out["exclude"] = _strings(table["exclude"], (*path, "exclude"), ALL_ALIASES, "alias")
    if "exclude_models" in table:
        out["exclude_models"] = _strings(table["exclude_models"], (*path, "exclude_models"), None, "model")
    for key in ("local_only", "no_web"):
        if key in table:
            out[key] = _bool(table[key], (*path, key))
    return out


def _budget(value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    table = _table(value, path)
    _known(table, path, BUDGET_KEYS)
    out: dict[str, Any] = {}
    for key in ("usd_per_question", "usd_per_session"):
        if key in table:
            out[key] = usd(table[key], (*path, key))
    if "max_rounds" in table:
        out["max_rounds"] = _whole(table["max_rounds"], (*path, "max_rounds"), 1)
    if "max_calls_per_alias" in table:
        at = (*path, "max_calls_per_alias")
        limit = table["max_calls_per_alias"]
        if isinstance(limit, dict):
            _known(limit, at, ALL_ALIASES, "alias")
            out["max_calls_per_alias"] = {a: _whole(n, (*at, a), 0) for a, n in limit.items()}
        else:
            out["max_calls_per_alias"] = _whole(limit, at, 0)
    return out


def _sampling(value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    table = _table(value, path)
    _known(table, path, SAMPLING_KEYS)
    out: dict[str, Any] = {}
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        if key in table:
            number = table[key]
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not low <= number <= high:
                raise Bad((*path, key), f"expected a number from {low:g} to {high:g}, got {shown(number)}")
            out[key] = float(number)
    if "top_k" in table:
        out["top_k"] = _whole(table["top_k"], (*path, "top_k"), 0)
    if "max_tokens" in table:
        out["max_tokens"] = _whole(table["max_tokens"], (*path, "max_tokens"), 1)
    return out


def _text(value: Any, path: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise Bad(path, f"expected a string, got {shown(value)}")
    return value


def check_name(name: str, path: tuple[str, ...] = ("name",)) -> str:
    if not NAME_PATTERN.match(name) or name in RESERVED_NAMES:
        raise Bad(path, f"{shown(name)} cannot name a profile: use lower-case letters, digits, '-' and '_'"
                        f" (and not {', '.join(RESERVED_NAMES)})")
    return name


def check_profile(data: dict[str, Any], stem: str) -> dict[str, Any]:
    """The normalised content of one profile file (raises `Bad`). `stem` is the file name without `.toml`."""
    _known(data, (), TOP_KEYS)
    out: dict[str, Any] = {"name": check_name(stem, ("name",))}
    if "name" in data:
        name = _text(data["name"], ("name",))
        # The file name is how a profile is found (`show NAME`, overriding by name); two identities would
        # let a user file shadow a profile it does not appear to be.
        if name != stem:
            raise Bad(("name",), f"{shown(name)} differs from the file name {stem + '.toml'!r}; make them equal")
    if "description" in data:
        out["description"] = _text(data["description"], ("description",))
    if "weights" in data:
        out["weights"] = _weights(data["weights"], ("weights",), WEIGHT_KEYS, "key")
    if "aliases" in data:
        out["aliases"] = _weights(data["aliases"], ("aliases",), ALL_ALIASES, "alias")
    if "tools" in data:
        out["tools"] = _weights(data["tools"], ("tools",), TOOL_NAMES, "tool")
    if "models" in data:
        # Model names depend on the catalog in use, so any name is accepted; it matches nothing elsewhere.
        out["models"] = _weights(data["models"], ("models",), None, "model")
    if "rules" in data:
        out["rules"] = _rules(data["rules"], ("rules",))
    if "budget" in data:
        out["budget"] = _budget(data["budget"], ("budget",))
    if "sampling" in data:
        out["sampling"] = _sampling(data["sampling"], ("sampling",))
    if "variant" in data:
        variant = data["variant"]
        if variant not in VARIANTS:
            raise Bad(("variant",),
                      f"{shown(variant)} is not one of {', '.join(VARIANTS)}{suggest(str(variant), VARIANTS)}")
        out["variant"] = variant
    if "catalog" in data:
        out["catalog"] = _text(data["catalog"], ("catalog",))
    return out

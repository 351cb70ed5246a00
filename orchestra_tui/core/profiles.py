"""Preference profiles on disk: finding, reading, validating and writing them.

Profiles are TOML files (the format is described at the top of `profiles/balanced.toml` and in
`profiles/profile.schema.json`). Shipped ones live in the `profiles` data folder; the user's live in
`<config dir>/profiles`, and a user file wins over a shipped one of the same name — whole, never merged key
by key, so what a file says is all of that profile. `default_profile` comes from the shipped
`profiles/config.toml`, overridden by the user's `<config dir>/config.toml`.

Every error is a `ProfileError`: one line naming the file, the line where known, and the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from orchestra_tui.core.profile_model import (
    AliasInfo,
    BudgetLimits,
    Profile,
    Rules,
    Weights,
    alias_infos,
    is_local_backend,
    model_matches,
    web_only_retrieval,
)
from orchestra_tui.core.tomlfile import TomlFileError, read_toml
from orchestra_tui.core.profile_schema import (
    CONFIG_KEYS,
    Bad,
    ProfileError,
    check_name,
    check_profile,
    dotted,
    line_of,
    suggest,
)
from orchestra_tui.paths import config_dir, data_dir

__all__ = [
    "AliasInfo", "BudgetLimits", "Profile", "ProfileError", "Rules", "Weights", "alias_infos", "default_profile_name",
    "find_profile", "is_local_backend", "load_profile", "load_profiles", "model_matches", "profile_files",
    "save_profile", "shipped_dir", "user_dir", "web_only_retrieval",
]

CONFIG_FILE = "config.toml"
FALLBACK_DEFAULT = "balanced"


def shipped_dir() -> Path:
    return data_dir("profiles")


def user_dir() -> Path:
    return config_dir() / "profiles"


def _shown(path: Path) -> str:
    """A path as a message shows it: `~` for the home folder keeps the line short."""
    try:
        return f"~/{path.relative_to(Path.home())}"
    except ValueError:
        return str(path)


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        data, raw = read_toml(path)
    except TomlFileError as exc:
        raise ProfileError(_shown(path), exc.problem, line=exc.line) from None
    return data, raw.decode("utf-8")


def load_profile(path: Path | str) -> Profile:
    """One profile file, validated. Its name is the file name without `.toml`."""
    path = Path(path)
    data, text = _read_toml(path)
    try:
        checked = check_profile(data, path.stem)
    except Bad as bad:
        raise ProfileError(_shown(path), bad.problem, key=dotted(bad.path), line=line_of(text, bad.path)) from None
    return Profile.from_checked(checked, source=path)


def profile_files() -> dict[str, Path]:
    """Profile name → the file that defines it (the user's folder wins), sorted by name."""
    found: dict[str, Path] = {}
    for folder in (shipped_dir(), user_dir()):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                if path.name != CONFIG_FILE and not path.name.startswith("."):
                    found[path.stem] = path
    return dict(sorted(found.items()))


def load_profiles(errors: list[ProfileError] | None = None) -> dict[str, Profile]:
    """Every profile by name. A bad file raises — unless `errors` is given, where it is recorded and skipped
    (how `profiles list` and the TUI keep working around one broken user file)."""
    out: dict[str, Profile] = {}
    for name, path in profile_files().items():
        try:
            out[name] = load_profile(path)
        except ProfileError as exc:
            if errors is None:
                raise
            errors.append(exc)
    return out


def find_profile(name: str) -> Profile:
    """A profile by name, or an error suggesting the nearest name."""
    files = profile_files()
    if name not in files:
        known = list(files)
        raise ProfileError("profiles", f"no profile named {name!r}{suggest(name, known)}; known: {', '.join(known)}")
    return load_profile(files[name])


def _default_in(path: Path, *, strict: bool) -> str | None:
    """`default_profile` from one config file. The user's config.toml may hold other settings of the app,
    so only the shipped file is checked for unknown keys."""
    if not path.is_file():
        return None
    data, text = _read_toml(path)
    if strict:
        for key in data:
            if key not in CONFIG_KEYS:
                raise ProfileError(_shown(path), f"unknown key{suggest(key, CONFIG_KEYS)}", key=key,
                                   line=line_of(text, (key,)))
    value = data.get("default_profile")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProfileError(_shown(path), f"expected a profile name, got {value!r}", key="default_profile",
                           line=line_of(text, ("default_profile",)))
    return value


def default_profile_name() -> str:
    """The profile a session starts with: the user's config.toml wins over the shipped profiles/config.toml."""
    user = config_dir() / CONFIG_FILE
    shipped = shipped_dir() / CONFIG_FILE
    from_user = _default_in(user, strict=False)
    name = from_user or _default_in(shipped, strict=True) or FALLBACK_DEFAULT
    known = profile_files()
    if name not in known:
        origin = user if from_user else shipped
        raise ProfileError(_shown(origin), f"no profile named {name!r}{suggest(name, list(known))}",
                           key="default_profile")
    return name


def save_profile(profile: Profile, path: Path | str) -> Path:
    """Write a profile as TOML (what the TUI's sliders call). The file name sets the profile's name, so a
    profile saved under another name is renamed to match. What would not load again is refused unwritten."""
    path = Path(path)
    try:
        check_name(path.stem)
    except Bad as bad:
        raise ProfileError(_shown(path), bad.problem, key="name") from None
    data = profile.to_toml_dict()
    data["name"] = path.stem
    text = tomli_w.dumps(data)
    try:  # check what will be on disk before touching the user's file
        check_profile(tomllib.loads(text), path.stem)
    except Bad as bad:
        raise ProfileError(_shown(path), bad.problem, key=dotted(bad.path)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename: a crash mid-write must not leave the user half a profile.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path

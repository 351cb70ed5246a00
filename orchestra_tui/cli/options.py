"""What every engine subcommand shares: the flags that choose catalog, profile, policy and limits, their
translation into `SessionOptions`, and the one error type that becomes a one-line message and status 2."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from orchestra_tui.core.prompts import DEFAULT_VARIANT, VARIANTS


class UsageError(Exception):
    pass


def policy_backend(args: argparse.Namespace) -> dict[str, Any] | None:
    if getattr(args, "base_url", None):
        if not args.model_name:
            raise UsageError("--base-url needs --model-name (the model name the server serves)")
        spec: dict[str, Any] = {"kind": "openai", "base_url": args.base_url, "model": args.model_name}
        if args.api_key_env:
            spec["api_key_env"] = args.api_key_env
        return spec
    if getattr(args, "model", None):
        path = Path(args.model).expanduser()
        if not path.is_file():
            raise UsageError(f"--model: no GGUF file at {path}")
        return {"kind": "llamacpp", "model_path": str(path)}
    return None


def session_options(args: argparse.Namespace) -> Any:
    from orchestra_tui.core.session import SessionOptions

    if args.max_rounds < 1:
        raise UsageError("--max-rounds must be at least 1")
    max_cost = None
    if args.max_cost is not None:
        try:
            max_cost = Decimal(args.max_cost)
        except InvalidOperation:
            raise UsageError(f"--max-cost: {args.max_cost!r} is not an amount in USD") from None
        if not max_cost.is_finite() or max_cost < 0:
            raise UsageError("--max-cost must be an amount >= 0")
    return SessionOptions(
        catalog=args.catalog,
        variant=args.variant,
        max_rounds=args.max_rounds,
        profile=args.profile,
        max_cost=max_cost,
        policy_backend=policy_backend(args),
        trajectory=Path(args.trajectory) if args.trajectory else None,
        unsafe_code=args.unsafe_code,
        repair_tool_calls=args.repair_tool_calls,
    )


def add_engine_flags(p: argparse.ArgumentParser, *, inherit: bool = False) -> None:
    """The engine flags, on the top-level parser and on each engine subcommand. `inherit` (subcommands):
    a flag not given after the subcommand keeps what was given before its name (`orchestra-tui --profile
    cheap run …`) instead of being reset to the default by the subcommand's parser."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if inherit else value

    p.add_argument("--catalog", default=default(None),
                   help="a shipped catalog name or a catalog TOML file (default: the profile's, else embedded)")
    p.add_argument("--variant", choices=VARIANTS, default=default(None),
                   help=f"orchestra prompt wording (default: {DEFAULT_VARIANT})")
    p.add_argument("--profile", default=default(None), help="preference profile (default: default_profile in config.toml)")
    p.add_argument("--max-cost", default=default(None), help="USD per question at most (on top of the profile's budget)")
    p.add_argument("--max-rounds", type=int, default=default(50))
    p.add_argument("--model", default=default(None), help="a GGUF file to play the policy in-process (llama.cpp)")
    p.add_argument("--base-url", default=default(None),
                   help="an OpenAI-compatible server for the policy (vLLM, llama.cpp server)")
    p.add_argument("--model-name", default=default(None), help="the model name to request from --base-url")
    p.add_argument("--api-key-env", default=default(None),
                   help="the environment variable holding the --base-url API key")
    p.add_argument("--trajectory", default=default(None), help="write the trajectory here instead of the state folder")
    p.add_argument("--repair-tool-calls", action="store_true", default=default(False),
                   help="repair malformed tool calls (flagged in the trajectory; off = the reference's handling)")
    p.add_argument("--unsafe-code", action="store_true", default=default(False),
                   help="run model-written code WITHOUT a sandbox when bubblewrap is unavailable")

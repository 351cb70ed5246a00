"""Subcommands about the fleet and the machine: serving models, serving and building indexes, which
aliases a catalog can use, and where files live."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from .options import UsageError


def index_build(args: argparse.Namespace) -> int:
    from orchestra_tui.paths import cache_dir
    from orchestra_tui.services.retrieval import build_index_from_folder

    src = Path(args.path).expanduser()
    if not src.is_dir():
        raise UsageError(f"index build: {src} is not a folder")
    out = Path(args.out).expanduser() if args.out else cache_dir() / "indexes" / src.resolve().name
    summary = build_index_from_folder(src, out, embedder_spec=args.embedder, progress=True)
    print(json.dumps({"index": str(out), **{k: v for k, v in dict(summary).items() if k != "index"}}, default=str))
    return 0


def serve(args: argparse.Namespace) -> int:
    from orchestra_tui.backends.launcher import ServerLaunchError, serve

    options: dict[str, Any] = {}
    if args.kind == "vllm":
        options.update(served_name=args.served_name, max_model_len=args.max_model_len,
                       gpu_memory_utilization=args.gpu_memory_utilization)
    else:
        options.update(model_alias=args.served_name, n_ctx=args.n_ctx or args.max_model_len,
                       n_gpu_layers=args.n_gpu_layers)
    try:
        launcher = serve(args.kind, args.model, port=args.port, host=args.host, log_path=args.log,
                         **{k: v for k, v in options.items() if v is not None})
    except ServerLaunchError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    print(launcher.base_url, flush=True)
    try:
        launcher.wait()
    except KeyboardInterrupt:
        pass
    finally:
        launcher.stop()
    return 0


def retriever_serve(args: argparse.Namespace) -> int:
    from orchestra_tui.services.retrieval_service import serve_index

    index = Path(args.index).expanduser()
    if not index.is_dir():
        raise UsageError(f"--index: {index} is not an index folder (build one with `orchestra-tui index build`)")
    serve_index(index, args.host, args.port, api_key_env=args.api_key_env)
    return 0


def paths(_: argparse.Namespace) -> int:
    from orchestra_tui import paths

    for name in ("config_dir", "state_dir", "cache_dir", "trajectories_dir"):
        print(f"{name.removesuffix('_dir')}: {getattr(paths, name)()}")
    return 0


def catalog_show(args: argparse.Namespace) -> int:
    from orchestra_tui.core.availability import alias_problems, backend_problems
    from orchestra_tui.core.catalog import load_catalog

    catalog = load_catalog(args.catalog or "embedded")
    problems = asyncio.run(backend_problems(catalog, probe=not args.no_probe))
    unavailable = alias_problems(catalog, problems)
    print(f"catalog {catalog.name} ({catalog.path.name}): {catalog.description}")
    policy_state = f"UNAVAILABLE — {problems[catalog.policy.backend]}" if catalog.policy.backend in problems else "ok"
    print(f"policy: {catalog.policy.backend} → {catalog.policy.model}  [{policy_state}]")
    for tool, aliases in catalog.aliases().items():
        for alias in aliases:
            spec = catalog.experts[alias]
            state = f"unavailable — {problems[spec.backend]}" if alias in unavailable else "available"
            print(f"{tool:18} {alias:14} {spec.backend} → {spec.model}  [{state}]")
    return 0

"""`orchestra-tui` — with no subcommand it opens the app; the subcommands are headless siblings over the
same engine. Bad input gets one line on stderr naming the flag, file or key, and exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from orchestra_tui import __version__
from orchestra_tui.core.prompts import DEFAULT_VARIANT, VARIANTS

from . import fleet, saved
from .options import UsageError, add_engine_flags, policy_backend, session_options


async def _run(args: argparse.Namespace) -> int:
    from orchestra_tui.console import Printer
    from orchestra_tui.core.events import EpisodeEnded, ToolCallStarted
    from orchestra_tui.core.session import Session

    session = Session(session_options(args))
    session.listeners.append(Printer(sys.stderr))
    ended: EpisodeEnded | None = None
    calls: list[dict[str, str]] = []
    try:
        async for event in session.ask(args.question):
            if isinstance(event, ToolCallStarted):
                calls.append({"tool": event.tool, "alias": event.alias, "model": event.model})
            elif isinstance(event, EpisodeEnded):
                ended = event
    finally:
        path = session.trajectory_path
        await session.aclose()
    if ended is None:
        return 1
    if args.json:
        print(json.dumps({
            "answer": ended.answer,
            "status": ended.status,
            "trajectory": str(path) if path else None,
            "rounds": ended.rounds,
            "tool_calls": calls,
            "cost_usd": ended.cost_usd,
            "latency_s": round(ended.latency_s, 3),
        }))
    else:
        print(ended.answer if ended.answer is not None else f"(no answer: {ended.status})")
        if path:
            print(f"trajectory: {path}", file=sys.stderr)
    return 0 if ended.status in ("answered", "no_answer") else 1


async def _chat(args: argparse.Namespace) -> int:
    from orchestra_tui.core.conversation import Conversation, ConversationOptions
    from orchestra_tui.core.events import FunctionCallStarted, TurnEnded
    from orchestra_tui.core.function_tools import FunctionToolError, load_function_tools

    if args.max_steps < 1:
        raise UsageError("--max-steps must be at least 1")
    try:
        functions = load_function_tools(args.functions)
    except FunctionToolError as exc:
        raise UsageError(f"--functions: {exc}") from None
    options = ConversationOptions(
        catalog=args.catalog, profile=args.profile, policy_backend=policy_backend(args),
        call_expert=False if args.no_expert else None, max_steps=args.max_steps,
        unsafe_commands=args.unsafe_commands, trajectory=Path(args.trajectory) if args.trajectory else None)
    conversation = Conversation(functions, options)
    status = 0
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):  # one turn per line; EOF ends
            if not line.strip():
                continue
            async for event in conversation.turn(line.rstrip("\n")):
                if isinstance(event, FunctionCallStarted):
                    print(f"  → {event.name} {event.arguments}", file=sys.stderr, flush=True)
                elif isinstance(event, TurnEnded):
                    if event.message is not None:
                        print(event.message, flush=True)
                    if event.status not in ("answered", "empty"):
                        status = 1
                        print(f"orchestra-tui: turn {event.turn} ended: {event.status}"
                              f"{' — ' + event.error if event.error else ''}", file=sys.stderr, flush=True)
    finally:
        path = conversation.trajectory_path
        await conversation.aclose()
    if path:
        print(f"trajectory: {path}", file=sys.stderr)
    return status


def _read_json_list(path: str, flag: str) -> list[Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag}: {path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise UsageError(f"{flag}: {path} must hold a JSON list")
    return data


def _tokenizer(spec: str | None) -> Any:
    from orchestra_tui.backends.llamacpp import LlamaCppTokenizer

    if spec is None:
        from orchestra_tui.backends.embedded import smollm2_gguf_path

        return LlamaCppTokenizer.from_gguf(smollm2_gguf_path())
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return LlamaCppTokenizer.from_gguf(path)
    if path.is_dir():
        from orchestra_tui.backends.remote_tokenizer import TransformersTokenizer

        return TransformersTokenizer(str(path))
    raise UsageError(f"--tokenizer: {spec} is neither a GGUF file nor a tokenizer folder")


async def _prompt(args: argparse.Namespace) -> int:
    from orchestra_tui.core import prompts
    from orchestra_tui.core.context import Evidence, PolicyLimits, policy_context
    from orchestra_tui.core.toolset import load_tools, offered_tools

    evidence = Evidence()
    if args.docs:
        for i, doc in enumerate(_read_json_list(args.docs, "--docs")):
            if not isinstance(doc, str):
                raise UsageError(f"--docs: item {i} is not a string")
            evidence.documents.append(doc)
    if args.code:
        for i, item in enumerate(_read_json_list(args.code, "--code")):
            if not (isinstance(item, dict) and isinstance(item.get("code"), str) and isinstance(item.get("output"), str)):
                raise UsageError(f'--code: item {i} must be an object with string "code" and "output"')
            evidence.add_code(item["code"], item["output"])
    tokenizer = _tokenizer(args.tokenizer)
    variant = args.variant or DEFAULT_VARIANT  # --variant may come before or after `prompt`
    context = await policy_context(tokenizer, args.problem, evidence, variant, PolicyLimits.for_variant(variant))
    tools = offered_tools(load_tools(), have_documents=bool(evidence.documents), one_search=variant == "frames")
    messages = prompts.orchestrator_messages(args.problem, context.text, variant)
    print(json.dumps({"messages": messages, "tools": tools}, ensure_ascii=False, indent=2))
    return 0


def _profiles(args: argparse.Namespace) -> int:
    from orchestra_tui.core import profiles as p

    if args.profiles_command == "list":
        errors: list[p.ProfileError] = []
        default = p.default_profile_name()
        for name, profile in sorted(p.load_profiles(errors).items()):
            mark = "*" if name == default else " "
            print(f"{mark} {name:14} {profile.description}  [{profile.source}]")
        for error in errors:
            print(f"! {error}", file=sys.stderr)
        return 1 if errors else 0
    if args.profiles_command == "show":
        import tomli_w

        print(tomli_w.dumps(p.find_profile(args.name).to_toml_dict()), end="")
        return 0
    if args.profiles_command == "validate":
        for path in args.files:
            p.load_profile(path)
            print(f"{path}: ok")
        return 0
    print(f"user: {p.user_dir()}")
    print(f"shipped: {p.shipped_dir()}")
    return 0


def _app(args: argparse.Namespace) -> int:
    from orchestra_tui.core.session import Session
    from orchestra_tui.tui import run_app

    session = Session(session_options(args))
    try:
        return run_app(session)
    finally:
        session.close_sync()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestra-tui", description=__doc__)
    parser.add_argument("--version", action="version", version=f"orchestra-tui {__version__}")
    add_engine_flags(parser)
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="answer one question headless")
    run.add_argument("question")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_engine_flags(run, inherit=True)
    run.set_defaults(handler=_run, is_async=True)

    chat = sub.add_parser("chat", help="chat with the policy and your own function tools (one turn per stdin line)")
    chat.add_argument("--functions", required=True, help="a TOML file declaring the tools (docs/FUNCTION_TOOLS.md)")
    chat.add_argument("--catalog", default=argparse.SUPPRESS, help="a shipped catalog name or a catalog TOML file")
    chat.add_argument("--profile", default=argparse.SUPPRESS, help="preference profile (default: default_profile in config.toml)")
    chat.add_argument("--model", default=argparse.SUPPRESS, help="a GGUF file to play the policy in-process (llama.cpp)")
    chat.add_argument("--base-url", default=argparse.SUPPRESS, help="an OpenAI-compatible server for the policy")
    chat.add_argument("--model-name", default=argparse.SUPPRESS, help="the model name to request from --base-url")
    chat.add_argument("--api-key-env", default=argparse.SUPPRESS, help="the environment variable holding the --base-url API key")
    chat.add_argument("--trajectory", default=argparse.SUPPRESS, help="write the trajectory here instead of the state folder")
    chat.add_argument("--no-expert", action="store_true", help="do not offer call_expert")
    chat.add_argument("--max-steps", type=int, default=10, help="policy replies per turn at most (default 10)")
    chat.add_argument("--unsafe-commands", action="store_true",
                      help="run declared commands WITHOUT a sandbox when bubblewrap is unavailable")
    chat.set_defaults(handler=_chat, is_async=True)

    prompt = sub.add_parser("prompt", help="print the exact messages and tools the orchestrator would receive")
    prompt.add_argument("--problem", required=True)
    prompt.add_argument("--docs", help="a JSON file: a list of document strings")
    prompt.add_argument("--code", help='a JSON file: a list of {"code", "output"} objects')
    prompt.add_argument("--variant", choices=VARIANTS, default=argparse.SUPPRESS,
                        help=f"orchestra prompt wording (default: {DEFAULT_VARIANT})")
    prompt.add_argument("--tokenizer", help="a GGUF file or tokenizer folder (default: the embedded model's)")
    prompt.set_defaults(handler=_prompt, is_async=True)

    index = sub.add_parser("index", help="local retrieval indexes")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    build = index_sub.add_parser("build", help="index a folder of text and markdown")
    build.add_argument("path")
    build.add_argument("--out", help="index folder (default: under the cache folder)")
    build.add_argument("--embedder", default="minilm", help="embedder preset (default: minilm)")
    build.set_defaults(handler=fleet.index_build, is_async=False)

    replay = sub.add_parser("replay", help="replay a saved trajectory")
    replay.add_argument("file")
    replay.add_argument("--print", action="store_true", help="print a text account instead of opening the app")
    replay.set_defaults(handler=saved.replay, is_async=False)

    export = sub.add_parser("export", help="write a trajectory in another format")
    export.add_argument("file")
    export.add_argument("--format", choices=["reference"], default="reference",
                        help="reference: the ToolOrchestra evaluation's per-question JSON")
    export.add_argument("--out", help="write <id>.json files into this folder (default: JSON lines on stdout)")
    export.set_defaults(handler=saved.export, is_async=False)

    fork = sub.add_parser("fork", help="continue a saved episode after a round under another profile")
    fork.add_argument("file")
    fork.add_argument("--at", type=int, required=True, help="the last recorded round to keep")
    fork.add_argument("--episode", type=int, help="which episode of the file (1-based; default: the last)")
    add_engine_flags(fork, inherit=True)
    fork.set_defaults(handler=saved.fork, is_async=True)

    diff = sub.add_parser("diff", help="where two runs diverge, and their tools, cost and latency side by side")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--episode", type=int, help="which episode of each file (1-based; default: the last)")
    diff.set_defaults(handler=saved.diff, is_async=False)

    evaluate = sub.add_parser("eval", help="run a question set (JSONL: id, question, answer) and summarize")
    evaluate.add_argument("questions")
    evaluate.add_argument("--out", required=True, help="folder for trajectories and the summary")
    evaluate.add_argument("--profiles", help="several profiles side by side, comma-separated")
    evaluate.add_argument("--concurrency", type=int, default=1, help="questions at once (default: 1)")
    evaluate.add_argument("--judge", help="an alias that judges answers that do not match exactly")
    evaluate.add_argument("--limit", type=int, help="only the first K questions")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    # Test and benchmark only: every backend becomes a scripted stand-in answering after this many seconds.
    evaluate.add_argument("--scripted-latency", type=float, help=argparse.SUPPRESS)
    add_engine_flags(evaluate, inherit=True)
    evaluate.set_defaults(handler=saved.evaluate, is_async=True)

    serve = sub.add_parser("serve", help="launch a model server (vLLM or llama.cpp) and keep it running")
    serve.add_argument("kind", choices=["vllm", "llamacpp"])
    serve.add_argument("--model", required=True, help="a checkpoint (vLLM) or a GGUF file (llama.cpp; Q8_0 = INT8)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int)
    serve.add_argument("--served-name", help="the model name clients ask for")
    serve.add_argument("--max-model-len", type=int, help="context length (default 40960, the reference's)")
    serve.add_argument("--gpu-memory-utilization", type=float)
    serve.add_argument("--n-ctx", type=int, help="llama.cpp context length")
    serve.add_argument("--n-gpu-layers", type=int, help="llama.cpp layers on the GPU (-1 = all; needs a CUDA build)")
    serve.add_argument("--log", help="write the server's output to this file")
    serve.set_defaults(handler=fleet.serve, is_async=False)

    retriever = sub.add_parser("retriever", help="the reference /retrieve protocol over a local index")
    retriever_sub = retriever.add_subparsers(dest="retriever_command", required=True)
    rserve = retriever_sub.add_parser("serve", help="serve an index built by `index build`")
    rserve.add_argument("--index", required=True)
    rserve.add_argument("--host", default="127.0.0.1")
    rserve.add_argument("--port", type=int, default=8765)
    rserve.add_argument("--api-key-env", help="require this environment variable's value as a bearer key")
    rserve.set_defaults(handler=fleet.retriever_serve, is_async=False)

    profiles = sub.add_parser("profiles", help="preference profiles")
    profiles_sub = profiles.add_subparsers(dest="profiles_command", required=True)
    profiles_sub.add_parser("list", help="every profile, shipped and yours (* = the default)")
    show_profile = profiles_sub.add_parser("show", help="a profile as TOML")
    show_profile.add_argument("name")
    validate = profiles_sub.add_parser("validate", help="check profile files")
    validate.add_argument("files", nargs="+")
    profiles_sub.add_parser("path", help="where your profiles go, and the shipped ones")
    profiles.set_defaults(handler=_profiles, is_async=False)

    paths = sub.add_parser("paths", help="where config, trajectories and caches live")
    paths.set_defaults(handler=fleet.paths, is_async=False)

    catalog = sub.add_parser("catalog", help="tool catalogs")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    show = catalog_sub.add_parser("show", help="which backend and model play each alias")
    show.add_argument("--catalog", default=argparse.SUPPRESS, help="a shipped catalog name or a catalog TOML "
                      "file (default: embedded)")
    show.add_argument("--no-probe", action="store_true", help="only check API keys, do not contact endpoints")
    show.set_defaults(handler=fleet.catalog_show, is_async=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    from orchestra_tui.core.catalog import CatalogError
    from orchestra_tui.core.ledger import PriceError
    from orchestra_tui.core.profiles import ProfileError
    from orchestra_tui.core.trajectory import TrajectoryError

    from orchestra_tui.services.sandbox import make_process_non_dumpable

    # Before anything reads a key: children (model-written code) cannot read our /proc/<pid>/environ.
    make_process_non_dumpable()
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", _app)
    try:
        if getattr(args, "is_async", False):
            return asyncio.run(handler(args))
        return handler(args)
    except (UsageError, CatalogError, PriceError, ProfileError, TrajectoryError, FileNotFoundError) as exc:
        print(f"orchestra-tui: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("orchestra-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `orchestra-tui … | head`: the reader left; no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141

"""Per-round policy latency with and without prefix reuse, on a ~4k-token orchestra prompt (SmolLM2 GGUF).

    python benchmarks/bench_prefix_reuse.py [--reps 2] [--rounds 3] [--tokens 4000] [--threads N] [--swap-off]

On a small machine shared with other jobs, `--threads 1` keeps the numbers steady (see bench_decode.py).

Each mode runs the same sequence of policy rounds, built by the engine's own code (`policy_context`,
`orchestrator_messages`, the FRAMES tool list once documents exist): every round one more search result is
appended, as the loop does. Modes, interleaved within each repetition:

- no reuse: the KV cache is emptied before every round (what a cache-less server pays);
- reuse: rounds back to back on one model;
- reuse, expert between: an expert call on the same model runs between rounds, as on the embedded default
  (the policy's prefix survives only through the KV swap);
- (--swap-off) the same with the swap disabled, which is what llama-cpp-python alone gives.

A second table needs no generation: a FRAMES episode at the embedded catalog's limits, and how much of each
round's prompt is a prefix of the previous one — what any prefix cache can reuse with the reference layout.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import (
    interleaved, isolate_folders, load_average, median, passages, print_machine, ratio, smollm2_path, table,
    verdict,
)

isolate_folders()

from orchestra_tui.backends.base import Sampling, complete  # noqa: E402
from orchestra_tui.backends.kv_swap import common_prefix  # noqa: E402
from orchestra_tui.backends.llamacpp import LlamaCppBackend  # noqa: E402
from orchestra_tui.core import prompts  # noqa: E402
from orchestra_tui.core.context import Evidence, PolicyLimits, policy_context  # noqa: E402
from orchestra_tui.core.toolset import load_tools, offered_tools  # noqa: E402

QUESTION = "Which file format does orchestra-tui use for trajectories, and what survives a crash?"
EXPERT_MESSAGES = [{"role": "user", "content": f"Question: {QUESTION}\nWrite a short search query."}]


def tokens_of(backend: LlamaCppBackend, messages, tools) -> list[int]:
    text = backend.render_prompt(messages, tools)
    return list(backend._loaded().llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


async def build_rounds(backend: LlamaCppBackend, docs: list[str], rounds: int, target: int):
    """The policy prompts of `rounds` consecutive rounds; the first has about `target` tokens."""
    limits = PolicyLimits.for_variant("frames")
    tools = offered_tools(load_tools(), have_documents=True, one_search=True)
    evidence, pool = Evidence(), list(docs)

    async def messages():
        context = await policy_context(backend.tokenizer, QUESTION, evidence, "frames", limits)
        return prompts.orchestrator_messages(QUESTION, context.text, "frames")

    while pool and len(tokens_of(backend, await messages(), tools)) < target:
        evidence.add_search_results([pool.pop(0)])
    out = [await messages()]
    for _ in range(rounds - 1):
        evidence.add_search_results([pool.pop(0)])  # one new result per round, appended (best last)
        out.append(await messages())
    return out, tools


def run_mode(backend, rounds, tools, sampling, *, reset_each: bool, expert: bool, swap: bool):
    shared = backend._loaded()
    capacity = shared.swap.capacity
    shared.swap.capacity = capacity if swap else 0

    def cold() -> None:
        shared.llama.reset()
        shared.swap.parked.clear()

    async def episode():
        cold()
        out = []
        for i, messages in enumerate(rounds):
            if reset_each:
                cold()
            if expert and i > 0:
                await complete(backend, EXPERT_MESSAGES, sampling=sampling)
            started = time.perf_counter()
            result = await complete(backend, messages, tools=tools, sampling=sampling)
            out.append((time.perf_counter() - started, result.usage.prompt_tokens, result.usage.cached_tokens or 0))
        return out

    try:
        return asyncio.run(episode())
    finally:
        shared.swap.capacity = capacity


async def layout_table(backend: LlamaCppBackend, docs: list[str]) -> list[list[str]]:
    """A FRAMES episode at the embedded limits: search, reasoning, search, search; reuse bound per round."""
    from orchestra_tui.core.catalog import load_catalog

    limits = load_catalog("embedded").policy.limits("frames")
    all_tools = load_tools()
    evidence, pool = Evidence(), list(docs)
    steps = [("start", 0, False), ("search +5 docs", 5, False), ("reasoning +code output", 0, True),
             ("search +5 docs", 5, False), ("search +5 docs", 5, False)]
    rows, previous = [], None
    for number, (step, new_docs, code) in enumerate(steps, 1):
        if new_docs:
            evidence.add_search_results([pool.pop(0) for _ in range(new_docs)])
        if code:
            evidence.add_code("print(sorted(formats))", "['json', 'jsonl']")
        tools = offered_tools(all_tools, have_documents=bool(evidence.documents), one_search=True)
        context = await policy_context(backend.tokenizer, QUESTION, evidence, "frames", limits)
        messages = prompts.orchestrator_messages(QUESTION, context.text, "frames")
        text = backend.render_prompt(messages, tools)
        ids = tokens_of(backend, messages, tools)
        shared = common_prefix(previous[0], ids) if previous else 0
        where = "-" if previous is None else _where(previous[1], text)
        rows.append([str(number), step, str(len(ids)), str(shared), str(len(ids) - shared),
                     f"{shared / len(ids):.0%}", where])
        previous = (ids, text)
    return rows


def _where(old_text: str, text: str) -> str:
    """Which part of the prompt the two rounds first differ in."""
    index = next((i for i, (a, b) in enumerate(zip(old_text, text)) if a != b), min(len(old_text), len(text)))
    user = text.find("<|im_start|>user")
    docs = text.find(prompts.DOCUMENTS_HEADER)
    if index < user:
        return "tool list (system message)"
    if docs < 0 or index < docs + len(prompts.DOCUMENTS_HEADER):
        return "problem / context start"
    old_docs = old_text.find(prompts.DOCUMENTS_HEADER)
    if old_docs >= 0 and text[docs:docs + 200] != old_text[old_docs:old_docs + 200]:
        return "documents head (truncation slid the window)"
    return "after the kept text (new documents or code inserted)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=4000, help="prompt size of the first round")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens generated per round")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores)")
    parser.add_argument("--swap-off", action="store_true", help="also run the expert mode with the swap off")
    args = parser.parse_args()

    print_machine("(shared with other jobs: compare ratios, not absolute times)")
    backend = LlamaCppBackend(smollm2_path(), n_ctx=8192, n_threads=args.threads, model_name="SmolLM2-135M")
    docs = passages(1000)
    docs += [f"(copy {n}) {d}" for n in range(2, 4) for d in docs]  # enough distinct documents for any run
    rounds, tools = asyncio.run(build_rounds(backend, docs, args.rounds, args.tokens))
    sampling = Sampling(temperature=0.0, max_tokens=args.max_tokens, seed=7)
    print(f"model SmolLM2-135M Q4_1, n_ctx 8192, threads {backend.n_threads}; {args.rounds} rounds, "
          f"{args.max_tokens} tokens generated per round, {args.reps} interleaved repetitions")

    modes = {
        "no reuse": dict(reset_each=True, expert=False, swap=True),
        "reuse": dict(reset_each=False, expert=False, swap=True),
        "reuse, expert between": dict(reset_each=False, expert=True, swap=True),
    }
    if args.swap_off:
        modes["expert between, swap off"] = dict(reset_each=False, expert=True, swap=False)
    results = interleaved(args.reps, {name: (lambda kw=kw: run_mode(backend, rounds, tools, sampling, **kw))
                                      for name, kw in modes.items()})

    base = [median([rep[i][0] for rep in results["no reuse"]]) for i in range(args.rounds)]
    rows, speedups = [], {}
    for name, reps in results.items():
        for i in range(args.rounds):
            seconds = median([rep[i][0] for rep in reps])
            prompt, cached = reps[-1][i][1], reps[-1][i][2]
            rows.append([name, str(i + 1), f"{seconds:.2f} s", str(prompt), str(cached), str(prompt - cached),
                         ratio(base[i], seconds)])
            if i > 0:
                speedups.setdefault(name, []).append(base[i] / seconds)
    print()
    print(table(["mode", "round", "median latency", "prompt tokens", "reused", "evaluated", "vs no reuse"], rows))
    print()
    for name, values in speedups.items():
        if name != "no reuse":
            print(f"{name}: rounds after the first are {median(values):.2f}x faster than without reuse "
                  f"(target >= 3x: {verdict(median(values) >= 3)})")

    print("\nWhat the reference prompt layout lets any prefix cache reuse (FRAMES at the embedded limits):")
    print(table(["round", "after", "prompt tokens", "shared with previous", "to evaluate", "reusable",
                 "first difference"], asyncio.run(layout_table(backend, docs))))
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()

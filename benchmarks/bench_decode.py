"""Decode speed through our llama.cpp backend against raw llama-cpp-python, and against the memory limit.

    python benchmarks/bench_decode.py [--reps 5] [--tokens 128] [--threads 1]

One llama.cpp thread by default: on a 2-core machine shared with other jobs, two decode threads need both
cores at every step, and whoever else runs stalls them; the rate then swings from 1 to 70 tokens/s within a
minute for ours and raw alike, and no ratio means anything. `--threads 1,2` measures both anyway.

Both sides load the same GGUF (SmolLM2-135M Q4_1) with the same context size and thread count, get the same
prompt tokens and the same sampler settings, and generate up to `--tokens` tokens; the rate counts tokens
after the first (so the prompt's evaluation is not in it). Ours goes through `LlamaCppBackend.stream`: a
worker thread, per-token piece decoding, an asyncio queue and `TextDelta`s. Raw is `Llama.generate` alone,
without even turning tokens into text: the strictest baseline. The two alternate in every repetition.

Medians of the rate (wall clock) and of the CPU time per token (every thread of the process, so ours pays
for its event loop too) are both given: on a machine shared with other jobs the wall-clock rate swings with
their load, while the CPU time per token moves much less.

The physical limit: decoding one token reads every weight once, so tokens/s cannot exceed memory
bandwidth / model size. Bandwidth is measured here with a numpy copy of a 256 MiB array (read + write).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from common import interleaved, isolate_folders, load_average, median, print_machine, smollm2_path, table, verdict

isolate_folders()

from orchestra_tui.backends.base import ChatResult, Sampling  # noqa: E402
from orchestra_tui.backends.llamacpp import LlamaCppBackend  # noqa: E402

MESSAGES = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper and a storm."}]
SEED = 11
TEMPERATURE = 0.8
N_CTX = 2048


def memory_bandwidth(reps: int = 5, mib: int = 256) -> float:
    """Bytes per second moved by copying a large array (each byte read once and written once)."""
    src = np.ones(mib * 2**20 // 8)
    dst = np.zeros_like(src)  # both touched before timing: no page faults in the measurement
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - started)
    return 2 * src.nbytes / median(times)


def ours(backend: LlamaCppBackend, max_tokens: int) -> tuple[float, float]:
    """(tokens/s after the first token, CPU ms per token after the first, all threads of the process)."""

    async def run() -> tuple[float, float]:
        sampling = Sampling(temperature=TEMPERATURE, max_tokens=max_tokens, seed=SEED)
        result, cpu0 = None, None
        async for item in backend.stream(MESSAGES, sampling=sampling):
            if cpu0 is None:
                cpu0 = time.process_time()
            if isinstance(item, ChatResult):
                result = item
        cpu = time.process_time() - cpu0
        assert result is not None and result.first_token_s is not None
        n = result.usage.completion_tokens - 1
        return n / (result.seconds - result.first_token_s), 1000 * cpu / n

    return asyncio.run(run())


def raw(llama, tokens: list[int], max_tokens: int) -> tuple[float, float]:
    import llama_cpp

    llama.reset()  # the prompt is evaluated again, before the first token: not in the numbers
    llama.set_seed(SEED)
    produced, first, cpu0 = 0, None, None
    for token in llama.generate(tokens, temp=TEMPERATURE, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        produced += 1
        if first is None:
            first, cpu0 = time.perf_counter(), time.process_time()
        if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token) or produced >= max_tokens:
            break
    n = produced - 1
    return n / (time.perf_counter() - first), 1000 * (time.process_time() - cpu0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", default="1", help="thread counts to compare, e.g. 1,2")
    args = parser.parse_args()

    import llama_cpp

    print_machine("(shared with other jobs: compare ratios, not absolute rates)")
    path = smollm2_path()
    size = path.stat().st_size
    variants, pairs = {}, []
    for threads in sorted({int(t) for t in args.threads.split(",")}):
        # Distinct n_ctx per thread count: the backend shares one model per (file, n_ctx), first caller's threads.
        backend = LlamaCppBackend(path, n_ctx=N_CTX + threads, n_threads=threads, model_name="SmolLM2-135M")
        prompt = backend.render_prompt(MESSAGES)
        plain = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX + threads, n_threads=threads, verbose=False)
        tokens = plain.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        variants[f"ours, {threads} thread(s)"] = lambda b=backend: ours(b, args.tokens)
        variants[f"raw, {threads} thread(s)"] = lambda p=plain, t=tokens: raw(p, t, args.tokens)
        pairs.append(threads)
    for fn in variants.values():
        fn()  # warm: weights paged in, first-call set-up done
    bandwidth = memory_bandwidth()
    results = interleaved(args.reps, variants)
    bandwidth = max(bandwidth, memory_bandwidth())  # before and after, as the machine's load moves
    bound = bandwidth / size

    def stat(name: str, index: int) -> float:
        return median([r[index] for r in results[name]])

    rows, worst_wall, worst_cpu = [], float("inf"), float("inf")
    for threads in pairs:
        a, b = f"ours, {threads} thread(s)", f"raw, {threads} thread(s)"
        wall, cpu = stat(a, 0) / stat(b, 0), stat(b, 1) / stat(a, 1)  # both: > 1 means ours is faster
        worst_wall, worst_cpu = min(worst_wall, wall), min(worst_cpu, cpu)
        rows.append([str(threads), f"{stat(a, 0):.1f}", f"{stat(b, 0):.1f}", f"{wall:.2f}x",
                     f"{stat(a, 1):.1f}", f"{stat(b, 1):.1f}", f"{cpu:.2f}x", f"{stat(a, 0) / bound:.1%}"])
    print(f"\nmodel file {size / 2**20:.1f} MiB; memory bandwidth (numpy copy) {bandwidth / 1e9:.2f} GB/s "
          f"-> at most {bound:.0f} tokens/s if decoding were memory-bound")
    print(table(["threads", "ours tok/s", "raw tok/s", "ours/raw", "ours CPU ms/tok", "raw CPU ms/tok",
                 "raw/ours CPU", "ours / bound"], rows))
    print(f"\nours vs raw, worst thread count: {worst_wall:.2f}x by wall-clock rate, {worst_cpu:.2f}x by CPU per "
          f"token (target >= 0.95x: {verdict(worst_wall >= 0.95)} / {verdict(worst_cpu >= 0.95)})")
    for name, values in results.items():
        print(f"  {name}: tok/s " + ", ".join(f"{v[0]:.1f}" for v in values))
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()

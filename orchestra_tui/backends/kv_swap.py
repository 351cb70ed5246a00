"""Parked KV caches for a llama.cpp model that several roles share (the policy and its experts).

llama-cpp-python reuses the longest common prefix between the tokens it evaluated last and the next prompt.
That is enough while one role calls a model back to back, but on the embedded default the policy and every
expert run on the same `Llama`, and each expert call between two policy rounds evicts the policy's prefix
(measured before this module: 5 of 1,004 policy prompt tokens reused per round).

So, before a call evaluates its prompt, `take_turn` parks the previous call's prompt if the new prompt would
discard most of it, and restores the parked cache that shares the longest prefix with the new prompt when
that beats the live one. Generated tokens are never parked: rounds are stateless, no later prompt holds
them. A cache is copied out and in with llama.cpp's per-sequence state API (sequence 0, the only one
llama-cpp-python uses): one memory copy of the cells, far cheaper than evaluating them again.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

# RAM for parked caches per shared model. SmolLM2-135M keeps 23 KiB per token (94 MB for 4k tokens), an
# 8B Qwen3 144 KiB (590 MB for 4k): 1 GiB holds the policy's prefix and an expert's on either.
DEFAULT_KV_SWAP_BYTES = 1 << 30
# Parking or restoring copies the whole cache once; below this many tokens re-evaluating is as cheap.
MIN_SWAP_TOKENS = 64
MAX_PARKED = 8  # each lookup scans them all; a session has a handful of distinct prompt shapes


def common_prefix(a: Any, b: Any) -> int:
    """Length of the longest common prefix of two token sequences (vectorised: 8k-token prompts, every call)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(diff[0]) if diff.size else n


@dataclass
class KvSnapshot:
    tokens: list[int]  # what the saved cache cells hold, position by position
    data: bytes  # llama_state_seq_get_data of sequence 0


class KvSwap:
    """Parked caches of one shared model, oldest first, bounded in bytes and in number."""

    def __init__(self, capacity_bytes: int = DEFAULT_KV_SWAP_BYTES) -> None:
        self.capacity = capacity_bytes
        self.parked: list[KvSnapshot] = []
        self.live_prompt = 0  # prompt tokens of the last call; the live cache holds them, then its output
        self.saves = 0
        self.restores = 0

    @property
    def size(self) -> int:
        return sum(len(s.data) for s in self.parked)

    def best(self, tokens: Any) -> tuple[KvSnapshot | None, int]:
        """The parked cache sharing the longest prefix with `tokens`, and that length."""
        best, length = None, 0
        for snapshot in self.parked:
            common = common_prefix(snapshot.tokens, tokens)
            if common > length:
                best, length = snapshot, common
        return best, length

    def put(self, snapshot: KvSnapshot) -> None:
        if len(snapshot.data) > self.capacity:
            return  # it would evict everything and still not fit
        # A newer cache of the same lineage (the policy one round later) supersedes the older one.
        self.parked = [old for old in self.parked if 2 * common_prefix(old.tokens, snapshot.tokens) < len(old.tokens)]
        self.parked.append(snapshot)
        while len(self.parked) > MAX_PARKED or self.size > self.capacity:
            self.parked.pop(0)


def park(llama: Any) -> KvSnapshot | None:
    """Copy the live cache out of the context (the context keeps it too)."""
    import llama_cpp

    ctx = llama._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    if size <= 0:
        return None
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
    if written <= 0:
        return None
    return KvSnapshot([int(t) for t in llama._input_ids], ctypes.string_at(buffer, written))


def restore(llama: Any, snapshot: KvSnapshot) -> bool:
    """Make `snapshot` the live cache; on failure leave an empty cache, never a half-written one."""
    import llama_cpp

    llama._ctx.kv_cache_clear()
    source = (ctypes.c_uint8 * len(snapshot.data)).from_buffer_copy(snapshot.data)
    if llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, source, len(snapshot.data), 0) != len(snapshot.data):
        llama._ctx.kv_cache_clear()
        llama.n_tokens = 0
        return False
    n = len(snapshot.tokens)
    llama.input_ids[:n] = snapshot.tokens
    llama.n_tokens = n
    # The context's logits belong to the previous call: `generate` must evaluate at least one token.
    llama._requires_eval = True
    return True


def take_turn(llama: Any, swap: KvSwap, tokens: list[int]) -> None:
    """Call before `llama.generate(tokens)`, under the model's lock."""
    previous, swap.live_prompt = min(swap.live_prompt, llama.n_tokens), len(tokens)
    if swap.capacity <= 0:
        return
    live_common = common_prefix(llama._input_ids, tokens)
    parked, parked_common = swap.best(tokens)
    # The same role one round later keeps most of its previous prompt: nothing is copied then.
    if previous >= MIN_SWAP_TOKENS and 2 * live_common < previous:
        # Drop the previous output first (the new prompt discards it anyway): a smaller copy.
        if llama.n_tokens > previous and llama._ctx.kv_cache_seq_rm(0, previous, -1):
            llama.n_tokens = previous
        if (snapshot := park(llama)) is not None:
            swap.put(snapshot)
            swap.saves += 1
    gain = parked_common - live_common
    # Restoring copies the whole parked cache. A memory copy is over ten times cheaper per token than
    # evaluating the token, so a gain of an eighth of the parked length pays for the copy.
    if parked is not None and gain >= MIN_SWAP_TOKENS and 8 * gain >= len(parked.tokens):
        if restore(llama, parked):
            swap.restores += 1

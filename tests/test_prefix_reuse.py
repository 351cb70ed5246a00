"""Prefix reuse in the llama.cpp backend: across policy rounds, and across experts that share the model.

The model tests run SmolLM2-135M for real and check counts, never times (benchmarks measure speed:
benchmarks/bench_prefix_reuse.py). The KV swap bookkeeping and the HTTP request flag are checked without
a model.
"""

from __future__ import annotations

import pytest

from orchestra_tui.backends.base import Sampling, complete
from orchestra_tui.backends import kv_swap
from orchestra_tui.backends.kv_swap import KvSnapshot, KvSwap, common_prefix, take_turn
from orchestra_tui.backends.llamacpp import LlamaCppBackend
from orchestra_tui.backends.openai_http import OpenAICompatBackend
from orchestra_tui.core import prompts
from orchestra_tui.core.toolset import load_tools

slow = pytest.mark.slow

DOCS = [
    "Orchestra-tui writes each episode to an append-only JSONL trajectory: one header line, then one line "
    "per event, flushed as it happens so a crash leaves every complete line readable.",
    "The policy sees a fresh two-message prompt each round: the system line, then the problem followed by "
    "the documents and code gathered so far, and the tool list.",
    "Experts are other models reached through aliases such as search-1 or answer-2; each alias has a price "
    "per million input and output tokens.",
]
QUESTION = "Which file format does orchestra-tui use for trajectories?"
GREEDY = Sampling(temperature=0.0, max_tokens=8, seed=1)


def policy_messages(docs: list[str]) -> list[dict[str, str]]:
    """The round's prompt exactly as the engine builds it (documents appended, best last)."""
    context = prompts.DOCUMENTS_HEADER + "".join(prompts.document_entry(i, d) for i, d in enumerate(docs, 1))
    return prompts.orchestrator_messages(QUESTION, context, "frames")


def expert_messages(docs: list[str]) -> list[dict[str, str]]:
    context = prompts.DOCUMENTS_HEADER + "".join(prompts.document_entry(i, d) for i, d in enumerate(docs, 1))
    return prompts.answerer_messages(context, QUESTION, "boxed", "frames")


@pytest.fixture(scope="module")
def tools():
    # Only `answer`: the whole reference list is ~1,000 tokens, which two slow cores evaluate for half a
    # minute per cold call; the layout (tools in the system message) is the same.
    return [t for t in load_tools() if t["function"]["name"] == "answer"]


@pytest.fixture(scope="module")
def model(smollm2_path):
    # A context size no other test module uses, so this module gets its own shared `Llama` and swap.
    return LlamaCppBackend(smollm2_path, n_ctx=3072, model_name="SmolLM2-135M-Instruct")


@pytest.fixture
def cold(model):
    """Each test starts from an empty cache and an empty swap."""
    shared = model._loaded()
    shared.llama.reset()
    shared.swap.parked.clear()
    return shared


def prompt_tokens(model: LlamaCppBackend, messages, tools) -> list[int]:
    text = model.render_prompt(messages, tools)
    return list(model._loaded().llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


@slow
async def test_second_round_reuses_the_shared_prefix(model, tools, cold):
    first = await complete(model, policy_messages(DOCS[:2]), tools=tools, sampling=GREEDY)
    second = await complete(model, policy_messages(DOCS), tools=tools, sampling=GREEDY)
    assert first.usage.cached_tokens == 0
    # The new document goes in before the closing instruction, so the reuse ends where the prompts part.
    shared = common_prefix(prompt_tokens(model, policy_messages(DOCS[:2]), tools),
                           prompt_tokens(model, policy_messages(DOCS), tools))
    assert second.usage.cached_tokens == shared
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens


@slow
async def test_policy_keeps_its_prefix_when_an_expert_ran_in_between(model, tools, cold):
    policy_1 = await complete(model, policy_messages(DOCS[:2]), tools=tools, sampling=GREEDY)
    expert = await complete(model, expert_messages(DOCS[:2]), sampling=GREEDY)
    policy_2 = await complete(model, policy_messages(DOCS), tools=tools, sampling=GREEDY)

    assert policy_1.usage.cached_tokens == 0
    # The expert's prompt starts with a different system message: it may reuse only the chat framing.
    assert 0 <= expert.usage.cached_tokens <= expert.usage.prompt_tokens
    assert expert.usage.cached_tokens < 8
    # Without the swap this was the expert's few framing tokens; with it, the whole shared prefix.
    shared = common_prefix(prompt_tokens(model, policy_messages(DOCS[:2]), tools),
                           prompt_tokens(model, policy_messages(DOCS), tools))
    assert policy_2.usage.cached_tokens == shared
    assert cold.swap.saves >= 1 and cold.swap.restores >= 1


@slow
async def test_an_expert_keeps_its_prefix_across_rounds(model, tools, cold):
    await complete(model, expert_messages(DOCS[:2]), sampling=GREEDY)
    await complete(model, policy_messages(DOCS), tools=tools, sampling=GREEDY)
    again = await complete(model, expert_messages(DOCS), sampling=GREEDY)
    assert 0 < again.usage.cached_tokens <= again.usage.prompt_tokens
    shared = common_prefix(prompt_tokens(model, expert_messages(DOCS[:2]), None),
                           prompt_tokens(model, expert_messages(DOCS), None))
    assert again.usage.cached_tokens == shared


@slow
async def test_a_restored_cache_generates_what_a_fresh_one_does(model, tools, cold):
    fresh = await complete(model, policy_messages(DOCS), tools=tools, sampling=GREEDY)
    await complete(model, expert_messages(DOCS), sampling=GREEDY)
    restored = await complete(model, policy_messages(DOCS), tools=tools, sampling=GREEDY)
    assert restored.usage.cached_tokens == restored.usage.prompt_tokens - 1  # one token re-evaluated
    assert restored.content == fresh.content


@slow
async def test_swap_off_reuses_only_the_live_cache(smollm2_path, tools):
    model = LlamaCppBackend(smollm2_path, n_ctx=2560, kv_swap_bytes=0)
    model._loaded().llama.reset()
    await complete(model, policy_messages(DOCS[:2]), tools=tools, sampling=GREEDY)
    expert = await complete(model, expert_messages(DOCS[:2]), sampling=GREEDY)
    policy = await complete(model, policy_messages(DOCS), tools=tools, sampling=GREEDY)
    assert policy.usage.cached_tokens <= expert.usage.prompt_tokens  # only the chat framing survived
    assert policy.usage.cached_tokens < 8


# --- without a model ------------------------------------------------------------------------------------


def snapshot(tokens: list[int], size: int = 10) -> KvSnapshot:
    return KvSnapshot(tokens, bytes(size))


def test_common_prefix():
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2, 3], [1, 2, 3]) == 3
    assert common_prefix([1, 2, 3], [1, 2]) == 2
    assert common_prefix([1, 2, 3], [1, 9, 3]) == 1


def test_swap_finds_the_longest_prefix():
    swap = KvSwap(1000)
    policy, expert = snapshot([1, 2, 3, 4]), snapshot([7, 8])
    swap.put(policy)
    swap.put(expert)
    assert swap.best([1, 2, 3, 9]) == (policy, 3)
    assert swap.best([7, 8, 9]) == (expert, 2)
    assert swap.best([5]) == (None, 0)


def test_a_newer_cache_of_the_same_prompt_supersedes_the_older():
    swap = KvSwap(1000)
    swap.put(snapshot([1, 2, 3, 4]))
    swap.put(snapshot([7, 8, 9]))
    swap.put(snapshot([1, 2, 3, 5, 6]))  # the policy one round later
    assert [s.tokens for s in swap.parked] == [[7, 8, 9], [1, 2, 3, 5, 6]]


def test_swap_is_bounded_in_bytes():
    swap = KvSwap(25)
    swap.put(snapshot([1], 10))
    swap.put(snapshot([2], 10))
    swap.put(snapshot([3], 10))  # evicts the oldest
    assert [s.tokens for s in swap.parked] == [[2], [3]]
    swap.put(snapshot([4], 26))  # larger than the whole swap: not kept, nothing evicted for it
    assert [s.tokens for s in swap.parked] == [[2], [3]] and swap.size == 20


class FakeContext:
    def kv_cache_seq_rm(self, seq_id: int, p0: int, p1: int) -> bool:
        return True


class FakeLlama:
    """What `take_turn` reads of a `Llama`: the evaluated tokens and their count."""

    def __init__(self) -> None:
        self.input_ids: list[int] = []
        self.n_tokens = 0
        self._ctx = FakeContext()

    @property
    def _input_ids(self) -> list[int]:
        return self.input_ids[: self.n_tokens]

    def run(self, swap: KvSwap, prompt: list[int], output: list[int]) -> None:
        """One call: take the turn, then evaluate the rest of the prompt and generate."""
        take_turn(self, swap, prompt)
        self.input_ids = prompt + output
        self.n_tokens = len(self.input_ids)


@pytest.fixture
def fake_copies(monkeypatch):
    """park/restore without llama.cpp: a snapshot is the token list."""
    def park(llama):
        return KvSnapshot(list(llama._input_ids), bytes(len(llama._input_ids)))

    def restore(llama, snapshot):
        llama.input_ids = list(snapshot.tokens)
        llama.n_tokens = len(snapshot.tokens)
        return True

    monkeypatch.setattr(kv_swap, "park", park)
    monkeypatch.setattr(kv_swap, "restore", restore)


POLICY_1 = list(range(1000, 1300))
POLICY_2 = POLICY_1[:280] + list(range(5000, 5040))  # the next round: documents added before the tail
EXPERT = list(range(9000, 9100))


def test_the_policy_gets_its_prefix_back_after_an_expert(fake_copies):
    llama, swap = FakeLlama(), KvSwap(10**6)
    llama.run(swap, POLICY_1, [7] * 50)
    llama.run(swap, EXPERT, [8] * 50)
    assert [s.tokens for s in swap.parked] == [POLICY_1]  # parked without its output
    take_turn(llama, swap, POLICY_2)
    assert llama._input_ids == POLICY_1 and swap.restores == 1
    assert [s.tokens for s in swap.parked] == [POLICY_1, EXPERT]


def test_the_same_role_next_round_copies_nothing(fake_copies):
    llama, swap = FakeLlama(), KvSwap(10**6)
    llama.run(swap, POLICY_1, [7] * 400)  # a long output is not a reason to park
    llama.run(swap, POLICY_2, [7] * 50)
    assert swap.saves == 0 and swap.restores == 0


def test_short_prompts_are_not_worth_a_copy(fake_copies):
    llama, swap = FakeLlama(), KvSwap(10**6)
    llama.run(swap, EXPERT[:40], [8] * 200)
    llama.run(swap, POLICY_1, [7] * 10)
    assert swap.saves == 0


def test_swap_off_copies_nothing(fake_copies):
    llama, swap = FakeLlama(), KvSwap(0)
    llama.run(swap, POLICY_1, [7] * 50)
    llama.run(swap, EXPERT, [8] * 50)
    llama.run(swap, POLICY_2, [7] * 50)
    assert swap.saves == 0 and swap.restores == 0 and not swap.parked


def test_http_requests_ask_llama_cpp_servers_to_keep_the_prompt():
    sampling = Sampling(max_tokens=5)
    default = OpenAICompatBackend("http://h/v1", "m").request_body([], tools=None, sampling=sampling)
    assert default["cache_prompt"] is True
    # OpenAI rejects parameters it does not know.
    openai = OpenAICompatBackend("http://h/v1", "m", param_style="openai").request_body(
        [], tools=None, sampling=sampling)
    assert "cache_prompt" not in openai
    # A server that objects can be told nothing, like any other key.
    off = Sampling(max_tokens=5, extra={"cache_prompt": None})
    assert "cache_prompt" not in OpenAICompatBackend("http://h/v1", "m").request_body([], tools=None, sampling=off)

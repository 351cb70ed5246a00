"""Chat backends: one interface (`base.ChatBackend`) for the policy and every expert.

- `llamacpp`: any GGUF in process (llama-cpp-python), rendered with the GGUF's own chat template.
- `openai_http`: OpenAI-compatible servers (vLLM, llama.cpp, Ollama, OpenAI) over streamed HTTP.
- `embedded`: where the small SmolLM2 GGUF shipped on the package registry lives.
- `hermes`: the `<think>` / `<tool_call>` text format; `tool_grammar`: a GBNF that forces one valid call.
- `factory.make_backend(spec)`: a backend from a profile dict.

Modules are imported on demand; importing this package loads neither llama.cpp nor httpx.
"""

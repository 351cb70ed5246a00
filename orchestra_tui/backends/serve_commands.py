"""Command lines for the model servers orchestra-tui can launch: vLLM and llama-cpp-python's server.

Pure functions, no processes: the launcher (`launcher.py`) runs what these return. Every vLLM flag the
project uses lives here, so that matching the reference serving setup is a one-file review.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Orchestrator-8B is a Qwen3-8B fine-tune; the reference evaluation served it with a 40960-token window.
REFERENCE_CONTEXT = 40960

# vLLM on one 24 GB card (RTX 4090 / A10-class), 8B model in bf16:
# - weights: 8.2 B parameters x 2 bytes ~ 15.3 GiB;
# - KV cache: Qwen3-8B keeps 36 layers x 8 KV heads x 128 dims x (K and V) x 2 bytes = 144 KiB per token,
#   so one full 40960-token request needs ~5.6 GiB;
# - 0.92 of 24 GiB is ~22 GiB, which leaves ~6.7 GiB after the weights for the KV cache and activations,
#   and ~1.9 GiB for the CUDA context and a desktop session on the same card.
# That holds one reference-length request, with prefix caching sharing the repeated system prompt and tool
# list across rounds and experts. If vLLM reports that the KV cache cannot hold max_model_len on a given
# card, pass `extra=("--kv-cache-dtype", "fp8")` (halves the KV size on Ada/Hopper) or a smaller window.
VLLM_GPU_MEMORY_UTILIZATION = 0.92

# llama.cpp allocates the whole KV cache up front: 40960 tokens of an 8B model take ~5.6 GiB (f16) next to
# ~8.1 GiB of Q8_0 weights, which fits a 24 GB card fully offloaded, or system RAM on the CPU path.
LLAMACPP_CONTEXT = REFERENCE_CONTEXT


def vllm_command(
    model: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    served_name: str | None = None,
    max_model_len: int = REFERENCE_CONTEXT,
    gpu_memory_utilization: float = VLLM_GPU_MEMORY_UTILIZATION,
    extra: Sequence[str] = (),
) -> list[str]:
    """`vllm serve` as the reference ran it, plus prefix caching and 24 GB-card settings.

    Auto tool choice with the hermes parser is how the reference served the policy (ORCHESTRATOR.md §1):
    the checkpoint's own chat template, no reasoning parser, so `<think>` text stays in the content. The
    model's generation_config defaults are left on, as in the reference.
    """
    command = ["vllm", "serve", model]
    if served_name:
        # Clients then ask for this name (e.g. "nvidia/Orchestrator-8B") instead of a local folder path.
        command += ["--served-model-name", served_name]
    command += [
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        # Every round re-sends the same system prompt and tool list; cached prefixes skip their prefill.
        "--enable-prefix-caching",
        # ...and usage then reports `prompt_tokens_details.cached_tokens`: the per-round "reused" count.
        "--enable-prompt-tokens-details",
        "--max-model-len",
        str(max_model_len),
        "--gpu-memory-utilization",
        str(gpu_memory_utilization),
        "--host",
        host,
        "--port",
        str(port),
    ]
    return command + list(extra)


def llamacpp_command(
    gguf: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    n_ctx: int = LLAMACPP_CONTEXT,
    n_gpu_layers: int = 0,
    model_alias: str | None = None,
    n_threads: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """llama-cpp-python's OpenAI-compatible server (`pip install "llama-cpp-python[server]"`).

    A Q8_0 GGUF is the INT8 path. `n_gpu_layers=-1` offloads every layer, which needs a CUDA build of
    llama-cpp-python; the CPU build accepts the flag and ignores it. The server runs in the same Python
    environment as the app, so the installed llama-cpp-python is the one that serves.
    """
    command = [sys.executable, "-m", "llama_cpp.server", "--model", gguf]
    if model_alias:
        command += ["--model_alias", model_alias]
    command += ["--n_ctx", str(n_ctx), "--n_gpu_layers", str(n_gpu_layers)]
    if n_threads is not None:
        command += ["--n_threads", str(n_threads)]
    command += ["--host", host, "--port", str(port)]
    return command + list(extra)

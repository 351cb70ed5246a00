"""Shared test set-up. Fixtures live in small plugin modules beside this file."""

import os
import tempfile

# Tests never touch the user's real config, state or cache, and never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Nor the developer's own keyring: a key stored there would change what "no key" tests see.
os.environ["ORCHESTRA_TUI_KEYRING"] = "0"
# Never the user's real folders: config, state and cache live in one temporary folder per test run.
_scratch = tempfile.mkdtemp(prefix="orchestra-tests-")
for _name in ("CONFIG", "STATE", "CACHE"):
    os.environ.setdefault(f"ORCHESTRA_TUI_{_name}_DIR", os.path.join(_scratch, _name.lower()))

pytest_plugins = ["fixtures_backends", "fixtures_services", "fixtures_tui"]

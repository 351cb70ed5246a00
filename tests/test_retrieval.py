"""The local Faiss index and retriever, built with the real MiniLM embedder over a tiny corpus."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from orchestra_tui.services import retrieval
from orchestra_tui.services.corpus import read_folder, read_jsonl
from orchestra_tui.services.retrieval import (
    LocalIndex,
    LocalRetriever,
    RetrievalIndexError,
    Retriever,
    build_index_from_folder,
    default_index,
)


@pytest.fixture
def built(tiny_corpus, minilm, tmp_path):
    return LocalIndex.build(read_folder(tiny_corpus), minilm, tmp_path / "index")


def test_build_writes_the_three_files(built, tiny_corpus):
    names = sorted(p.name for p in built.directory.iterdir())
    assert names == ["corpus.jsonl", "index.faiss", "meta.json"]
    meta = json.loads((built.directory / "meta.json").read_text(encoding="utf-8"))
    assert meta["embedder"] == "minilm" and meta["embedder_spec"] == "minilm"
    assert (meta["dim"], meta["count"], meta["format"]) == (384, 4, retrieval.FORMAT_VERSION)
    assert len(meta["corpus_sha256"]) == 64
    assert read_jsonl(built.directory / "corpus.jsonl") == read_folder(tiny_corpus)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Which planet has rings of ice?", "astronomy.md#1"),
        ("How long should dough rise before baking?", "kitchen/bread.txt#1"),
        ("What happens when magma reaches the surface?", "geology/volcanoes.rst#1"),
        ("Sicilian Defence chess opening", "sports/chess.markdown#1"),
    ],
)
def test_reloaded_index_finds_the_right_passage_first(built, query, expected):
    reloaded = LocalIndex.load(built.directory)  # re-creates the embedder from meta.json
    results = reloaded.search(query, topk=10)
    assert [r["id"] for r in results][0] == expected
    assert len(results) == 4  # topk larger than the corpus returns the whole corpus
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert set(results[0]) == {"id", "content", "score"}
    assert results == built.search(query, topk=10)


def test_topk_limits_the_results(built):
    assert len(built.search("volcano", topk=2)) == 2
    assert built.search("volcano", topk=0) == []


async def test_local_retriever_equals_search(built):
    retriever = LocalRetriever(built)
    assert isinstance(retriever, Retriever)
    queries = ["rings around a planet", "bread oven", "lava and ash"]
    # Concurrent calls are serialised by the retriever's lock and must not mix results up.
    answers = await asyncio.gather(*(retriever.retrieve(q, 3) for q in queries))
    assert answers == [built.search(q, 3) for q in queries]


def test_empty_corpus_gives_an_index_that_finds_nothing(minilm, tmp_path):
    index = LocalIndex.build([], minilm, tmp_path / "empty")
    assert LocalIndex.load(tmp_path / "empty", minilm).search("anything", 5) == []
    assert len(index) == 0


class TinyEmbedder:
    """An embedder of another dimension, to pair with an index it does not match."""

    name = "tiny"
    dim = 8

    def embed_documents(self, texts):
        return np.eye(len(texts), self.dim, dtype=np.float32)

    embed_queries = embed_documents


def test_dimension_mismatch_is_a_one_line_error_naming_the_folder(built):
    with pytest.raises(RetrievalIndexError) as caught:
        LocalIndex.load(built.directory, TinyEmbedder())
    message = str(caught.value)
    assert "\n" not in message
    assert str(built.directory) in message
    assert "384" in message and "8-dim" in message


def test_a_folder_without_meta_is_not_an_index(tmp_path):
    with pytest.raises(RetrievalIndexError, match="meta.json"):
        LocalIndex.load(tmp_path)


def test_build_index_from_folder_reports_a_summary(tiny_corpus, tmp_path, capsys):
    summary = build_index_from_folder(tiny_corpus, tmp_path / "out", progress=True)
    assert summary == {
        "index": str(tmp_path / "out"),
        "embedder": "minilm",
        "files": 4,
        "passages": 4,
        "dim": 384,
        "seconds": summary["seconds"],
    }
    assert summary["seconds"] >= 0
    json.dumps(summary)  # the CLI prints it as JSON
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "4/4" in captured.err  # the tqdm bar, on stderr
    assert LocalIndex.load(tmp_path / "out").search("magma", 1)[0]["id"] == "geology/volcanoes.rst#1"


def test_build_index_from_folder_refuses_a_folder_without_text(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(RetrievalIndexError, match="no text"):
        build_index_from_folder(tmp_path / "src", tmp_path / "out", progress=False)


def test_default_index_is_built_once_then_reused(tiny_corpus, minilm, tmp_path, monkeypatch):
    builds = []
    real_build = LocalIndex.build.__func__

    def counting_build(cls, *args, **kwargs):
        builds.append(args)
        return real_build(cls, *args, **kwargs)

    monkeypatch.setattr(LocalIndex, "build", classmethod(counting_build))
    cache = tmp_path / "cache"

    first = default_index(cache, tiny_corpus, embedder=minilm)
    assert len(builds) == 1
    assert first.directory.parent == cache / "indexes"
    assert sorted(p.name for p in (cache / "indexes").iterdir()) == [first.directory.name]  # no leftovers
    meta_mtime = (first.directory / "meta.json").stat().st_mtime_ns

    second = default_index(cache, tiny_corpus, embedder=minilm)
    assert len(builds) == 1
    assert second.directory == first.directory
    assert (second.directory / "meta.json").stat().st_mtime_ns == meta_mtime
    assert second.search("rings", 1) == first.search("rings", 1)

    # Editing the corpus gives a new index; the new passage is found.
    (tiny_corpus / "astronomy.md").write_text("Jupiter is the largest planet and has a Great Red Spot.\n")
    third = default_index(cache, tiny_corpus, embedder=minilm)
    assert len(builds) == 2
    assert third.directory != first.directory
    assert "Great Red Spot" in third.search("largest planet storm", 1)[0]["content"]


def test_default_index_rebuilds_over_an_interrupted_build(tiny_corpus, minilm, tmp_path):
    first = default_index(tmp_path, tiny_corpus, embedder=minilm)
    (first.directory / "meta.json").unlink()  # as if the process died before finishing
    again = default_index(tmp_path, tiny_corpus, embedder=minilm)
    assert again.directory == first.directory
    assert (again.directory / "meta.json").is_file()

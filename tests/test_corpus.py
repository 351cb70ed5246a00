"""Splitting text folders into passages, and the reference JSONL corpus format."""

from __future__ import annotations

import json

import pytest

from orchestra_tui.services.corpus import (
    folder_fingerprint,
    read_folder,
    read_jsonl,
    split_passages,
    write_jsonl,
)


def words(n: int, word: str = "lorem") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def test_short_paragraphs_merge_into_one_passage():
    assert split_passages("First paragraph.\n\nSecond one.\n") == ["First paragraph.\n\nSecond one."]


def test_paragraphs_that_do_not_fit_start_a_new_passage():
    a, b, c = words(60, "a"), words(60, "b"), words(60, "c")
    limit = len(a) + 2 + len(b)  # room for exactly two of them
    passages = split_passages(f"{a}\n\n{b}\n\n{c}", max_chars=limit)
    assert passages == [f"{a}\n\n{b}", c]


def test_no_passage_exceeds_the_limit_and_no_word_is_cut():
    text = "\n\n".join(words(n, "w") for n in (10, 400, 3, 250))
    passages = split_passages(text, max_chars=1200)
    assert all(len(p) <= 1200 for p in passages)
    assert len(passages) > 2
    # Every word of the input is still whole, in order.
    assert " ".join(p for p in passages).split() == text.split()


def test_a_word_longer_than_the_limit_is_kept_whole():
    giant = "x" * 50
    assert split_passages(f"tiny {giant} end", max_chars=20) == ["tiny", giant, "end"]


def test_blank_lines_with_spaces_separate_paragraphs_and_crlf_is_normalised():
    passages = split_passages("one\r\n  \r\ntwo", max_chars=5)
    assert passages == ["one", "two"]


@pytest.mark.parametrize(
    "heading",
    ["# Title", "## Part two", "Title\n=====", "Section\n-------", "=====\nTitle\n====="],
)
def test_a_heading_stays_with_the_paragraph_after_it(heading):
    before, after = words(100, "p"), words(100, "q")
    limit = len(before) + 2 + len(heading) + 10  # the heading alone would still fit after `before`
    passages = split_passages(f"{before}\n\n{heading}\n\n{after}", max_chars=limit)
    assert passages == [before, f"{heading}\n\n{after}"]


def test_a_plain_short_line_is_not_a_heading():
    before, line, after = words(100, "p"), "Just a line.", words(100, "q")
    passages = split_passages(f"{before}\n\n{line}\n\n{after}", max_chars=len(before) + 2 + len(line) + 10)
    assert passages == [f"{before}\n\n{line}", after]


def test_a_long_section_is_cut_with_its_heading_at_the_start():
    passages = split_passages(f"# Heading\n\n{words(300, 's')}", max_chars=1200)
    assert passages[0].startswith("# Heading\n\ns0 ")
    assert all(len(p) <= 1200 for p in passages)


def test_empty_text_has_no_passages():
    assert split_passages(" \n\n\t\n") == []


def test_read_folder_reads_text_files_recursively_with_ids(tiny_corpus):
    passages = read_folder(tiny_corpus)
    ids = [p["id"] for p in passages]
    assert ids == ["astronomy.md#1", "geology/volcanoes.rst#1", "kitchen/bread.txt#1", "sports/chess.markdown#1"]
    assert passages[0]["content"].startswith("# Saturn\n\nSaturn is the sixth planet")


def test_passage_numbers_count_within_a_file(tmp_path):
    (tmp_path / "long.md").write_text("\n\n".join(words(150, "z") for _ in range(3)), encoding="utf-8")
    assert [p["id"] for p in read_folder(tmp_path)] == ["long.md#1", "long.md#2", "long.md#3"]


def test_read_folder_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_folder(tmp_path / "nothing")


def test_fingerprint_changes_when_a_file_changes(tiny_corpus):
    before = folder_fingerprint(tiny_corpus)
    assert folder_fingerprint(tiny_corpus) == before
    (tiny_corpus / "script.py").write_text("ignored either way", encoding="utf-8")
    assert folder_fingerprint(tiny_corpus) == before
    (tiny_corpus / "astronomy.md").write_text("Jupiter instead.", encoding="utf-8")
    assert folder_fingerprint(tiny_corpus) != before


def test_jsonl_round_trip_and_contents_field(tmp_path):
    path = tmp_path / "corpus.jsonl"
    rows = [{"id": "a", "content": "Ünïcode text"}, {"id": "b", "content": "two\nlines"}]
    assert write_jsonl(rows, path) == 2
    assert read_jsonl(path) == rows
    assert "Ünïcode" in path.read_text(encoding="utf-8")

    reference = tmp_path / "reference.jsonl"
    reference.write_text(json.dumps({"id": 7, "contents": "\"Title\"\nBody"}) + "\n\n", encoding="utf-8")
    assert read_jsonl(reference) == [{"id": "7", "content": "\"Title\"\nBody"}]


@pytest.mark.parametrize("line", ['{"content": "no id"}', '{"id": 1}', "not json", "[1, 2]"])
def test_bad_jsonl_rows_name_the_line(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "content": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2:"):
        read_jsonl(path)

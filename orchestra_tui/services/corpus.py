"""Corpora for the local retriever: text folders split into passages, and the reference JSONL format.

A passage is `{"id": str, "content": str}`. Folder passages are named `<relative path>#<n>` (n from 1)
so a document shown to the user points back at its file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst"})
MAX_PASSAGE_CHARS = 1200

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_ATX_HEADING = re.compile(r"^#{1,6}(\s|$)")
# A reStructuredText adornment or a Markdown setext underline: one punctuation character repeated.
_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}\s*$")
_WORD = re.compile(r"\S+")


def iter_text_files(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Text files under `root`, recursively, in a stable order; hidden files and folders are skipped."""
    root = Path(root)
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in TEXT_SUFFIXES:
                yield Path(folder) / name


def read_folder(root: str | os.PathLike[str], max_chars: int = MAX_PASSAGE_CHARS) -> list[dict[str, str]]:
    """All passages of all text files under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no corpus folder at {root}")
    passages: list[dict[str, str]] = []
    for path in iter_text_files(root):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, content in enumerate(split_passages(text, max_chars), start=1):
            passages.append({"id": f"{rel}#{n}", "content": content})
    return passages


def folder_fingerprint(root: str | os.PathLike[str]) -> str:
    """A SHA-256 over the names and bytes of the corpus files: any edit, addition or removal changes it."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in iter_text_files(root):
        data = path.read_bytes()
        rel = path.relative_to(root).as_posix().encode("utf-8")
        # Lengths make the stream unambiguous (no two different folders hash the same bytes).
        digest.update(b"%d:%s%d:" % (len(rel), rel, len(data)))
        digest.update(data)
    return digest.hexdigest()


def passages_fingerprint(passages: Iterable[dict[str, str]]) -> str:
    """A SHA-256 over passage ids and contents, stored in an index's meta to identify its corpus."""
    digest = hashlib.sha256()
    for passage in passages:
        for part in (passage["id"], passage["content"]):
            raw = part.encode("utf-8")
            digest.update(b"%d:" % len(raw))
            digest.update(raw)
    return digest.hexdigest()


def split_passages(text: str, max_chars: int = MAX_PASSAGE_CHARS) -> list[str]:
    """Split a document into passages of at most `max_chars` characters.

    Paragraphs (separated by blank lines) are merged while they fit. A heading is kept with the paragraph
    after it, so no passage ends on a bare heading. A paragraph too long to fit is cut at whitespace; a
    single word longer than `max_chars` is kept whole rather than cut.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [p.strip("\n") for p in _BLANK_LINE.split(text)]
    paragraphs = [p for p in paragraphs if p.strip()]

    passages: list[str] = []
    current = ""
    for block in _attach_headings(paragraphs):
        candidate = f"{current}\n\n{block}" if current else block
        if len(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            passages.append(current)
        pieces = _cut_at_words(block, max_chars)
        passages.extend(pieces[:-1])
        current = pieces[-1]
    if current:
        passages.append(current)
    return passages


def _attach_headings(paragraphs: list[str]) -> Iterator[str]:
    """Join each heading-only paragraph to the paragraph that follows it."""
    pending: list[str] = []
    for paragraph in paragraphs:
        pending.append(paragraph)
        if not _is_heading(paragraph):
            yield "\n\n".join(pending)
            pending = []
    if pending:  # a document that ends on a heading keeps it rather than dropping text
        yield "\n\n".join(pending)


def _is_heading(paragraph: str) -> bool:
    lines = [line.strip() for line in paragraph.split("\n") if line.strip()]
    if not lines:
        return False
    if all(_ATX_HEADING.match(line) for line in lines):
        return True
    # Title + underline (setext / reST), or overline + title + underline (reST).
    if len(lines) == 2 and _ADORNMENT.match(lines[1]) and not _ADORNMENT.match(lines[0]):
        return True
    return len(lines) == 3 and bool(_ADORNMENT.match(lines[0])) and bool(_ADORNMENT.match(lines[2]))


def _cut_at_words(block: str, max_chars: int) -> list[str]:
    """Cut a long block into pieces of at most `max_chars`, only ever between words."""
    pieces: list[str] = []
    start = None  # where the current piece begins
    end = 0  # where its last word ends
    for word in _WORD.finditer(block):
        if start is None:
            start = word.start()
        elif word.end() - start > max_chars:
            pieces.append(block[start:end])
            start = word.start()
        end = word.end()
    if start is not None:
        pieces.append(block[start:end])
    return pieces


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Passages from a reference-format corpus: one JSON object per line with `id` and `content`
    (or `contents`, as FlashRAG-style corpora name it)."""
    passages: list[dict[str, str]] = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
            content = row.get("content", row.get("contents")) if isinstance(row, dict) else None
            if not isinstance(content, str) or "id" not in row:
                raise ValueError(f"{path}:{number}: a corpus row needs 'id' and 'content' (or 'contents')")
            passages.append({"id": str(row["id"]), "content": content})
    return passages


def write_jsonl(passages: Iterable[dict[str, str]], path: str | os.PathLike[str]) -> int:
    """Write passages as reference-format JSONL; returns the number of rows."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for passage in passages:
            out.write(json.dumps({"id": passage["id"], "content": passage["content"]}, ensure_ascii=False))
            out.write("\n")
            count += 1
    return count

"""The training side in bounded parts, so that one big file feeds every worker and no worker
ever holds more than about ``chunk_bytes`` of text (or its n-grams).

Input: :class:`contamination.sources.DocSource` files. Output: :class:`Part` byte ranges and,
per part, its documents (:func:`part_texts`).

Text and JSONL files are cut into byte ranges of about ``chunk_bytes`` that end right after:

- JSONL, and text read by line: a ``\\n`` (never inside ``\\r\\n``);
- text read by paragraph: a whole run of two or more ``\\n``: ``str.split("\\n\\n")`` of the
  parts gives the same non-blank paragraphs as of the whole file (up to a leading newline,
  which no word contains);
- a whole text file as one document: ASCII whitespace (never inside a word or a UTF-8
  sequence, and ``str.lower``'s final-sigma rule does not look across it). Such a part's
  n-grams continue the document: its hasher starts from the words before it
  (:func:`text_before`), and long parts are hashed in pieces the same way.

A file with no such place after a nominal cut is read to its end as one part. Parquet and Arrow
files (shards, already bounded by ``output.shard_docs``) are one part each.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from contamination.normalize import words
from contamination.sources import (
    ContaminationInputError,
    DocSource,
    iter_docs,
    jsonl_records,
    split_text,
)
from foundation import storage
from foundation.textfiles import json_lines

_WS = rb"[ \t\n\r\x0b\x0c]"
_CUTS = {"line": re.compile(rb"\n"), "paragraph": re.compile(rb"\n\n+"), "file": re.compile(_WS)}
_WS_STR = re.compile(_WS.decode())
PIECE_CHARS = 1 << 20
"""A whole-file document is hashed in pieces of about this many characters."""


@dataclass(frozen=True)
class Part:
    """Bytes ``[start, end)`` of the ``file``-th source (``end`` -1: the whole file, uncut)."""

    file: int
    src: DocSource
    start: int = 0
    end: int = -1

    @property
    def whole_doc(self) -> bool:
        """This part is a piece of one document (a text file read as a whole)."""
        return self.src.kind == "text" and self.src.text_docs == "file"


def _pattern(src: DocSource) -> re.Pattern[bytes] | None:
    if src.kind == "jsonl":
        return _CUTS["line"]
    return _CUTS[src.text_docs] if src.kind == "text" else None


def _next_cut(f, pos: int, size: int, pattern: re.Pattern[bytes]) -> int:
    """The first place at or after ``pos`` where a part may end (``size`` if none)."""
    start, window = max(0, pos - 2), 1 << 16  # 2 bytes back: a paragraph run may start there
    while start < size:
        buf = f.read_at(min(window, size - start), start)
        at_end = start + len(buf) >= size
        for m in pattern.finditer(buf):
            # A match that touches the end of the window may go on: read a larger one.
            if start + m.end() >= pos and (m.end() < len(buf) or at_end):
                return start + m.end()
        if at_end:
            break
        window *= 4
    return size


def plan_parts(sources: tuple[DocSource, ...], chunk_bytes: int) -> list[Part]:
    """Every source's parts, in file order."""
    parts: list[Part] = []
    for i, src in enumerate(sources):
        pattern = _pattern(src)
        if pattern is None:
            parts.append(Part(i, src))
            continue
        size = storage.size(src.path)
        fs, p = storage.resolve(src.path)
        with fs.open_input_file(p) as f:
            start = 0
            while True:
                end = (
                    size
                    if size - start <= chunk_bytes
                    else _next_cut(f, start + chunk_bytes, size, pattern)
                )
                parts.append(Part(i, src, start, end))
                start = end
                if start >= size:
                    break
    return parts


def _read(part: Part, start: int, end: int) -> str:
    fs, p = storage.resolve(part.src.path)
    with fs.open_input_file(p) as f:
        data = f.read_at(end - start, start)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ContaminationInputError(
            f"{part.src.path}: not UTF-8 text (byte {start + e.start}: {e.reason})"
        ) from e


def text_before(part: Part, count: int) -> str:
    """Text just before ``part`` holding at least ``count`` words (or the file's start)."""
    window = 4096
    while True:
        lo = max(0, part.start - window)
        text = _read_tail(part, lo)
        if lo == 0 or len(words(text)) >= count:
            return text
        window *= 4


def _read_tail(part: Part, lo: int) -> str:
    """Bytes ``[lo, part.start)``, from the first whole word on (when ``lo`` > 0)."""
    fs, p = storage.resolve(part.src.path)
    with fs.open_input_file(p) as f:
        buf = f.read_at(part.start - lo, lo)
    if lo > 0:
        m = _CUTS["file"].search(buf)
        buf = buf[m.end() :] if m else b""
    return buf.decode("utf-8", errors="replace")


def pieces(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in consecutive pieces of about ``size`` characters, cut after whitespace."""
    start = 0
    while start < len(text):
        m = _WS_STR.search(text, start + size)
        end = m.end() if m else len(text)
        yield text[start:end]
        start = end


def _jsonl_texts(part: Part, text: str, first_line: int) -> list[str]:
    path = part.src.path
    records = json_lines(text, path, ContaminationInputError, first_line)
    return [t for _, t in jsonl_records(part.src, records)]


def _lines_before(part: Part) -> int:
    return len(_read(part, 0, part.start).splitlines())


def part_texts(part: Part) -> list[str] | Iterator[str]:
    """The documents of a part (for a whole-file document: its one piece of text).

    A bad JSONL line is named by its line in the file: the (rare) error path counts the
    lines before the part."""
    src = part.src
    if part.end < 0:
        return (text for _, text in iter_docs(src))
    text = _read(part, part.start, part.end)
    if src.kind == "text":
        return [doc for _, doc in split_text(text, src.text_docs)]
    try:
        return _jsonl_texts(part, text, 1)
    except ContaminationInputError:
        if part.start == 0:
            raise
        return _jsonl_texts(part, text, 1 + _lines_before(part))  # raises, naming the line

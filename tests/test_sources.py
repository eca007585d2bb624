"""Reading Pushshift dumps (pipeline/sources.py): formats, truncation, bad lines, real dumps."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import tracemalloc
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pytest
import zstandard
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from foundation.records import Drop, Submission
from pipeline import sources
from pipeline.sources import (
    BadInputError,
    SplitDumps,
    check_bad_fraction,
    chunk_items,
    expand_patterns,
    parse_line,
    read_dump,
)


def record(i: int, **extra) -> dict:
    return {
        "id": f"s{i}",
        "subreddit": "test",
        "url": f"http://example.com/{i}",
        "score": i,
        "created_utc": 1_500_000_000 + i,
        "is_self": False,
        "over_18": False,
        "title": f"post {i}",
        **extra,
    }


def ndjson(n: int) -> bytes:
    return b"".join(json.dumps(record(i)).encode() + b"\n" for i in range(n))


def zstd_big_window(data: bytes) -> bytes:
    """zstd as Pushshift writes it: a 2 GiB window declared in the frame header."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31)
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(buf, closefd=False) as w:
        w.write(data)
    return buf.getvalue()


def zstd_two_frames(data: bytes) -> bytes:
    cut = data.index(b"\n", len(data) // 3) + 1
    c = zstandard.ZstdCompressor()
    return c.compress(data[:cut]) + c.compress(data[cut:])


COMPRESSORS = {
    "big_window.zst": zstd_big_window,
    "two_frames.zst": zstd_two_frames,
    "dump.xz": lzma.compress,
    "dump.bz2": lambda d: bz2.compress(d[: len(d) // 2]) + bz2.compress(d[len(d) // 2 :]),
    "dump.gz": lambda d: gzip.compress(d[:100]) + gzip.compress(d[100:]),
    "RS_2011-01": lambda d: d,  # plain, no suffix (as unpacked Pushshift files are named)
    "dump.jsonl": lambda d: d,
    "gzip_named.json": gzip.compress,  # detected by magic bytes, not by name
}


def sub(i: int) -> Submission:
    """The Submission that ``record(i)`` parses to."""
    return Submission(
        f"s{i}", "test", f"http://example.com/{i}", i, 1_500_000_000 + i, title=f"post {i}"
    )


def submissions(items) -> list[Submission]:
    return [x for x in items if isinstance(x, Submission)]


def drops(items) -> list[Drop]:
    return [x for x in items if isinstance(x, Drop)]


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_every_format_reads_every_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(COMPRESSORS[name](ndjson(300)))
    items = list(read_dump(str(path)))
    assert drops(items) == []
    assert [s.id for s in items] == [f"s{i}" for i in range(300)]
    assert items[7] == Submission(
        "s7", "test", "http://example.com/7", 7, 1_500_000_007, title="post 7"
    )


def test_zstd_needs_the_2gib_window(tmp_path):
    data = zstd_big_window(ndjson(10))
    with pytest.raises(zstandard.ZstdError, match="too much memory"):
        zstandard.ZstdDecompressor().decompressobj().decompress(data)
    path = tmp_path / "RS_2023-01.zst"
    path.write_bytes(data)
    assert len(submissions(read_dump(str(path)))) == 10


@pytest.mark.parametrize("name", ["big_window.zst", "dump.xz", "dump.bz2", "dump.gz"])
def test_truncated_stream_keeps_earlier_lines_and_says_where(tmp_path, name):
    data = ndjson(2000)
    compressed = COMPRESSORS[name](data)
    path = tmp_path / name
    path.write_bytes(compressed[: int(len(compressed) * 0.6)])
    items = list(read_dump(str(path)))
    *good, last = items
    assert isinstance(last, Drop) and last.reason == "source.truncated"
    assert all(isinstance(x, Submission) for x in good)
    assert 0 < len(good) < 2000
    assert [s.id for s in good] == [f"s{i}" for i in range(len(good))]
    assert last.where == f"{path}:{len(good) + 1}"


def test_corrupt_stream_is_reported_as_truncated(tmp_path):
    data = bytearray(gzip.compress(ndjson(500)))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(data))
    items = list(read_dump(str(path)))
    assert items[-1].reason == "source.truncated"
    assert str(path) in items[-1].where


def test_empty_file_yields_nothing(tmp_path):
    (tmp_path / "empty.zst").write_bytes(b"")
    assert list(read_dump(str(tmp_path / "empty.zst"))) == []


BAD_LINES = [
    (b"{not json", "source.bad_json"),
    (b'{"id": "x", "url": "http://a.com/", "score": 3, "created_utc": 1', "source.bad_json"),
    (b"\xff\xfe{}", "source.bad_json"),
    (b"[1, 2]", "source.not_object"),
    (b'"a string"', "source.not_object"),
    (b'{"id": "x", "score": 3, "created_utc": 1}', "source.missing_url"),
    (b'{"id": "x", "url": "", "score": 3, "created_utc": 1}', "source.missing_url"),
    (b'{"id": "x", "url": null, "score": 3, "created_utc": 1}', "source.missing_url"),
    (b'{"id": "x", "url": "http://a.com/", "created_utc": 1}', "source.missing_score"),
    (b'{"id": "x", "url": "http://a.com/", "score": null, "created_utc": 1}',
     "source.missing_score"),
    (b'{"url": "http://a.com/", "score": 3, "created_utc": 1}', "source.missing_id"),
    (b'{"id": "x", "url": "http://a.com/", "score": 3}', "source.missing_created_utc"),
    (b'{"id": "x", "url": "http://a.com/", "score": "many", "created_utc": 1}', "source.bad_type"),
    (b'{"id": "x", "url": "http://a.com/", "score": 2.5, "created_utc": 1}', "source.bad_type"),
    (b'{"id": "x", "url": "http://a.com/", "score": true, "created_utc": 1}', "source.bad_type"),
    (b'{"id": "x", "url": ["http://a.com/"], "score": 3, "created_utc": 1}', "source.bad_type"),
    (b'{"id": 7, "url": "http://a.com/", "score": 3, "created_utc": 1}', "source.bad_type"),
    (b'{"id": "x", "url": "http://a.com/", "score": 3, "created_utc": 1, "is_self": "no"}',
     "source.bad_type"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_bad_lines_are_dropped_by_reason(line, reason):
    out = parse_line(line, "f.json:7")
    assert isinstance(out, Drop)
    assert (out.reason, out.where) == (reason, "f.json:7")


def test_lenient_fields_of_real_dumps():
    line = json.dumps(
        {
            "id": "x",
            "url": "http://a.com/p?a=1&amp;b=2",
            "score": 5.0,
            "created_utc": "1119552233",
            "subreddit": None,
            "is_self": None,
            "over_18": None,
        }
    ).encode()
    assert parse_line(line, "f:1") == Submission("x", "", "http://a.com/p?a=1&b=2", 5, 1119552233)
    floats = parse_line(b'{"id":"y","url":"http://a/","score":1,"created_utc":1706745600.7}', "")
    assert floats.created_utc == 1706745600


def test_bad_lines_in_a_file_carry_their_line_numbers(tmp_path):
    lines = [json.dumps(record(0)).encode(), b"{oops", b"", json.dumps(record(1)).encode(), b"[]"]
    path = tmp_path / "mixed.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))  # no final newline
    items = list(read_dump(str(path)))
    assert [s.id for s in submissions(items)] == ["s0", "s1"]
    assert [(d.reason, d.where) for d in drops(items)] == [
        ("source.bad_json", f"{path}:2"),
        ("source.not_object", f"{path}:5"),
    ]


def test_overlong_line_is_dropped_and_reading_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(sources, "CHUNK_BYTES", 64)
    big = json.dumps(record(1, title="x" * 5000)).encode()
    path = tmp_path / "long.jsonl"
    path.write_bytes(
        b"\n".join([json.dumps(record(0)).encode(), big, json.dumps(record(2)).encode()])
    )
    items = list(read_dump(str(path)))
    assert [s.id for s in submissions(items)] == ["s0", "s2"]
    assert [(d.reason, d.where) for d in drops(items)] == [("source.line_too_long", f"{path}:2")]


def test_reading_streams_instead_of_loading_the_file(tmp_path):
    lines = (
        json.dumps(record(i, title=os.urandom(600).hex())).encode() + b"\n" for i in range(8000)
    )
    path = tmp_path / "RS_big.zst"
    with open(path, "wb") as f, zstandard.ZstdCompressor().stream_writer(f) as w:
        for line in lines:
            w.write(line)
    decompressed = 8000 * 1200
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_dump(str(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 8000
    assert peak < decompressed / 10, f"peak {peak} bytes for a {decompressed}-byte dump"


# --- file patterns -------------------------------------------------------------------------------


def test_patterns_files_globs_and_directories(tmp_path):
    for name in ["RS_2005-06.zst", "RS_2005-07.xz", "RS_2011-01", "README.md", ".hidden.zst"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "RS_2006-01.bz2").write_bytes(b"")
    d = str(tmp_path)
    assert expand_patterns([d]) == [f"{d}/RS_2005-06.zst", f"{d}/RS_2005-07.xz", f"{d}/RS_2011-01"]
    assert expand_patterns([f"{d}/*.zst", f"{d}/RS_2005-06.zst", f"{d}/sub"]) == [
        f"{d}/RS_2005-06.zst",
        f"{d}/sub/RS_2006-01.bz2",
    ]
    with pytest.raises(FileNotFoundError, match=r"nothing\.zst"):
        expand_patterns([f"{d}/nothing.zst"])
    with pytest.raises(FileNotFoundError, match=r"no dump file matches .*\*\.gz"):
        expand_patterns([f"{d}/*.gz"])


def _items(element) -> list:
    """A SplitDumps element -> its Submissions and Drops."""
    return [element] if isinstance(element, Drop) else list(chunk_items(element))


def read_split(p, patterns: tuple[str, ...], directory: Path, chunk_bytes: int = 1 << 20):
    """Every line of the dumps through SplitDumps, parsed as the URL stage parses its chunks."""
    split = SplitDumps(patterns, str(directory), chunk_bytes)
    return p | split | "Items" >> beam.FlatMap(_items)


@pytest.mark.parametrize("chunk_bytes", [64, 1 << 20])
def test_split_dumps_transform(tmp_path, chunk_bytes):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "a.zst").write_bytes(zstd_big_window(ndjson(5)))
    (dumps / "b.xz").write_bytes(lzma.compress(ndjson(3) + b"{bad\n"))
    bad = parse_line(b"{bad", f"{dumps}/b.xz:4")
    expected = [*map(sub, range(5)), *map(sub, range(3)), bad]
    with TestPipeline(runner="FnApiRunner") as p:
        out = read_split(p, (str(dumps),), tmp_path / "chunks", chunk_bytes)
        assert_that(out, equal_to(expected))


def test_split_dumps_rejects_a_bare_string(tmp_path):
    with pytest.raises(ValueError, match="tuple"):
        SplitDumps("RS_2005-06.zst", str(tmp_path), 1 << 20)


# --- the bad-fraction check ----------------------------------------------------------------------


def test_bad_fraction_under_the_limit_passes():
    check_bad_fraction(99, {"source.bad_json": 1, "url.wikipedia": 500}, 0.01, [])
    check_bad_fraction(0, {}, 0.0, [])


def test_bad_fraction_over_the_limit_names_fraction_limit_and_places():
    with pytest.raises(BadInputError) as info:
        check_bad_fraction(
            90,
            {"source.bad_json": 7, "source.truncated": 3},
            0.05,
            ["a.zst:12: source.bad_json", "b.xz:40: source.truncated"],
        )
    message = str(info.value)
    for part in ["10 of 100", "10.00%", "5.00%", "source.bad_json=7", "a.zst:12", "b.xz:40"]:
        assert part in message


# --- the real dumps of ../shared/corpus ----------------------------------------------------------


def test_real_old_layout_dump(corpus: Path):
    items = list(read_dump(str(corpus / "reddit" / "RS_v2_2005-06.xz")))
    subs = submissions(items)
    assert len(items) == len(subs) == 103
    assert sum(s.score >= 3 for s in subs) == 83
    assert not any(s.is_self or s.over_18 for s in subs)
    first = subs[0]
    assert (first.id, first.subreddit, first.url, first.score, first.created_utc) == (
        "87",
        "reddit.com",
        "http://www.downingstreetmemo.com",
        183,
        1119552233,
    )


def test_real_new_layout_dump_with_meta(corpus: Path):
    path = corpus / "reddit" / "pushshift-importer" / "test_submissions.json"
    subs = submissions(read_dump(str(path)))
    assert len(subs) == 31
    assert sum(s.is_self for s in subs) == 12
    assert sum(s.over_18 for s in subs) == 6
    assert subs[0].created_utc == 1706745600
    assert Counter(type(s.created_utc) for s in subs) == Counter({int: 31})


def test_real_dumps_through_the_transform(corpus: Path, tmp_path):
    reddit = corpus / "reddit"
    patterns = (str(reddit / "*.xz"), str(reddit / "pushshift-importer"))
    with TestPipeline(runner="FnApiRunner") as p:
        out = read_split(p, patterns, tmp_path)
        kinds = out | "Kinds" >> beam.Map(lambda x: type(x).__name__)
        assert_that(
            kinds | "Count" >> beam.combiners.Count.PerElement(),
            equal_to([("Submission", 134)]),
        )

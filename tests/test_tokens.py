"""Token shards: the on-disk layout round-trips, and damaged files are refused by name."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from foundation.shards import Manifest
from trainer.tokens import (
    HEADER_BYTES,
    TokenShardError,
    TokenShards,
    open_token_file,
    token_file_name,
    write_token_file,
)


def _write(path: Path, tokens, vocab_size=50257, eot_id=50256):
    return write_token_file(str(path), np.asarray(tokens), vocab_size, eot_id)


@pytest.mark.parametrize(
    ("vocab_size", "dtype"),
    [(50257, np.uint16), (65536, np.uint16), (65537, np.uint32), (100277, np.uint32)],
)
def test_round_trip_in_narrowest_dtype(tmp_path, vocab_size, dtype):
    tokens = np.array([vocab_size - 1, 0, 5, vocab_size - 1, 1234], dtype=np.int64)
    entry = _write(tmp_path / "t.bin", tokens, vocab_size, vocab_size - 1)
    tf = open_token_file(str(tmp_path / "t.bin"))
    assert tf.tokens.dtype == dtype
    assert isinstance(tf.tokens, np.memmap)
    np.testing.assert_array_equal(tf.tokens, tokens)
    assert (tf.n_tokens, tf.vocab_size, tf.eot_id) == (5, vocab_size, vocab_size - 1)
    assert entry.rows == 5
    assert entry.bytes == HEADER_BYTES + 5 * np.dtype(dtype).itemsize
    assert (tmp_path / "t.bin").stat().st_size == entry.bytes


def test_header_layout_is_the_documented_one(tmp_path):
    """Other tools (a C loader, llm.c-style readers) rely on the exact byte layout."""
    _write(tmp_path / "t.bin", [7, 8, 9], vocab_size=300, eot_id=299)
    raw = (tmp_path / "t.bin").read_bytes()
    assert raw[:8] == b"WTTOKENS"
    assert struct.unpack_from("<IIQII", raw, 8) == (1, 1, 3, 300, 299)
    assert raw[32:HEADER_BYTES] == bytes(HEADER_BYTES - 32)
    assert np.frombuffer(raw[HEADER_BYTES:], "<u2").tolist() == [7, 8, 9]


def test_memmap_is_read_only(tmp_path):
    _write(tmp_path / "t.bin", [1, 2, 3])
    tf = open_token_file(str(tmp_path / "t.bin"))
    with pytest.raises(ValueError):
        tf.tokens[0] = 5


def test_empty_file_opens(tmp_path):
    _write(tmp_path / "t.bin", np.array([], dtype=np.int64))
    tf = open_token_file(str(tmp_path / "t.bin"))
    assert tf.n_tokens == 0 and len(tf.tokens) == 0


@pytest.mark.parametrize(
    ("tokens", "vocab_size", "eot_id", "match"),
    [
        ([1, 300], 300, 0, "outside the vocabulary"),
        ([-1, 3], 300, 0, "outside the vocabulary"),
        ([1, 2], 300, 300, "eot_id=300"),
        ([[1, 2]], 300, 0, "one-dimensional"),
    ],
)
def test_write_rejects_ids_outside_the_vocabulary(tmp_path, tokens, vocab_size, eot_id, match):
    with pytest.raises(ValueError, match=match):
        _write(tmp_path / "t.bin", tokens, vocab_size, eot_id)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def _damage(path: Path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        raw = raw[:-1]
    elif how == "trailing":
        raw += b"\0\0"
    elif how == "short_header":
        raw = raw[:100]
    elif how == "magic":
        raw[:8] = b"NOTTOKEN"
    elif how == "version":
        struct.pack_into("<I", raw, 8, 2)
    elif how == "dtype":
        struct.pack_into("<I", raw, 12, 7)
    elif how == "eot":
        struct.pack_into("<I", raw, 28, 50257)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("truncated", "truncated"),
        ("trailing", "trailing data"),
        ("short_header", "shorter than the 256-byte header"),
        ("magic", "not a token shard"),
        ("version", "format version 2"),
        ("dtype", "unknown dtype code 7"),
        ("eot", "eot_id=50257"),
    ],
)
def test_damaged_file_is_rejected_naming_it(tmp_path, how, match):
    path = tmp_path / "train-00000.bin"
    _write(path, np.arange(100))
    _damage(path, how)
    with pytest.raises(TokenShardError, match=match) as e:
        open_token_file(str(path))
    assert str(path) in str(e.value)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(TokenShardError, match="missing"):
        open_token_file(str(tmp_path / "nope.bin"))


def _token_dir(tmp_path: Path, sizes: dict[str, list[int]], vocab_size=1000, eot_id=999) -> Path:
    files = []
    rng = np.random.default_rng(0)
    for split, lengths in sizes.items():
        for i, n in enumerate(lengths):
            path = tmp_path / token_file_name(split, i)
            files.append(_write(path, rng.integers(0, vocab_size, n), vocab_size, eot_id))
    Manifest(
        kind="tokens",
        format="bin",
        files=files,
        extra={"vocab_size": vocab_size, "eot_id": eot_id, "dtype": "uint16"},
    ).save(str(tmp_path))
    return tmp_path


def test_token_shards_opens_one_split(tmp_path):
    d = _token_dir(tmp_path, {"train": [50, 70], "val": [20]})
    train = TokenShards(str(d), "train", checksums=True)
    val = TokenShards(str(d), "val")
    assert (len(train), train.n_tokens) == (2, 120)
    assert (len(val), val.n_tokens) == (1, 20)
    assert [len(m) for m in train.memmaps] == [50, 70]
    assert (train.vocab_size, train.eot_id) == (1000, 999)
    assert train.tokenizer_path.endswith("/tokenizer.json")


@pytest.mark.parametrize("how", ["truncated", "trailing", "magic"])
def test_token_shards_rejects_a_damaged_file(tmp_path, how):
    d = _token_dir(tmp_path, {"train": [50, 70]})
    _damage(d / "train-00001.bin", how)
    with pytest.raises(TokenShardError, match=r"train-00001\.bin"):
        TokenShards(str(d), "train")


def test_token_shards_checksum_catches_a_flipped_token(tmp_path):
    d = _token_dir(tmp_path, {"train": [50]})
    path = d / "train-00000.bin"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    TokenShards(str(d), "train")  # sizes alone cannot see it
    with pytest.raises(TokenShardError, match="sha256"):
        TokenShards(str(d), "train", checksums=True)


def test_token_shards_rejects_header_manifest_disagreement(tmp_path):
    d = _token_dir(tmp_path, {"train": [50]})
    m = Manifest.load(str(d))
    m.extra["vocab_size"] = 2000
    m.save(str(d))
    with pytest.raises(TokenShardError, match="disagrees with the manifest"):
        TokenShards(str(d), "train")


def test_token_shards_rejects_other_kinds_and_missing_manifest(tmp_path):
    with pytest.raises(TokenShardError, match="no manifest"):
        TokenShards(str(tmp_path), "train")
    Manifest(kind="text", format="parquet").save(str(tmp_path))
    with pytest.raises(TokenShardError, match="not a token directory"):
        TokenShards(str(tmp_path), "train")

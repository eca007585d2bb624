"""Per-shard spill files of what dedup needs again by id: shingles, signature, survivor fields.

    WORK/00003.spill        every row's blobs, concatenated
    WORK/00003.index.npy    (rows, columns + 1) int64 byte offsets into it

Scanning a text shard computes each document's shingle set once and writes it here, with its
signature, the fields that choose a cluster's survivor (id, karma, created_utc, submissions)
and a snippet of its text. Later steps read one row's blob by (shard, row) with two ranged
reads (its offsets, then the blob), so verification, cluster resolution and submission merging
never move shingle sets or documents through a shuffle, and a reader holds only open files.
Files are written under a temporary name and renamed: a rerun overwrites them.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from foundation import storage

COLUMNS = ("shingles", "signature", "meta", "snippet")
OPEN_SHARDS = 64  # files of this many shards stay open per reader


def doc_ref(shard: int, row: int) -> int:
    """One int naming a row of a shard: what crosses the shuffles instead of the document."""
    return shard << 32 | row


def split_ref(ref: int) -> tuple[int, int]:
    return ref >> 32, ref & 0xFFFFFFFF


def _paths(work: str, shard: int) -> tuple[str, str]:
    return storage.join(work, f"{shard:05d}.spill"), storage.join(work, f"{shard:05d}.index.npy")


def write_shard(work: str, shard: int, rows: Iterable[Sequence[bytes]]) -> None:
    """Write one shard's rows (streamed), each a blob per COLUMNS entry."""
    data, index = _paths(work, shard)
    offsets: list[list[int]] = []
    pos = 0
    with storage.atomic_output(data) as f:
        for blobs in rows:
            row = [pos]
            for blob in blobs:
                f.write(blob)
                pos += len(blob)
                row.append(pos)
            offsets.append(row)
    table = np.array(offsets, dtype=np.int64).reshape(len(offsets), len(COLUMNS) + 1)
    buf = io.BytesIO()
    np.save(buf, table)
    storage.write_bytes(index, buf.getvalue())


def meta_blob(doc: dict[str, Any]) -> bytes:
    keep = {k: doc[k] for k in ("id", "karma", "created_utc", "submissions")}
    keep["url"] = doc.get("url", "")
    return json.dumps(keep, separators=(",", ":")).encode()


class SpillReader:
    """Ranged reads of rows' blobs; keeps the files of the last OPEN_SHARDS shards open.

    A row's two offsets are read from the index file with the blob (one more ranged read), not
    kept: a reader's memory does not grow with the number or size of the shards it touches.
    """

    def __init__(self, work: str):
        self.work = work
        self._open: OrderedDict[int, tuple[Any, Any, int]] = OrderedDict()

    def _shard(self, shard: int) -> tuple[Any, Any, int]:
        """(data file, index file, where the index's offsets start) of an open shard."""
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        data, index = _paths(self.work, shard)
        fs, p = storage.resolve(data)
        ifs, ip = storage.resolve(index)
        offsets = ifs.open_input_file(ip)
        entry = (fs.open_input_file(p), offsets, _array_start(offsets))
        self._open[shard] = entry
        if len(self._open) > OPEN_SHARDS:
            _, (f, g, _) = self._open.popitem(last=False)
            f.close()
            g.close()
        return entry

    def blob(self, ref: int, column: str) -> bytes:
        shard, row = split_ref(ref)
        f, index, base = self._shard(shard)
        c = COLUMNS.index(column)
        at = base + (row * (len(COLUMNS) + 1) + c) * 8
        start, stop = np.frombuffer(index.read_at(16, at), dtype="<i8").tolist()
        return bytes(f.read_at(stop - start, start))

    def shingles(self, ref: int) -> np.ndarray:
        return np.frombuffer(self.blob(ref, "shingles"), dtype="<u4")

    def signature(self, ref: int) -> np.ndarray:
        return np.frombuffer(self.blob(ref, "signature"), dtype="<u4")

    def meta(self, ref: int) -> dict[str, Any]:
        return json.loads(self.blob(ref, "meta"))

    def snippet(self, ref: int) -> str:
        return self.blob(ref, "snippet").decode()

    def close(self) -> None:
        for f, g, _ in self._open.values():
            f.close()
            g.close()
        self._open.clear()


def _array_start(f: Any) -> int:
    """Where the int64 offsets of an ``.npy`` index (as :func:`write_shard` saves it) begin."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    _shape, fortran, dtype = header(f)
    if fortran or dtype != np.dtype("<i8"):
        raise ValueError(f"unexpected spill index layout: {dtype}, fortran={fortran}")
    return f.tell()

"""Write new shards without the training documents that share an n-gram with any test set.

Input: a shard directory and test sets. Output: a new shard directory (same format and schema,
one output shard per input shard, a new manifest) and ``removed.jsonl`` in it: one line per
removed document with its id, shard, row, the matching n-grams per test set and one example.

The match is exact up to 64-bit hash collisions: the test sets' n-gram hashes are few enough to
hold sorted in memory, so every training n-gram is looked up with a binary search, not a Bloom
filter. The default n is 13, as GPT-3 and lm-evaluation-harness decontaminate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from contamination.ngrams import NgramHasher
from contamination.normalize import words
from contamination.sources import ReadOptions, read_test_set
from foundation import shards, storage
from foundation.droplog import DropWriter, commit_drops, drops_dir
from foundation.errors import WebtextError
from foundation.layout import record_path
from foundation.records import Drop

log = logging.getLogger(__name__)

REMOVED_FILE = "removed.jsonl"
RULE = "contamination.ngram_overlap"
"""The drop log's rule for a removed document (``RUN/drops/<out>/``, beside removed.jsonl)."""


class OutputExistsError(WebtextError, FileExistsError):
    """The output directory already holds shards: decontamination never overwrites them."""


@dataclass(frozen=True)
class DecontaminationResult:
    out_dir: str
    docs_in: int
    docs_removed: int
    removed_path: str
    manifest_checksum: str


def _sorted_unique(hashes: np.ndarray) -> np.ndarray:
    h = np.sort(hashes)
    return h[np.concatenate(([True], h[1:] != h[:-1]))] if len(h) else h


def _member(hashes: np.ndarray, table: np.ndarray) -> np.ndarray:
    if not len(table):
        return np.zeros(len(hashes), dtype=bool)
    pos = np.minimum(np.searchsorted(table, hashes), len(table) - 1)
    return table[pos] == hashes


def decontaminate(
    shards_dir: str,
    test_sets: Mapping[str, str],
    out_dir: str,
    n: int = 13,
    opts: ReadOptions | None = None,
) -> DecontaminationResult:
    """Copy ``shards_dir`` to ``out_dir`` minus documents sharing an n-gram with a test set."""
    if not test_sets:
        raise ValueError("no test sets given: pass at least one NAME=PATH")
    if storage.exists(storage.join(out_dir, shards.MANIFEST)):
        raise OutputExistsError(f"{out_dir}: already holds shards; choose a new output directory")
    opts = opts or ReadOptions()
    hasher = NgramHasher(n)
    tables = {
        name: _sorted_unique(hasher.hash_docs(read_test_set(path, opts)[1]).hashes)
        for name, path in test_sets.items()
    }
    source = shards.Manifest.load(shards_dir, "text")
    source.verify(shards_dir, checksums=False)
    files: list[shards.ShardFile] = []
    removed: list[dict] = []
    docs_in = 0
    dropped = DropWriter(drops_dir(out_dir), "decontaminate")
    for index, path in enumerate(source.paths(shards_dir)):
        table = shards.read_table(path)
        texts = [t or "" for t in table.column("text").to_pylist()]
        ids = table.column("id").to_pylist() if "id" in table.column_names else None
        urls = table.column("url").to_pylist() if "url" in table.column_names else None
        nh = hasher.hash_docs(texts)
        dirty = np.zeros(len(texts), dtype=bool)
        per_set: dict[str, np.ndarray] = {}
        for name, tab in tables.items():
            hit = _member(nh.hashes, tab)
            per_set[name] = np.bincount(nh.doc[hit], minlength=len(texts))
            dirty |= per_set[name] > 0
        for row in np.flatnonzero(dirty):
            doc = hasher.hash_docs([texts[row]]).hashes
            first = int(
                np.flatnonzero(np.any([_member(doc, t) for t in tables.values()], axis=0))[0]
            )
            removed.append(
                {
                    "id": ids[row] if ids else None,
                    "shard": path.rsplit("/", 1)[-1],
                    "row": int(row),
                    "reason": f"shares {n}-grams with test sets",
                    "matches": {k: int(v[row]) for k, v in per_set.items() if v[row]},
                    "example": " ".join(words(texts[row])[first : first + n]),
                }
            )
            matches = removed[-1]["matches"]
            dropped.add(
                Drop(
                    RULE,
                    where=f"{removed[-1]['shard']}:{row}",
                    detail=", ".join(f"{k}: {v} {n}-grams" for k, v in matches.items()),
                    id=(ids[row] if ids else "") or "",
                    url=(urls[row] if urls else "") or "",
                )
            )
        docs_in += len(texts)
        kept = table.filter(~dirty)
        out_path = storage.join(out_dir, shards.shard_name(index, source.format))
        files.append(shards.write_table(kept, out_path, source.format))
        log.info("%s: %d of %d documents removed", path, int(dirty.sum()), len(texts))
    removed_path = storage.join(out_dir, REMOVED_FILE)
    storage.write_text(removed_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in removed))
    manifest = shards.Manifest(
        kind=source.kind,
        format=source.format,
        files=files,
        counts={"docs_in": docs_in, "docs_removed": len(removed), "docs": docs_in - len(removed)},
        config=source.config,
        extra={
            **source.extra,
            "decontamination": {
                "source": record_path(shards_dir, out_dir),
                "source_checksum": source.checksum,
                "n": n,
                "test_sets": dict(test_sets),
                "removed": len(removed),
                "removed_file": REMOVED_FILE,
            },
            "drops": commit_drops(
                [part] if (part := dropped.close()) else [], drops_dir(out_dir), out_dir, None
            ),
        },
    )
    manifest.save(out_dir)
    return DecontaminationResult(out_dir, docs_in, len(removed), removed_path, manifest.checksum)

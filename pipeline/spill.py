"""Documents written once, to spill files, so that what is shuffled after them is small.

    docs | SpillDocuments(spill_dir) -> PCollection[dict]: the document's DEDUP_FIELDS and
                                        SPILL, where the whole row lies
    refs = slim_records | beam.Map(reference)   # after dedup: id, submissions, SPILL
    rows = unspill(refs)              # the whole rows again, each with its record's submissions

Beam's local runner holds every grouping in the driver's memory, and dedup, the shard writer
and its count all wait for the whole corpus: a document that crossed them whole would cost its
size several times over in one process. Extraction (fused with the spill) writes each row once,
to a file of its bundle; dedup decides on what it needs (ids, hashes, karma, submissions and the
text, which near dedup sketches), and the shard writer reads the survivors' rows back by offset,
with the submissions dedup merged into them. The spill directory is removed once the shards'
manifest is committed, and emptied when a killed run is rerun.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterable

import apache_beam as beam

from foundation import storage

SPILL = "spill"  # (file, offset, length) of the pickled row
DEDUP_FIELDS = ("id", "url", "content_hash", "karma", "created_utc", "submissions", "text")
"""What dedup reads of a document (``dedup.survivor``, ``dedup.exact``, the near-dedup sketch
and report, the drop log's URL); the rest of the row stays in the spill file."""


class _SpillFn(beam.DoFn):
    """Appends each document to its bundle's spill file; emits its slim form at once (the
    file is complete before anything downstream of a grouping reads it)."""

    def __init__(self, directory: str):
        self.directory = directory

    def start_bundle(self) -> None:
        self._stack = None
        self._offset = 0

    def process(self, doc: dict):
        if self._stack is None:
            from contextlib import ExitStack

            self._stack = ExitStack()
            self._path = storage.join(self.directory, f"{uuid.uuid4().hex}.pkl")
            self._out = self._stack.enter_context(storage.atomic_output(self._path))
        data = pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL)
        self._out.write(data)
        slim = {k: doc[k] for k in DEDUP_FIELDS}
        slim[SPILL] = (self._path, self._offset, len(data))
        self._offset += len(data)
        yield slim

    def finish_bundle(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


class SpillDocuments(beam.PTransform):
    """PCollection[dict] (TEXT_SCHEMA rows) -> PCollection[dict]: slim documents (see above)."""

    def __init__(self, directory: str):
        super().__init__()
        self.directory = directory

    def expand(self, docs):
        return docs | "Spill" >> beam.ParDo(_SpillFn(self.directory))


WRITE_FIELDS = ("id", "submissions", SPILL)
"""What the shard writer needs of a dedup survivor: its id (shard and order), its submissions
(merged by dedup) and where its row lies."""


def reference(slim: dict) -> dict:
    """A survivor as the shard writer needs it: without its text, which dedup no longer needs
    and which would otherwise cross the writer's count and grouping (in the driver) again."""
    return {k: slim[k] for k in WRITE_FIELDS}


def unspill(records: Iterable[dict]) -> list[dict]:
    """The whole rows of slim records, read from their spill files (each file opened once, read
    in offset order), each with its record's ``submissions`` (a dedup survivor's merged ones)."""
    by_file: dict[str, list[dict]] = {}
    for r in records:
        by_file.setdefault(r[SPILL][0], []).append(r)
    rows = []
    for path, recs in by_file.items():
        fs, p = storage.resolve(path)
        with fs.open_input_file(p) as f:
            for r in sorted(recs, key=lambda r: r[SPILL][1]):
                _, offset, length = r[SPILL]
                f.seek(offset)
                row = pickle.loads(f.read(length))
                row["submissions"] = r["submissions"]
                rows.append(row)
    return rows


def clear(directory: str) -> None:
    """Remove a spill directory (what a finished or killed run left)."""
    storage.remove(directory)

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

import io
import pickle
import uuid
from collections.abc import Iterable, Iterator

import apache_beam as beam

from foundation import storage

SPILL = "spill"  # (file, offset, length) of the pickled row
SPILL_DOCS = 4096
"""Documents per spill file at most: dedup scans one file in a task (:mod:`pipeline.spill_dedup`),
so a file's size, not the bundle's, bounds that task."""
DEDUP_FIELDS = ("id", "url", "content_hash", "karma", "created_utc", "submissions", "text")
"""What dedup reads of a document (``dedup.survivor``, ``dedup.exact``, the near-dedup sketch
and report, the drop log's URL); the rest of the row stays in the spill file."""


class _SpillFn(beam.DoFn):
    """Appends each document to its bundle's current spill file (a new one every
    ``docs_per_file`` documents); emits its slim form at once (the file is complete before
    anything downstream of a grouping reads it)."""

    def __init__(self, directory: str, docs_per_file: int):
        self.directory, self.docs_per_file = directory, docs_per_file

    def start_bundle(self) -> None:
        self._stack = None

    def process(self, doc: dict):
        if self._stack is None:
            from contextlib import ExitStack

            self._stack = ExitStack()
            self._path = storage.join(self.directory, f"{uuid.uuid4().hex}.pkl")
            self._out = self._stack.enter_context(storage.atomic_output(self._path))
            self._offset, self._docs = 0, 0
        data = pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL)
        self._out.write(data)
        slim = {k: doc[k] for k in DEDUP_FIELDS}
        slim[SPILL] = (self._path, self._offset, len(data))
        self._offset += len(data)
        self._docs += 1
        if self._docs == self.docs_per_file:
            self.finish_bundle()
        yield slim

    def finish_bundle(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


class SpillDocuments(beam.PTransform):
    """PCollection[dict] (TEXT_SCHEMA rows) -> PCollection[dict]: slim documents (see above)."""

    def __init__(self, directory: str, docs_per_file: int = SPILL_DOCS):
        super().__init__()
        if docs_per_file <= 0:
            raise ValueError(f"docs_per_file must be positive, got {docs_per_file}")
        self.directory, self.docs_per_file = directory, docs_per_file

    def expand(self, docs):
        return docs | "Spill" >> beam.ParDo(_SpillFn(self.directory, self.docs_per_file))


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


def spilled_rows(path: str) -> Iterator[tuple[dict, tuple[str, int, int]]]:
    """Every row of a spill file, in order, with its SPILL reference."""
    data = storage.read_bytes(path)
    f = io.BytesIO(data)
    while f.tell() < len(data):
        offset = f.tell()
        row = pickle.load(f)
        yield row, (path, offset, f.tell() - offset)


def clear(directory: str) -> None:
    """Remove a spill directory (what a finished or killed run left)."""
    storage.remove(directory)

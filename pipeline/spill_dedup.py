"""The pages phase's exact and near dedup, deciding from ids over its spill files.

    slim docs (pipeline.spill) --DedupSpilled(cfg, work, report_dir, log)-->
        DedupOutputs(documents: survivors as pipeline.spill.reference records,
                     drops: drop-log parts (foundation.droplog.DropFile), extras)

The documents are already written once, to spill files of at most ``SPILL_DOCS`` rows
(:mod:`pipeline.spill`). Each spill file is a shard of :mod:`dedup.by_id`: its path is all that
leaves the extraction stage (one per file, after a combine that runs beside extraction), the
files are numbered once all are known (a Gather of paths, no side input), each is scanned in one
task (:func:`dedup.by_id.scan_docs`: shingles, signatures and key files into ``work``) and
:class:`dedup.by_id.DecideById` decides exact and near duplicates bucket by bucket, as
``webtext dedup`` does. Then each spill file's task reads its own rows again and emits a
reference (id, submissions with those it inherits, where the row lies) for each row it keeps:
the shard writer groups those by ``shard_of(id)`` and reads the rows back, as before.

So no grouping holds text or sketches: what the driver holds grows by a reference per kept
document (~100 bytes), not by the ~1-2 KB per document that ``dedup.stage.Deduplicate``'s
groupings of slim rows cost. The kept documents, drops and report are those of that transform
(``tests/test_dedup_by_id.py`` compares the two deciders; ``tests/test_ingest.py`` the outputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from dedup.by_id import (
    DecideById,
    MovesByShard,
    ScanInfo,
    ShardMoves,
    scan_docs,
    source_of,
)
from dedup.spill import SpillReader
from dedup.stage import DedupOutputs
from foundation.config import DedupConfig
from foundation.droplog import DropLog
from foundation.gather import Gather, Spread
from pipeline.spill import SPILL, spilled_rows


def _spill_file(slim: dict) -> str:
    return slim[SPILL][0]


def number_files(paths: list[str]) -> Iterator[tuple[int, str]]:
    """(shard number, spill file) for every file, numbered in path order once all are known."""
    yield from enumerate(sorted(paths))


def scan_spill(item: tuple[int, str], work: str, cfg: DedupConfig) -> Iterator[ScanInfo]:
    """Scan one spill file as dedup shard ``item[0]``."""
    shard, path = item
    yield scan_docs(shard, path, (row for row, _ in spilled_rows(path)), work, cfg)


class KeepSurvivors(beam.DoFn):
    """(spill shard, its tagged moves) -> a reference record per row it keeps, with the
    submissions of the documents that row replaces."""

    def __init__(self, work: str):
        self.work = work

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, item: tuple[int, Iterable[tuple[str, Any]]]) -> Iterator[dict]:
        shard, tagged = item
        moves = ShardMoves.of(tagged)
        for index, (row, where) in enumerate(spilled_rows(source_of(self.work, shard))):
            if index in moves.removed:
                continue
            subs = moves.submissions(self.spill, index, row["submissions"])
            yield {"id": row["id"], "submissions": subs, SPILL: where}

    def teardown(self) -> None:
        self.spill.close()


class DedupSpilled(beam.PTransform):
    """PCollection[dict] of slim spilled documents -> DedupOutputs (module docstring); the
    removed documents are logged in ``log`` by the tasks that decide them."""

    def __init__(self, cfg: DedupConfig, work: str, report_dir: str, log: DropLog):
        super().__init__()
        self.cfg, self.work, self.report_dir, self.log = cfg, work, report_dir, log

    def expand(self, slim):
        work = self.work
        shards = (
            slim
            | "SpillFiles" >> beam.Map(_spill_file)
            | "EachFile" >> beam.Distinct()
            | "AllFiles" >> Gather()
            | "Number" >> beam.FlatMap(number_files)
            | "SpreadFiles" >> Spread()
        )
        decided = (
            shards
            | "Scan" >> beam.FlatMap(scan_spill, work, self.cfg)
            | "Decide" >> DecideById(self.cfg, work, self.report_dir, self.log)
        )
        kept = (
            (shards, decided.moves)
            | "MovesByShard" >> MovesByShard()
            | "Keep" >> beam.ParDo(KeepSurvivors(work))
        )
        return DedupOutputs(kept, decided.drops, decided.extras)

"""The drop log: one row per removed item, committed with its stage's manifest."""

from __future__ import annotations

from collections import Counter

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline

from foundation.droplog import DropLog, LogDrops, drops_dir, read_drops
from foundation.drops import reason_one
from foundation.records import Drop
from foundation.shards import Manifest
from foundation.write import CommitManifest, as_count, as_drops

DROPS = [Drop("fetch.http_404", f"http://e.com/{i}", "404", id=f"d{i}") for i in range(12)]
DROPS += [Drop("quality.too_short", f"q{i}", "9 words", id=f"q{i}") for i in range(3)]


def _commit(stage_dir: str, drops: list[Drop], cap: int | None = None) -> Manifest:
    log = DropLog(drops_dir(stage_dir), cap)
    with TestPipeline(runner="FnApiRunner") as p:
        dropped = p | beam.Create(drops) | beam.Reshuffle()
        _ = (
            (
                dropped | "Log" >> LogDrops(log.directory, cap) | beam.Map(as_drops),
                dropped | beam.Map(reason_one) | beam.Map(as_count),
            )
            | beam.Flatten()
            | CommitManifest(stage_dir, "test", "parquet", {}, drop_log=log)
        )
    return Manifest.load(stage_dir)


def test_every_drop_is_one_row_and_the_manifest_counts_them(tmp_path):
    stage = str(tmp_path / "run" / "shards")
    manifest = _commit(stage, DROPS)
    assert drops_dir(stage) == str(tmp_path / "run" / "drops" / "shards")
    table = read_drops(drops_dir(stage), files=manifest.extra["drops"]["files"])
    assert Counter(table.column("rule").to_pylist()) == manifest.counts
    assert (
        manifest.extra["drops"]["rows"]
        == manifest.counts
        == {
            "fetch.http_404": 12,
            "quality.too_short": 3,
        }
    )
    row = read_drops(drops_dir(stage), filters=[("id", "=", "d7")]).to_pylist()
    assert row == [
        {
            "stage": "fetch",
            "rule": "fetch.http_404",
            "id": "d7",
            "url": "",
            "where": "http://e.com/7",
            "detail": "404",
            "kept": "",
        }
    ]


def test_a_rerun_leaves_no_duplicate_and_no_orphan(tmp_path):
    stage = str(tmp_path / "shards")
    (tmp_path / "drops" / "shards").mkdir(parents=True)
    orphan = tmp_path / "drops" / "shards" / "part-left-by-a-killed-run.parquet"
    orphan.write_bytes(b"half a part")
    first = _commit(stage, DROPS)
    again = _commit(stage, DROPS)
    assert not orphan.exists()
    assert first.extra["drops"]["rows"] == again.extra["drops"]["rows"]
    on_disk = read_drops(drops_dir(stage))  # every file there, listed or not
    assert sorted(on_disk.column("where").to_pylist()) == sorted(d.where for d in DROPS)


def test_a_cap_bounds_rows_per_rule_and_counts_stay_exact(tmp_path):
    stage = str(tmp_path / "shards")
    manifest = _commit(stage, DROPS, cap=5)
    logged = manifest.extra["drops"]
    assert manifest.counts == {"fetch.http_404": 12, "quality.too_short": 3}
    assert logged["rows"] == {"fetch.http_404": 5, "quality.too_short": 3}
    assert logged["capped"] == {"fetch.http_404": 7} and logged["max_per_rule"] == 5
    table = read_drops(drops_dir(stage))
    assert Counter(table.column("rule").to_pylist()) == logged["rows"]

"""Shard writing and the manifest commit: deterministic, idempotent, verified."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from foundation import storage
from foundation.shards import Manifest, ShardError, read_table
from foundation.write import (
    CommitItems,
    CommitManifest,
    WriteShards,
    as_count,
    as_file,
    commit_manifest,
)

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64())])


def _rows(n: int) -> list[dict]:
    return [{"id": hashlib.sha1(str(i).encode()).hexdigest(), "n": i} for i in range(n)]


def _two_workers() -> PipelineOptions:
    return PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])


def _write(tmp_path, rows, per_shard=10, label="run"):
    out = str(tmp_path / "shards")
    with TestPipeline(runner="FnApiRunner") as p:
        files = (
            p
            | f"Create{label}" >> beam.Create(rows)
            | WriteShards(out, "parquet", per_shard, SCHEMA)
        )
        items = (
            files | beam.Map(as_file),
            p | "Counts" >> beam.Create([("demo.kept", len(rows))]) | beam.Map(as_count),
        ) | beam.Flatten()
        manifest = items | CommitManifest(out, kind="test", fmt="parquet", config={"x": 1})
        assert_that(manifest | beam.Map(lambda m: m.rows), equal_to([len(rows)]))
    return out


def test_shards_hold_every_row_once_and_manifest_verifies(tmp_path):
    rows = _rows(95)
    out = _write(tmp_path, rows)
    manifest = Manifest.load(out)
    assert len(manifest.files) == 10  # ceil(95 / 10)
    assert manifest.counts == {"demo.kept": 95}
    manifest.verify(out)
    got = [r for path in manifest.paths(out) for r in read_table(path).to_pylist()]
    assert sorted(got, key=lambda r: r["n"]) == rows


def test_rerun_gives_identical_files(tmp_path):
    rows = _rows(40)
    first = Manifest.load(_write(tmp_path, rows))
    second = Manifest.load(_write(tmp_path, list(reversed(rows)), label="again"))
    assert first.checksum == second.checksum


def test_per_record_counts_are_summed_across_workers(tmp_path):
    out = str(tmp_path / "shards")
    names = ["docs"] * 500 + ["drops"] * 7
    with TestPipeline(runner="FnApiRunner", options=_two_workers()) as p:
        _ = (
            p
            | beam.Create(names)
            | beam.Reshuffle()
            | beam.Map(lambda name: as_count((name, 1)))
            | CommitManifest(out, kind="test", fmt="parquet", config={})
        )
    assert Manifest.load(out).counts == {"docs": 500, "drops": 7}


def test_a_run_that_produced_nothing_still_commits(tmp_path):
    out = str(tmp_path / "shards")
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | beam.Create([]) | CommitManifest(out, kind="test", fmt="parquet", config={})
    manifest = Manifest.load(out)
    assert (manifest.rows, manifest.counts, manifest.files) == (0, {}, [])


def test_an_unknown_commit_item_is_refused():
    with pytest.raises(ValueError, match="unknown commit item 'fiel'"):
        CommitItems.of([("fiel", None)])


def test_orphan_parts_from_a_killed_run_are_removed(tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    (out / "part-00099.parquet").write_bytes(b"half a shard")
    commit_manifest(CommitItems(), str(out), "test", "parquet", {})
    assert not (out / "part-00099.parquet").exists()
    assert Manifest.load(str(out)).rows == 0


def test_a_vetoed_commit_leaves_no_manifest(tmp_path):
    out = str(tmp_path)
    commit_manifest(
        CommitItems.of([("count", ("bad", 3))]),
        out,
        "test",
        "parquet",
        {},
        check=lambda m: "too bad",
    )
    assert not storage.exists(storage.join(out, "_manifest.json"))
    assert "too bad" in storage.read_text(storage.join(out, "_manifest.rejected.json"))


def test_corrupt_shard_is_named(tmp_path):
    out = _write(tmp_path, _rows(5), per_shard=100)
    manifest = Manifest.load(out)
    path = manifest.paths(out)[0]
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    with pytest.raises(ShardError, match=r"part-00000\.parquet.*sha256"):
        manifest.verify(out)
    Path(path).write_bytes(bytes(data[:100]))
    with pytest.raises(ShardError, match="truncated"):
        manifest.verify(out)
    with pytest.raises(ShardError, match="cannot read shard"):
        read_table(path)


def test_row_groups_written_one_at_a_time_give_the_same_bytes(tmp_path):
    """The shard writer of spilled documents holds one row group at a time: same file."""
    import pyarrow as pa

    from foundation.shards import ROW_GROUP, TEXT_SCHEMA, write_row_groups, write_table
    from tests.test_spill import doc

    rows = [doc(i) for i in range(ROW_GROUP * 2 + 7)]
    whole = write_table(
        pa.Table.from_pylist(rows, schema=TEXT_SCHEMA), str(tmp_path / "a.parquet"), "parquet"
    )
    tables = (
        pa.Table.from_pylist(rows[i : i + ROW_GROUP], schema=TEXT_SCHEMA)
        for i in range(0, len(rows), ROW_GROUP)
    )
    grouped = write_row_groups(tables, TEXT_SCHEMA, str(tmp_path / "b.parquet"))
    assert (grouped.rows, grouped.sha256) == (whole.rows, whole.sha256)

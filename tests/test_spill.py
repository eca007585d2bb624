"""Documents written once: dedup and the shard writer carry slim records, rows come back whole."""

from __future__ import annotations

import os

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from foundation.shards import TEXT_SCHEMA
from foundation.write import WriteShards
from pipeline.spill import DEDUP_FIELDS, SPILL, SpillDocuments, clear, reference, unspill
from tests.test_fetch import Collect


def doc(i: int) -> dict:
    sub = {"id": f"s{i}", "subreddit": "r", "score": 3, "created_utc": i}
    return {
        "id": f"{i:032x}", "url": f"http://a/{i}", "canonical_url": f"http://a/{i}",
        "domain": "a", "submissions": [sub], "karma": 3, "created_utc": i, "title": f"t{i}",
        "date": None, "text": f"text {i} " * 50, "language": "en", "n_chars": 10, "n_words": 2,
        "content_hash": f"{i:064x}", "fetch_time": 0, "http_status": 200,
        "source": "live", "record": "",
    }  # fmt: skip


def test_spilled_documents_travel_slim_and_come_back_whole(tmp_path):
    spill, shards = str(tmp_path / "spill"), str(tmp_path / "shards")
    docs = [doc(i) for i in range(12)]
    collect = Collect(str(tmp_path / "slim.pkl"))
    with TestPipeline(runner="FnApiRunner") as p:
        slim = p | beam.Create(docs) | SpillDocuments(spill)
        assert_that(slim, collect, label="Slim")
        refs = slim | beam.Map(reference)  # the shard writer's input: no text
        _ = refs | WriteShards(shards, "parquet", 5, TEXT_SCHEMA, resolve=unspill)
    records = collect.load()
    assert all(set(r) == {*DEDUP_FIELDS, SPILL} for r in records)  # title, domain... stayed behind
    written = sorted(
        (
            row
            for name in os.listdir(shards)
            for row in pq.read_table(f"{shards}/{name}").to_pylist()
        ),
        key=lambda r: r["id"],
    )
    assert written == docs  # the shards hold the whole rows, read back from the spill
    merged = {**records[0], "submissions": [*records[0]["submissions"], {"id": "x"}]}
    (row,) = unspill([merged])  # a dedup survivor's merged submissions replace the spilled ones
    assert (
        row["submissions"][-1] == {"id": "x"} and row["title"] == docs[int(row["id"], 16)]["title"]
    )
    clear(spill)
    assert not os.path.exists(spill)

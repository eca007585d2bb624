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


def test_dedup_over_spill_files_decides_as_the_in_memory_transform(tmp_path):
    """The pages phase's dedup (spill files as dedup shards, decided from ids) keeps, merges,
    drops and reports exactly what ``Deduplicate`` does on the same slim documents."""
    import json

    from dedup.stage import Deduplicate
    from foundation.config import DedupConfig
    from foundation.droplog import DropLog
    from pipeline.spill_dedup import DedupSpilled
    from tests.test_dedup_by_id import _planted

    spill, docs = str(tmp_path / "spill"), _planted()
    cfg = DedupConfig(cc_rounds=4, bucket_docs=4)
    got = {k: Collect(str(tmp_path / f"{k}.pkl")) for k in ("old", "new", "old_d", "new_d")}
    with TestPipeline(runner="FnApiRunner") as p:
        slim = p | beam.Create(docs) | SpillDocuments(spill, docs_per_file=4)
        old = slim | "Old" >> Deduplicate(cfg, str(tmp_path / "old"), "run")
        log = DropLog(str(tmp_path / "drops"))
        new = slim | "New" >> DedupSpilled(cfg, f"{spill}/_dedup", str(tmp_path / "new"), log)
        assert_that(old.documents | beam.Map(reference), got["old"], label="OldDocs")
        assert_that(new.documents, got["new"], label="NewDocs")
        assert_that(old.drops, got["old_d"], label="OldDrops")
        assert_that(new.drops, got["new_d"], label="NewDrops")
    assert len([n for n in os.listdir(spill) if n.endswith(".pkl")]) >= len(docs) // 4
    kept = sorted(got["new"].load(), key=lambda r: r["id"])
    assert kept == sorted(got["old"].load(), key=lambda r: r["id"])  # ids, submissions, where
    assert len(kept) == len(docs) - 10  # 5 exact and 5 near copies
    parts = [tmp_path / "drops" / part.path for part in got["new_d"].load()]
    logged = [(r["rule"], r["id"], r["kept"]) for p in parts for r in pq.read_table(p).to_pylist()]
    assert sorted(logged) == sorted((d.reason, d.id, d.kept) for d in got["old_d"].load())
    for name in ("report.json", "report.md"):
        assert (tmp_path / "new" / name).read_text() == (tmp_path / "old" / name).read_text()
    assert json.loads((tmp_path / "new" / "report.json").read_text())["removed"]["near"] == 5
    by_id = {d["id"]: d for d in docs}
    assert all(r == {**by_id[r["id"]], "submissions": r["submissions"]} for r in unspill(kept))

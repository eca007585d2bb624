"""``webtext dedup`` deciding from ids: same output as the in-memory transform, ids in shuffles."""

from __future__ import annotations

import json
import pickle

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor

from dedup.shards import WORK_DIR, build_by_id, build_in_memory
from dedup.spill import SpillReader, doc_ref
from foundation.config import JobConfig
from foundation.shards import Manifest, read_table, shard_name, table_from_rows, write_table
from tests.dedup_docs import doc, edit, prose
from tests.test_dedup_pipeline import _corpus

MAX_KEY_CHARS = 64  # ids and hex hashes; a document or snippet is longer


def _planted() -> list[dict]:
    """The near-dedup corpus plus exact copies, one of them of a document near dedup removes."""
    docs = _corpus()
    docs += [
        doc("n0", docs[2]["text"], karma=1, sub="s_n0"),  # exact copy of n1, which n2 replaces
        doc("x3", prose(2), karma=7),  # exact copy of x1/x2 with the highest karma
        doc("q1", prose(40)),
        doc("q2", edit(prose(40), 0.01, 7), karma=1),
    ]
    for d in docs:
        d["content_hash"] = _hash(d["text"])
        d["id"] = hexid(d["id"])  # the in-memory path's shard writer expects hex ids
    return docs


def hexid(name: str) -> str:
    """A hex id that sorts like ``name`` (ASCII), so survivor ties break the same way."""
    return name.encode().hex()


def _hash(text: str) -> str:
    from pipeline.text import content_hash

    return content_hash(text)


def _shards(directory, docs, per_shard: int = 5) -> list[str]:
    files = [
        write_table(
            table_from_rows(docs[i : i + per_shard]),
            f"{directory}/{shard_name(n, 'parquet')}",
            "parquet",
        )
        for n, i in enumerate(range(0, len(docs), per_shard))
    ]
    Manifest(kind="text", format="parquet", files=files).save(str(directory))
    return [f"{directory}/{f.path}" for f in files]


def _run(build, paths, out) -> None:
    cfg = JobConfig.from_dict({"dedup": {"cc_rounds": 4}})
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        build(p, cfg, paths, str(out))


def _rows(out) -> list[dict]:
    m = Manifest.load(str(out))
    rows = [r for p in m.paths(str(out)) for r in read_table(p).to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def test_same_output_as_the_in_memory_transform_and_shuffles_carry_only_ids(tmp_path):
    paths = _shards(tmp_path / "in", _planted())
    _run(build_in_memory, paths, tmp_path / "old")
    # 23 documents in buckets of 4: the keys are grouped in 6 buckets, pairs in 6 pair buckets.
    labels = _run_checked(paths, tmp_path / "new", tmp_path / "bad.pkl")
    # Every grouping of the dedup carries ids, refs, file names and ints only; no grouping is
    # keyed by content hash or band key: those are grouped from the key files, bucket by bucket.
    assert any("GroupPairFiles" in x for x in labels) and any("GroupClusters" in x for x in labels)
    assert not any("GroupBands" in x or "GroupHashes" in x for x in labels)
    with open(tmp_path / "bad.pkl", "rb") as f:
        assert pickle.load(f) == []
    work = tmp_path / "new" / WORK_DIR
    for suffix in ("spill", "exact", "bands"):
        assert len(list(work.glob(f"*.{suffix}"))) == len(paths)
    assert len(list(work.glob("exact/*.npy"))) == 6 and list(work.glob("pairs/*/*.npy"))
    new_rows = _rows(tmp_path / "new")
    assert new_rows == _rows(tmp_path / "old")
    ids = {bytes.fromhex(r["id"]).decode() for r in new_rows}
    assert "n0" not in ids and "n1" not in ids and "x3" in ids and "q1" in ids
    n2 = next(r for r in new_rows if r["id"] == hexid("n2"))
    assert {s["id"] for s in n2["submissions"]} == {"s_n0", "s_n1", "s_n2"}
    old_m, new_m = Manifest.load(str(tmp_path / "old")), Manifest.load(str(tmp_path / "new"))
    assert new_m.counts == old_m.counts
    assert (new_m.counts["dedup.exact"], new_m.counts["dedup.near"]) == (5, 5)
    # Exact drops are logged by their bucket's task, one part per bucket that removed any.
    assert any(f.startswith("part-dedup-exact-") for f in new_m.extra["drops"]["files"])
    assert new_m.extra["drops"]["rows"] == {"dedup.exact": 5, "dedup.near": 5}
    assert new_m.extra["dedup_report"] == old_m.extra["dedup_report"]
    for name in ("report.json", "report.md"):
        new = (tmp_path / "new" / "_report" / name).read_text()
        assert new == (tmp_path / "old" / "_report" / name).read_text()
    report = json.loads((tmp_path / "new" / "_report" / "report.json").read_text())
    assert report["removed"] == {"exact": 5, "near": 5, "near_existing": 0, "identical_shingles": 0}
    # Output shards follow the input numbering.
    assert {f.path for f in new_m.files} <= {p.rsplit("/", 1)[1] for p in paths}


def test_spill_reads_back_a_row_by_ref(tmp_path):
    from dedup.buckets import BAND, EXACT, read_bucket
    from dedup.by_id import scan_shard
    from dedup.minhash import shingle_hashes
    from foundation.config import DedupConfig

    docs = [doc("a", prose(1)), doc("b", ""), doc("c", prose(2))]
    (path,) = _shards(tmp_path / "in", docs)
    work = str(tmp_path / WORK_DIR)
    assert list(scan_shard((0, path), work, DedupConfig())) == [(0, 3, 2)]  # 3 docs, 2 sketched
    bands = read_bucket(work, [0], "bands", BAND, 0, 1)
    assert sorted(set(bands["ref"].tolist())) == [doc_ref(0, 0), doc_ref(0, 2)]  # "b" is empty
    exact = read_bucket(work, [0], "exact", EXACT, 0, 1)
    assert len(bands) == 40 and sorted(exact["ref"].tolist()) == [0, 1, 2]
    spill = SpillReader(work)
    assert (spill.shingles(doc_ref(0, 2)) == shingle_hashes(prose(2), 5)).all()
    assert spill.meta(doc_ref(0, 1))["id"] == "b" and len(spill.shingles(doc_ref(0, 1))) == 0
    spill.close()


# --- what crosses the shuffles -------------------------------------------------------------------


def _compact(value, where: list) -> None:
    if isinstance(value, (tuple, list)):
        for v in value:
            _compact(v, where)
    elif isinstance(value, str):
        if len(value) > MAX_KEY_CHARS:
            where.append(value[:40])
    elif isinstance(value, bytes | dict) or not isinstance(value, int | float | bool | type(None)):
        where.append(type(value).__name__)


def _check(element, label: str) -> list[tuple[str, str]]:
    found: list = []
    _compact(element, found)
    return [(label, f) for f in found]


def _dump(items, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(sorted(set(items)), f)


class _ShuffleInputs(PipelineVisitor):
    """The inputs of every GroupByKey and Reshuffle under the dedup transform (not its small
    report; a Reshuffle's own GroupByKey carries its input with timestamps)."""

    def __init__(self):
        self.found: list[tuple[str, beam.PCollection]] = []

    def enter_composite_transform(self, node) -> None:
        if isinstance(node.transform, beam.Reshuffle) and node.full_label.startswith("Dedup/"):
            self.found.append((node.full_label, node.inputs[0]))

    def visit_transform(self, node) -> None:
        label = node.full_label
        if (
            isinstance(node.transform, beam.GroupByKey)
            and label.startswith("Dedup/")
            and "/Report/" not in label
            and not any(label.startswith(f"{r}/") for r, _ in self.found)
        ):
            self.found.append((label, node.inputs[0]))


def _run_checked(paths, out, bad_path) -> list[str]:
    """Run the by-id dedup, recording any non-compact value entering its GroupByKeys."""
    cfg = JobConfig.from_dict({"dedup": {"cc_rounds": 4, "bucket_docs": 4}})
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        build_by_id(p, cfg, paths, str(out))
        visitor = _ShuffleInputs()
        p.visit(visitor)
        checked = [
            pcoll | f"Check{i}" >> beam.FlatMap(_check, label)
            for i, (label, pcoll) in enumerate(visitor.found)
        ]
        _ = (
            checked
            | "AllChecked" >> beam.Flatten()
            | beam.combiners.ToList()
            | beam.Map(_dump, str(bad_path))
        )
    return sorted(label for label, _ in visitor.found)

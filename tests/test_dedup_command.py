"""``webtext dedup`` on shard directories: output, incremental index, determinism."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from foundation.shards import Manifest, read_table, shard_name, table_from_rows, write_table
from tests.dedup_docs import doc, edit, prose
from webtext.cli import main

# Small graphs converge in a few rounds; fewer unrolled rounds keep these pipelines quick.
FAST = ["--dedup-cc-rounds", "4"]
IN_PROCESS = ["--output-workers", "1", "--beam=--direct_running_mode=in_memory", *FAST]


def _shards(directory, docs) -> str:
    directory = str(directory)
    files = [
        write_table(
            table_from_rows(docs[i : i + 4]), f"{directory}/{shard_name(n, 'parquet')}", "parquet"
        )
        for n, i in enumerate(range(0, len(docs), 4))
    ]
    Manifest(kind="text", format="parquet", files=files).save(directory)
    return directory


def _ids(directory) -> set[str]:
    m = Manifest.load(str(directory))
    return {r["id"] for p in m.paths(str(directory)) for r in read_table(p).to_pylist()}


def test_dedup_command_and_incremental_index(tmp_path, capsys):
    a = prose(11)
    first = _shards(
        tmp_path / "s1",
        [
            doc("a", a, karma=8),
            doc("b", edit(a, 0.03, 2)),
            doc("c", prose(12)),
            doc("c2", prose(12)),
        ],
    )
    idx, out1 = str(tmp_path / "index"), tmp_path / "o1"
    assert main(["dedup", first, "--out", str(out1), "--write-index", idx, *IN_PROCESS]) == 0
    assert "4 documents in, 2 out (exact 1, near 1" in capsys.readouterr().out
    assert _ids(out1) == {"a", "c"}
    m1 = Manifest.load(str(out1))
    assert m1.counts["dedup.exact"] == 1 and m1.counts["dedup.near"] == 1
    report = json.loads((out1 / "_report" / "report.json").read_text())
    assert report["removed"] == {"exact": 1, "near": 1, "near_existing": 0, "identical_shingles": 0}
    assert (out1 / "_report" / "report.md").exists()
    assert Manifest.load(idx).counts["documents"] == 2
    assert _drop_log(tmp_path / "drops" / "o1", m1) == {
        ("b", "dedup.near", "a", "https://example.com/b"),
        ("c2", "dedup.exact", "c", "https://example.com/c2"),
    }

    # A later month: a near copy of an indexed page, a new page and a copy of that new page.
    second = _shards(
        tmp_path / "s2",
        [
            doc("a2", edit(a, 0.02, 3), karma=99),
            doc("d", prose(13)),
            doc("d2", edit(prose(13), 0.02, 4)),
        ],
    )
    out2 = tmp_path / "o2"
    args = ["dedup", second, "--out", str(out2), "--index", idx, "--write-index", idx, *IN_PROCESS]
    assert main(args) == 0
    assert _ids(out2) == {"d"}
    m2 = Manifest.load(str(out2))
    assert m2.counts["dedup.near_existing"] == 1 and m2.counts["dedup.near"] == 1
    report = json.loads((out2 / "_report" / "report.json").read_text())
    (example,) = [e for e in report["examples"] if e["reason"] == "dedup.near_existing"]
    assert (example["removed"], example["kept"]) == ("a2", "a") and example["jaccard"] > 0.7
    index = Manifest.load(idx)
    assert index.counts["documents"] == 3 and len(index.extra["runs"]) == 2

    # Rerunning the same run gives the same shards and does not index its documents twice
    # (nor drop them as duplicates of themselves).
    assert main(args) == 0
    assert Manifest.load(str(out2)).checksum == m2.checksum
    assert Manifest.load(idx).counts["documents"] == 3


def _drop_log(drops, manifest: Manifest) -> set[tuple[str, str, str, str]]:
    """(id, rule, kept, url) of each logged drop; the log holds exactly what the manifest
    counts."""
    from collections import Counter

    rows = pq.read_table([str(drops / f) for f in manifest.extra["drops"]["files"]]).to_pylist()
    dedup_counts = {k: v for k, v in manifest.counts.items() if k.startswith("dedup.") and v}
    assert Counter(r["rule"] for r in rows) == dedup_counts == manifest.extra["drops"]["rows"]
    return {(r["id"], r["rule"], r["kept"], r["url"]) for r in rows}


def test_dedup_by_id_logs_each_removed_document_with_its_survivor(tmp_path, capsys):
    a = prose(11)
    docs = [doc("a", a, karma=8), doc("b", edit(a, 0.03, 2)), doc("c", prose(12))]
    shards = _shards(tmp_path / "s", [*docs, doc("c2", prose(12))])
    assert main(["dedup", shards, "--out", str(tmp_path / "o"), *IN_PROCESS]) == 0
    manifest = Manifest.load(str(tmp_path / "o"))
    assert _drop_log(tmp_path / "drops" / "o", manifest) == {
        ("b", "dedup.near", "a", "https://example.com/b"),
        ("c2", "dedup.exact", "c", "https://example.com/c2"),
    }


def test_dedup_command_refuses_an_incompatible_index(tmp_path, capsys):
    shards = _shards(tmp_path / "s", [doc("a", prose(1)), doc("b", prose(2))])
    idx = str(tmp_path / "index")
    assert (
        main(["dedup", shards, "--out", str(tmp_path / "o"), "--write-index", idx, *IN_PROCESS])
        == 0
    )
    capsys.readouterr()
    args = [
        "dedup",
        shards,
        "--out",
        str(tmp_path / "o2"),
        "--index",
        idx,
        "--dedup-num-perm",
        "64",
    ]
    assert main([*args, *IN_PROCESS]) == 1
    assert "num_perm=128" in capsys.readouterr().err


@pytest.mark.slow
def test_same_output_with_one_or_two_worker_processes_and_reruns(tmp_path):
    base = [prose(100 + i) for i in range(8)]
    # Ids are hex digests, as the ingest job makes them (the shard writer relies on it).
    docs = [doc(f"a{i:02x}", t, karma=i % 4) for i, t in enumerate(base)]
    docs += [doc(f"b{i:02x}", edit(t, 0.02 * (1 + i % 3), i), karma=3) for i, t in enumerate(base)]
    docs += [doc(f"c{i:02x}", edit(t, 0.03, 50 + i), karma=2) for i, t in enumerate(base[:4])]
    docs += [doc(f"d{i:02x}", prose(300 + i)) for i in range(10)]
    shards = _shards(tmp_path / "s", docs)
    outs = []
    for name, flags in (
        ("one", IN_PROCESS),
        ("two", ["--output-workers", "2", *FAST]),  # FnApiRunner, multi_processing
        ("two-again", ["--output-workers", "2", *FAST]),
    ):
        out = tmp_path / name
        assert main(["dedup", shards, "--out", str(out), *flags]) == 0
        assert not (out / "_work").exists()  # the spill files are removed after the job
        report = json.loads((out / "_report" / "report.json").read_text())
        outs.append((Manifest.load(str(out)).checksum, report))
    assert outs[0] == outs[1] == outs[2]
    assert outs[0][1]["removed"]["near"] >= 6


def test_dedup_that_keeps_nothing_fails_after_committing_its_output(tmp_path, capsys):
    empty, out = _shards(tmp_path / "s", []), tmp_path / "o"
    assert main(["dedup", empty, "--out", str(out), *IN_PROCESS]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("webtext dedup: no documents kept out of 0; dedup: "), last
    assert Manifest.load(str(out)).rows == 0  # committed: the job wrote what it had


def test_shards_of_schema_version_1_still_read(tmp_path, capsys):
    """Text shards written before provenance (version 1: no source, no record columns) are
    still read by every stage; what they write is the current version, provenance null."""
    import pyarrow as pa

    from foundation.shards import SCHEMA_VERSION, TEXT_SCHEMA

    v1 = pa.schema([f for f in TEXT_SCHEMA if f.name not in ("source", "record")])
    docs = [doc("a", prose(21)), doc("b", prose(22))]
    directory = tmp_path / "old"
    rows = [{k: v for k, v in d.items() if k in v1.names} for d in docs]
    path = f"{directory}/{shard_name(0, 'parquet')}"
    files = [write_table(pa.Table.from_pylist(rows, schema=v1), path, "parquet")]
    Manifest(kind="text", format="parquet", files=files, schema_version=1).save(str(directory))
    assert Manifest.load(str(directory)).schema_version == 1

    out = tmp_path / "out"
    assert main(["dedup", str(directory), "--out", str(out), *IN_PROCESS]) == 0
    assert _ids(out) == {"a", "b"}
    assert Manifest.load(str(out)).schema_version == SCHEMA_VERSION == 2
    table = read_table(Manifest.load(str(out)).paths(str(out))[0])
    assert table.column("source").to_pylist() == [None, None]

"""The check end to end: inputs, exactness on real text, reports, decontamination, gate, CLI."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contamination.api import build_filter, check, flag_examples, run_check
from contamination.decontaminate import decontaminate
from contamination.gate import ContaminationGateError, check_gate, default_report_path
from contamination.normalize import ngrams
from contamination.sources import ContaminationInputError, ReadOptions, read_test_set
from foundation import shards
from foundation.config import ContaminationConfig
from webtext.cli import main

CFG = ContaminationConfig(workers=1)


def write_shards(directory: Path, docs: list[tuple[str, str]], per_shard: int = 3) -> str:
    files = []
    for i in range(0, len(docs), per_shard):
        part = docs[i : i + per_shard]
        table = pa.table({"id": [d[0] for d in part], "text": [d[1] for d in part]})
        path = str(directory / shards.shard_name(i // per_shard, "parquet"))
        files.append(shards.write_table(table, path, "parquet"))
    shards.Manifest(kind="text", format="parquet", files=files).save(str(directory))
    return str(directory)


def exact_overlap(train_docs: list[str], test_docs: list[str], n: int) -> tuple[int, int]:
    train = {g for d in train_docs for g in ngrams(d, n)}
    test = [g for d in test_docs for g in ngrams(d, n)]
    return len(test), sum(g in train for g in test)


# --- inputs -------------------------------------------------------------------------------------


def test_reads_text_jsonl_parquet_and_folders(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("line one\n\nline two\nline three\n")
    (tmp_path / "d" / "b.jsonl").write_text('{"q": "json doc", "id": "j1"}\n\n{"q": "second"}\n')
    pq.write_table(pa.table({"q": ["pq doc", None]}), tmp_path / "d" / "c.parquet")
    (tmp_path / "d" / "ignored.bin").write_bytes(b"\x00")
    ids, texts = read_test_set(str(tmp_path / "d"), ReadOptions(text_docs="line", field="q"))
    assert texts == ["line one", "line two", "line three", "json doc", "second", "pq doc", ""]
    assert ids[:4] == ["a.txt:1", "a.txt:3", "a.txt:4", "j1"]
    _, whole = read_test_set(str(tmp_path / "d" / "a.txt"), ReadOptions(text_docs="file"))
    assert whole == ["line one\n\nline two\nline three\n"]
    _, paras = read_test_set(str(tmp_path / "d" / "a.txt"), ReadOptions(text_docs="paragraph"))
    assert paras == ["line one", "line two\nline three\n"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.jsonl", '{"text": "ok"}\n{"body": "x"}\n', r"t\.jsonl:2: no field 'text' \(fields: \["),
        ("t.jsonl", '{"text": "ok"}\n{not json\n', r"t\.jsonl:2: not valid JSON"),
        ("t.jsonl", '{"text": 3}\n', r"t\.jsonl:1: field 'text' is int, not a string"),
        ("t.parquet", "this is not parquet", r"t\.parquet: cannot read Parquet"),
        ("e.txt", "", r"e\.txt: empty file, no documents"),
        ("e.jsonl", "\n\n", r"e\.jsonl: empty file, no documents"),
    ],
)  # fmt: skip
def test_bad_input_files_fail_with_clear_errors(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ContaminationInputError, match=message):
        read_test_set(str(tmp_path / name), ReadOptions())


def test_parquet_missing_column_and_missing_path(tmp_path: Path) -> None:
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(ContaminationInputError, match=r"no column 'text' \(columns: \['body'\]\)"):
        read_test_set(str(tmp_path / "t.parquet"), ReadOptions())
    with pytest.raises(ContaminationInputError, match="no such file"):
        read_test_set(str(tmp_path / "missing.txt"), ReadOptions())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ContaminationInputError, match="folder holds no document files"):
        read_test_set(str(tmp_path / "empty"), ReadOptions())


# --- exactness on real text ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 8])
def test_overlap_equals_exact_set_computation_on_tinyshakespeare(
    corpus: Path, tmp_path: Path, n: int
) -> None:
    text = (corpus / "lm" / "tinyshakespeare" / "input.txt").read_text()
    cut = text.index("\n\n", int(len(text) * 0.9))
    train_docs = [p for p in text[:cut].split("\n\n") if p.strip()]
    test_docs = [p for p in text[cut:].split("\n\n") if p.strip()]
    (tmp_path / "train.txt").write_text(text[:cut])
    (tmp_path / "test.txt").write_text(text[cut:])
    cfg = dataclasses.replace(CFG, n=n, text_docs="paragraph")
    report = run_check(
        str(tmp_path / "train.txt"), {"ts": str(tmp_path / "test.txt")}, str(tmp_path / "out"), cfg
    )
    total, found = exact_overlap(train_docs, test_docs, n)
    r = report.test_sets["ts"]
    assert r.ngrams == total
    # No false negatives; false positives expected << 1 at 1e-8.
    assert r.hits == found
    assert r.overlap_pct == pytest.approx(100.0 * found / total)
    if n == 5:
        assert found > 0  # the check has something to find
    assert r.expected_false_positives < 0.01


def test_overlap_equals_exact_on_real_web_pages(corpus: Path, tmp_path: Path) -> None:
    pages = sorted((corpus / "pages" / "html").glob("*.html.gz"))[:24]
    docs = []
    for p in pages:
        raw = gzip.decompress(p.read_bytes()).decode("utf-8", errors="replace")
        docs.append(re.sub(r"<[^>]+>", " ", raw))
    train, test = docs[:16], [*docs[16:], docs[0][5000:8000], docs[3][:2000]]
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    for i, d in enumerate(train):
        (train_dir / f"p{i}.txt").write_text(d)
    (tmp_path / "test.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in test))
    bloom = build_filter(str(train_dir), CFG)
    report = check(bloom, {"web": str(tmp_path / "test.jsonl")}, CFG)
    total, found = exact_overlap(train, test, 8)
    assert (report.test_sets["web"].ngrams, report.test_sets["web"].hits) == (total, found)
    flags = flag_examples(bloom, test)
    train_grams = {g for d in train for g in ngrams(d, 8)}
    assert [f.dirty for f in flags] == [any(g in train_grams for g in ngrams(t, 8)) for t in test]
    assert flags[-1].dirty and flags[-2].dirty


# --- reports ------------------------------------------------------------------------------------

TRAIN = [
    ("d0", "the quick brown fox jumps over the lazy dog near the river bank today"),
    ("d1", "a completely different document about numpy arrays and bloom filters in python"),
    ("d2", "short doc"),
    ("d3", "another training document that mentions the lazy dog near the river bank"),
]
TEST = [
    "The quick brown fox jumps over the lazy dog near the river bank today!",  # all found
    "nothing here overlaps with the training data in any way at all friends",
    "tiny",
    "half: a completely different document about numpy arrays and bloom filters in python, "
    "and then something else entirely new here",
]


def test_report_files_and_contents(tmp_path: Path) -> None:
    train = write_shards(tmp_path / "run" / "shards", TRAIN)
    (tmp_path / "test.txt").write_text("\n".join(TEST) + "\n")
    cfg = dataclasses.replace(CFG, text_docs="line")
    out = str(tmp_path / "run" / "contamination")
    report = run_check(train, {"mini": str(tmp_path / "test.txt")}, out, cfg)
    data = json.loads((tmp_path / "run" / "contamination" / "report.json").read_text())
    mini = data["test_sets"]["mini"]
    total, found = exact_overlap([t for _, t in TRAIN], TEST, 8)
    assert (mini["ngrams"], mini["hits"]) == (total, found)
    assert mini["overlap_pct"] == pytest.approx(100 * found / total)
    per = mini["per_document"]
    assert per["docs"] == 3  # "tiny" has no 8-gram
    assert per["zero_overlap_share"] == pytest.approx(1 / 3)
    assert per["above_pct_share"]["50.0"] == pytest.approx(1 / 3)
    assert sum(per["histogram"]["counts"]) == 3
    assert mini["top_documents"][0]["doc_id"] == "test.txt:1"
    assert mini["top_documents"][0]["overlap_pct"] == 100.0
    assert mini["expected_false_positives"] == pytest.approx(
        total * data["filter"]["estimated_fp_rate"]
    )
    assert data["manifest_checksum"] == shards.Manifest.load(train).checksum
    assert data["worst"] == {"name": "mini", "overlap_pct": mini["overlap_pct"]}
    assert data["filter"]["hashes"] == 16 and data["filter"]["n"] == 8
    md = (tmp_path / "run" / "contamination" / "report.md").read_text()
    assert "| mini | 4 |" in md
    page = (tmp_path / "run" / "contamination" / "report.html").read_text()
    assert page.count("<svg") == 2  # bar chart + one histogram
    assert not re.search(r"<script|<link|src=|@import|url\(", page)  # self-contained
    assert report.worst() == ("mini", mini["overlap_pct"])


# --- decontamination ----------------------------------------------------------------------------

WORDS = [f"w{i}" for i in range(40)]


def test_decontamination_removes_exactly_the_overlapping_documents(tmp_path: Path) -> None:
    test_docs = [" ".join(WORDS[:20]), "unrelated words " * 3 + " ".join(WORDS[25:38])]
    docs = [
        ("keep-12", "prefix " + " ".join(WORDS[:12]) + " suffix"),  # 12-gram only: kept
        ("drop-13", "PREFIX " + " ".join(WORDS[:13]).upper() + "!"),  # 13-gram, other case
        ("keep-x", "nothing in common here " * 5),
        ("drop-b", "x " + ", ".join(WORDS[25:38])),  # punctuation normalises away
        ("keep-split", " ".join(WORDS[:7]) + ". The end"),
        ("keep-e", ""),
    ]
    src = write_shards(tmp_path / "shards", docs)
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in test_docs))
    res = decontaminate(src, {"t": str(tmp_path / "t.jsonl")}, str(tmp_path / "clean"), n=13)
    test_grams = {g for t in test_docs for g in ngrams(t, 13)}
    expected = {i for i, t in docs if any(g in test_grams for g in ngrams(t, 13))}
    assert expected == {"drop-13", "drop-b"}
    removed = [
        json.loads(x) for x in (tmp_path / "clean" / "removed.jsonl").read_text().splitlines()
    ]
    assert {r["id"] for r in removed} == expected
    assert removed[0]["matches"] == {"t": 1} and removed[0]["example"] == " ".join(WORDS[:13])
    assert res.docs_in == 6 and res.docs_removed == 2
    manifest = shards.Manifest.load(str(tmp_path / "clean"))
    manifest.verify(str(tmp_path / "clean"))
    kept = [
        i
        for b in shards.iter_batches(str(tmp_path / "clean"), ["id"])
        for i in b.column(0).to_pylist()
    ]
    assert kept == [i for i, _ in docs if i not in expected]
    assert manifest.counts == {"docs_in": 6, "docs_removed": 2, "docs": 4}
    logged = manifest.extra["drops"]  # the drop log: one row per removed document
    assert logged["rows"] == {"contamination.ngram_overlap": 2}
    rows = shards.read_table(str(tmp_path / "drops" / "clean" / logged["files"][0])).to_pylist()
    assert {(r["id"], r["stage"]) for r in rows} == {(i, "contamination") for i in expected}
    assert (
        manifest.extra["decontamination"]["source_checksum"] == shards.Manifest.load(src).checksum
    )
    with pytest.raises(FileExistsError):
        decontaminate(src, {"t": str(tmp_path / "t.jsonl")}, str(tmp_path / "clean"))


# --- the gate -----------------------------------------------------------------------------------


def test_gate_missing_current_stale_and_over_threshold(tmp_path: Path) -> None:
    shards_dir = write_shards(tmp_path / "run" / "shards", TRAIN)
    assert default_report_path(shards_dir) == str(
        tmp_path / "run" / "contamination" / "report.json"
    )
    with pytest.raises(
        ContaminationGateError, match=r"no contamination report.*webtext contamination check"
    ):
        check_gate(shards_dir)
    missing = check_gate(shards_dir, allow=True)
    assert not missing.ok and missing.allowed and missing.report_checksum is None
    (tmp_path / "test.txt").write_text("\n".join(TEST) + "\n")
    cfg = dataclasses.replace(CFG, text_docs="line")
    report = run_check(
        shards_dir,
        {"mini": str(tmp_path / "test.txt")},
        str(tmp_path / "run" / "contamination"),
        cfg,
    )
    pct = report.test_sets["mini"].overlap_pct
    res = check_gate(shards_dir)
    assert res.ok and res.worst_test_set == "mini" and res.worst_overlap_pct == pytest.approx(pct)
    assert res.manifest_checksum == shards.Manifest.load(shards_dir).checksum
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.ok = False  # type: ignore[misc]
    with pytest.raises(
        ContaminationGateError, match=r"'mini' overlaps the shards by .* > max_overlap_pct=1\.0"
    ):
        check_gate(shards_dir, max_overlap_pct=1.0)
    assert check_gate(shards_dir, max_overlap_pct=1.0, allow=True).allowed
    # New shards (same directory, different content): the report is stale.
    write_shards(tmp_path / "run" / "shards", [*TRAIN, ("d4", "one more document")])
    with pytest.raises(ContaminationGateError, match="stale report"):
        check_gate(shards_dir)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_check_prints_table_and_fails_cleanly(tmp_path: Path, capsys) -> None:
    text = "\n".join(t for _, t in TRAIN)
    (tmp_path / "train.txt").write_text(text)
    (tmp_path / "test.txt").write_text("\n".join(TEST))
    argv = ["contamination", "check", "--train", str(tmp_path / "train.txt"),
            "--test", f"mini={tmp_path / 'test.txt'}", "--out", str(tmp_path / "out"),
            "--contamination-text-docs", "line", "--contamination-workers", "1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"mini\s+4\s+\d+\s+\d+\s+\d+\.\d\d", out)
    assert (tmp_path / "out" / "report.html").exists()
    (tmp_path / "bad.jsonl").write_text('{"body": 1}\n')
    argv[5] = f"bad={tmp_path / 'bad.jsonl'}"
    assert main(argv) == 1
    assert "bad.jsonl:1: no field 'text'" in capsys.readouterr().err


@pytest.mark.slow
def test_parallel_build_equals_serial(corpus: Path, tmp_path: Path) -> None:
    text = (corpus / "lm" / "tinyshakespeare" / "input.txt").read_text()
    paras = text.split("\n\n")
    for i in range(4):
        (tmp_path / f"part{i}.txt").write_text("\n\n".join(paras[i::4]))
    files = [str(tmp_path / f"part{i}.txt") for i in range(4)]
    cfg = dataclasses.replace(CFG, text_docs="paragraph")
    serial = build_filter(files, cfg)
    parallel = build_filter(files, dataclasses.replace(cfg, workers=2))
    assert (serial.words == parallel.words).all()
    assert serial.meta == parallel.meta

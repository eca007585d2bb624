"""Capacity plan arithmetic on known inputs, and the ``webtext plan`` command."""

from __future__ import annotations

import math

import pytest

from foundation.config import ContaminationConfig, DedupConfig
from webtext.cli import main
from webtext.plan import (
    Figures,
    Settings,
    StageRate,
    Target,
    banding,
    bloom_bits_per_item,
    bloom_hashes,
    human,
    plan,
)


def _by_name(lines) -> dict[tuple[str, str], float]:
    return {(line.section, line.name): line.value for line in lines}


@pytest.mark.parametrize(
    ("p", "bits", "k"),
    [(1e-8, 38.34, 27), (1e-2, 9.585, 7), (0.5, 1.443, 1)],
)
def test_bloom_bits_and_hashes(p: float, bits: float, k: int) -> None:
    assert bloom_bits_per_item(p) == pytest.approx(bits, abs=0.01)
    assert bloom_hashes(p) == k


def test_bloom_rejects_impossible_rates() -> None:
    with pytest.raises(ValueError, match="fp_rate"):
        bloom_bits_per_item(0.0)


def test_banding_follows_the_dedup_config() -> None:
    assert banding(DedupConfig(num_perm=128, bands=16, rows=8)) == (16, 8)
    b, r = banding(DedupConfig())
    assert b * r <= 128 and b > 1 and r > 1


# Round figures so that every line can be checked by hand.
FIG = Figures(
    dump_bytes_per_submission=500,
    submissions_per_link=4,
    warc_bytes_per_page=30_000,
    parquet_text_ratio=0.5,
    shard_meta_bytes_per_doc=100,
    tokens_per_byte=0.25,
    token_bytes=2,
    bytes_per_word=5,
    distinct_ngrams_per_word=1.0,
    url_bytes=80,
    submission_ref_bytes=40,
    doc_id_bytes=32,
    record_overhead_bytes=8,
    signature_value_bytes=4,
    band_hash_bytes=8,
    shingle_hash_bytes=4,
    url_stage=StageRate(10_000, 1e9),
    pages=StageRate(100, 2e9, 1_000),
    dedup=StageRate(1_000, 1e9),
    contamination=StageRate(1e7, 0.5e9),
    tokenize=StageRate(2e6, 0.5e9),
)
SETTINGS = Settings(
    dedup=DedupConfig(num_perm=128, bands=20, rows=6),
    contamination=ContaminationConfig(n=8, fp_rate=1e-8),
)


def test_plan_on_webtext_sized_input() -> None:
    t = Target(links=45e6, docs=8e6, text_bytes=40e9)
    v = _by_name(plan(t, FIG, SETTINGS))
    words = 40e9 / 5  # 8e9
    assert v[("input", "submissions read")] == 180e6
    assert v[("input", "words")] == words
    assert v[("storage", "Pushshift dumps (zstd)")] == 180e6 * 500
    assert v[("storage", "fetched pages (WARC, gzip)")] == 45e6 * 30_000
    assert v[("storage", "text shards (Parquet zstd)")] == 40e9 * 0.5 + 8e6 * 100
    assert v[("storage", "token shards")] == 40e9 * 0.25 * 2  # 20 GB
    assert v[("train", "training tokens")] == 10e9
    assert v[("train", "tokens per document")] == 1250
    assert v[("shuffle", "URL dedup (by canonical URL)")] == 45e6 * (80 + 40 + 8)
    assert v[("shuffle", "MinHash band keys (20 bands x 6 rows)")] == 8e6 * 20 * (8 + 32 + 8)
    assert v[("shuffle", "MinHash verification (shingles)")] == 8e6 * (1000 * 4 + 32 + 8)
    assert v[("bloom", "distinct 8-grams")] == words
    assert v[("bloom", "hash functions")] == 27
    standard = v[("bloom", "standard filter memory")]
    assert standard == pytest.approx(words * 38.34 / 8, rel=1e-3)  # about 38.3 GB
    blocked = v[("bloom", "webtext blocked filter memory")]
    assert standard < blocked < 1.5 * standard  # the blocked design pays ~1.39x at 1e-8
    assert v[("index", "signatures")] == 8e6 * 128 * 4
    assert v[("index", "band hashes")] == 8e6 * 20 * 8
    per_doc = 32 + 128 * 4 + 20 * 8 + 1000 * 4
    assert v[("index", "total with ids and shingles")] == 8e6 * per_doc
    storage_total = (
        sum(line.value for line in plan(t, FIG, SETTINGS) if line.section == "storage")
        - v[("storage", "total")]
    )
    assert v[("storage", "total")] == pytest.approx(storage_total)


def test_plan_scales_linearly_except_per_item_figures() -> None:
    t = Target(links=45e6, docs=8e6, text_bytes=40e9)
    one = _by_name(plan(t, FIG, SETTINGS))
    ten = _by_name(plan(t.scaled(10), FIG, SETTINGS))
    for key, value in one.items():
        if key[1] in ("tokens per document", "hash functions") or key[1].startswith("bits per"):
            assert ten[key] == value, key
        elif key[1] == "webtext blocked filter memory":
            assert ten[key] == pytest.approx(10 * value, rel=0.01)
        elif key[0] == "memory":  # fixed + per item: a bounded stage does not grow at all
            assert value <= ten[key] <= 10 * value, key
        else:
            assert ten[key] == pytest.approx(10 * value), key


def test_time_and_memory_per_stage_from_measured_rates() -> None:
    t = Target(links=45e6, docs=8e6, text_bytes=40e9)
    v = _by_name(plan(t, FIG, SETTINGS))
    assert v[("time", "ingest URL stage")] == pytest.approx(180e6 / 10_000)
    assert v[("time", "ingest pages (WARC replay)")] == pytest.approx(45e6 / 100)
    assert v[("time", "dedup")] == pytest.approx(8e6 / 1_000)
    assert v[("time", "contamination check")] == pytest.approx(40e9 / 1e7)
    assert v[("time", "tokenize")] == pytest.approx(40e9 / 2e6)
    assert v[("time", "total")] == pytest.approx(18_000 + 450_000 + 8_000 + 4_000 + 20_000)
    assert v[("memory", "ingest URL stage peak")] == 1e9
    assert v[("memory", "ingest pages (WARC replay) peak")] == pytest.approx(2e9 + 45e6 * 1_000)
    assert v[("memory", "contamination check peak")] == 0.5e9


def test_explicit_submissions_override_the_ratio() -> None:
    v = _by_name(plan(Target(1e6, 1e5, 1e9, submissions=9e6), FIG, SETTINGS))
    assert v[("input", "submissions read")] == 9e6
    assert v[("storage", "Pushshift dumps (zstd)")] == 9e6 * 500


def test_target_must_be_positive() -> None:
    with pytest.raises(ValueError, match="docs"):
        Target(links=1, docs=0, text_bytes=1)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (40e9, "bytes", "40 GB"),
        (1.3e12, "bytes", "1.3 TB"),
        (27, "count", "27"),
        (45e6, "count", "45 M"),
        (42, "seconds", "42 s"),
        (5_400, "seconds", "1.5 h"),
        (2 * 86_400, "seconds", "2 d"),
    ],
)
def test_human_units(value: float, unit: str, text: str) -> None:
    assert human(value, unit) == text
    assert human(math.nan, unit) == "n/a"


def test_plan_command_prints_both_scales(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["plan", "--links", "45e6", "--docs", "8e6", "--text-gb", "40", "--scale", "10"]) == 0
    )
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[2:4] == ["1x", "10x"]
    bits = next(line for line in out.splitlines() if "bits per item" in line)
    assert "38.3" in bits
    assert "training tokens" in out and "Pushshift dumps" in out
    assert "dedup peak" in out and "contamination check" in out


def test_plan_command_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--docs", "0"]) == 2
    assert "docs" in capsys.readouterr().err

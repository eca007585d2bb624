"""Query test sets against a training filter: GPT-2's Table 6 figure and per-document detail.

Input: a :class:`BloomFilter` and test sets (``{name: (ids, texts)}``). Output: :class:`Report`.
The headline figure is the share of a test set's n-gram occurrences found in the filter; every
occurrence counts, as a token-level overlap would. A test set's expected false positives are its
n-grams times the filter's estimated false-positive rate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from contamination.bloom import BloomFilter, standard_bits
from contamination.ngrams import NgramHasher

REPORT_VERSION = 1
THRESHOLDS_PCT = (1.0, 10.0, 50.0)
HIST_EDGES_PCT = tuple(float(x) for x in range(0, 101, 10))
TOP_DOCS = 10


@dataclass(frozen=True)
class ExampleFlag:
    """One example's overlap with the training filter; dirty if any n-gram is found."""

    ngrams: int
    hits: int

    @property
    def dirty(self) -> bool:
        return self.hits > 0

    @property
    def overlap_pct(self) -> float:
        return 100.0 * self.hits / self.ngrams if self.ngrams else 0.0


@dataclass(frozen=True)
class DocOverlap:
    doc_id: str
    ngrams: int
    hits: int
    overlap_pct: float
    preview: str


@dataclass(frozen=True)
class TestSetResult:
    name: str
    path: str
    docs: int
    docs_with_ngrams: int
    ngrams: int
    hits: int
    overlap_pct: float
    expected_false_positives: float
    expected_fp_pct: float
    per_document: dict[str, Any]
    top_documents: list[DocOverlap]


@dataclass(frozen=True)
class Report:
    n: int
    train: dict[str, Any]
    filter: dict[str, Any]
    test_sets: dict[str, TestSetResult]
    created: float = field(default_factory=time.time)
    version: int = REPORT_VERSION

    def worst(self) -> tuple[str | None, float]:
        """The test set with the highest overlap and its overlap_pct (None, 0.0 if none)."""
        if not self.test_sets:
            return None, 0.0
        name = max(self.test_sets, key=lambda k: self.test_sets[k].overlap_pct)
        return name, self.test_sets[name].overlap_pct

    def to_dict(self) -> dict[str, Any]:
        name, pct = self.worst()
        d = asdict(self)
        d["worst"] = {"name": name, "overlap_pct": pct}
        d["manifest_checksum"] = self.train.get("checksum")
        return d


def flag_counts(bloom: BloomFilter, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(n-grams, hits) per text, as int64 arrays."""
    nh = NgramHasher(bloom.n).hash_docs(texts)
    hit = bloom.contains(nh.hashes)
    ngrams = np.bincount(nh.doc, minlength=len(texts)).astype(np.int64)
    hits = np.bincount(nh.doc[hit], minlength=len(texts)).astype(np.int64)
    return ngrams, hits


def flag_examples(bloom: BloomFilter, texts: Sequence[str]) -> list[ExampleFlag]:
    """Per example: its n-grams and how many the filter holds (``.dirty``: any at all)."""
    ngrams, hits = flag_counts(bloom, texts)
    return [ExampleFlag(int(a), int(b)) for a, b in zip(ngrams, hits, strict=True)]


def _per_document(ngrams: np.ndarray, hits: np.ndarray) -> dict[str, Any]:
    """Distribution of per-document overlap over the documents that have any n-gram."""
    has = ngrams > 0
    pct = 100.0 * hits[has] / ngrams[has]
    counts, _ = np.histogram(pct, bins=HIST_EDGES_PCT)
    empty = not len(pct)
    return {
        "docs": len(pct),
        "median_pct": 0.0 if empty else float(np.median(pct)),
        "mean_pct": 0.0 if empty else float(pct.mean()),
        "zero_overlap_share": 1.0 if empty else float((pct == 0).mean()),
        "above_pct_share": {
            str(t): 0.0 if empty else float((pct > t).mean()) for t in THRESHOLDS_PCT
        },
        "histogram": {
            "edges_pct": list(HIST_EDGES_PCT),
            "counts": counts.tolist(),
            "zero": int((pct == 0).sum()),
        },
    }


def check_test_set(
    bloom: BloomFilter, name: str, path: str, ids: Sequence[str], texts: Sequence[str]
) -> TestSetResult:
    ngrams, hits = flag_counts(bloom, texts)
    total, found = int(ngrams.sum()), int(hits.sum())
    fp = float(bloom.meta.get("estimated_fp_rate", bloom.estimated_fp_rate()))
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(ngrams > 0, 100.0 * hits / np.maximum(ngrams, 1), 0.0)
    order = np.lexsort((-hits, -pct))[:TOP_DOCS]
    top = [
        DocOverlap(str(ids[i]), int(ngrams[i]), int(hits[i]), float(pct[i]),
                   " ".join(texts[i].split())[:160])
        for i in order
        if hits[i] > 0
    ]  # fmt: skip
    return TestSetResult(
        name=name,
        path=path,
        docs=len(texts),
        docs_with_ngrams=int((ngrams > 0).sum()),
        ngrams=total,
        hits=found,
        overlap_pct=100.0 * found / total if total else 0.0,
        expected_false_positives=total * fp,
        expected_fp_pct=100.0 * fp,
        per_document=_per_document(ngrams, hits),
        top_documents=top,
    )


def check(
    bloom: BloomFilter,
    test_sets: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    paths: Mapping[str, str] | None = None,
    train: Mapping[str, Any] | None = None,
) -> Report:
    """Check every test set (``{name: (ids, texts)}``) against ``bloom``."""
    est = bloom.estimated_fp_rate()
    bloom.meta["estimated_fp_rate"] = est
    results = {
        name: check_test_set(bloom, name, (paths or {}).get(name, ""), ids, texts)
        for name, (ids, texts) in test_sets.items()
    }
    items = int(bloom.meta.get("items", 0))
    target = float(bloom.meta.get("target_fp_rate", est))
    filt = {
        **bloom.header(),
        "bytes": bloom.nbytes,
        "fill_ratio": bloom.fill_ratio(),
        "estimated_fp_rate": est,
        "standard_filter_bytes": standard_bits(items, target) / 8,
        "memory_ratio": bloom.bits / standard_bits(items, target),
    }
    return Report(n=bloom.n, train=dict(train or {}), filter=filt, test_sets=results)

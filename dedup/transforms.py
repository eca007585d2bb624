"""Near-duplicate removal in Beam: MinHash -> LSH bands -> pairs -> clusters -> survivors.

API::

    near = docs | "NearDedup" >> NearDedup(cfg.dedup)          # docs: PCollection[dict]
    near.documents   # PCollection[dict | Drop]: every input document once, as itself, as its
                     # cluster's survivor (carrying the cluster's submissions, merge_cluster) or
                     # as Drop("dedup.near"|"dedup.near_existing", where=id,
                     #          detail="kept=<id> jaccard=<j>")
    near.clusters    # PCollection[ClusterInfo]: one per duplicate cluster
    near.sketches    # PCollection[Sketch]: signatures of the kept documents (for the index)
    near.stats       # PCollection[(name, n)]: counts to sum (documents_in, candidate_pairs, ...)
    near.params      # PCollection[dict]: one element, the parameters used (for reports)
    extras = near.report(RUN_DIR + "/dedup", extra_stats=None)   # writes report.json and
                     # report.md there; one ("dedup_report", summary) element for the run's
                     # final commit step. extra_stats: PCollection[(name, n)], e.g. the
                     # ("dedup.exact", n) counts of exact dedup, shown in the report
    idx = near.sketches | WriteIndex(PATH, cfg.dedup, run_key(OUT))   # dedup/index.py:
                     # extends the index at PATH; one ("dedup_index", summary) element

Steps: documents are sketched in batches (vectorised signatures, ``dedup/minhash.py``); every
band of every sketch is keyed by (band, band hash) and grouped; a bucket yields candidate pairs
(all pairs in small buckets, a star plus a chain in large ones, so a bucket of boilerplate
copies costs linear, not quadratic, work); distinct pairs are verified by joining both sketches
(exact Jaccard of the shingle sets, or the MinHash estimate); the verified pairs are clustered
transitively by distributed connected components (``dedup/components.py``), so A~B~C with A!~C
is one cluster; each cluster keeps one document by ``dedup.survivor.merge_cluster``. With
``cfg.index`` set, the index's sketches join the graph as existing documents: a cluster holding
one removes all its new documents ("dedup.near_existing"), and pairs of two indexed documents
are never formed. Documents without any token are never near duplicates and pass through.
Results do not depend on bundling or worker count: every decision is a function of ids and
shingle sets, and component labels are minimum ids.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
import xxhash

from dedup.components import ConnectedComponents
from dedup.minhash import Banding, banding, estimated_jaccard, jaccard
from dedup.report import RemovedPair, build_report, snippet, to_markdown
from dedup.sketch import Sketch, sketch_batch
from dedup.survivor import merge_cluster
from foundation import storage
from foundation.config import DedupConfig
from foundation.drops import reason_one
from foundation.records import Drop

NEAR = "dedup.near"
NEAR_EXISTING = "dedup.near_existing"
FULL_PAIRS_MAX = 20  # buckets up to this size yield every pair, larger ones star + chain
EXAMPLES = 10
BATCH = 256


@dataclass(frozen=True)
class Member:
    """One node of a duplicate cluster: a new document (with its sketch) or an indexed one."""

    id: str
    sketch: Sketch | None
    doc: dict | None = None  # None for an indexed (existing) document


@dataclass(frozen=True)
class ClusterInfo:
    label: str  # smallest id in the cluster
    size: int
    kept: str  # survivor id, or the indexed document the new ones duplicate
    existing: bool
    removed: tuple[RemovedPair, ...]


def run_params(cfg: DedupConfig, band: Banding) -> dict[str, Any]:
    return {
        "num_perm": cfg.num_perm,
        "seed": cfg.seed,
        "ngram": cfg.ngram,
        "threshold": cfg.threshold,
        "bands": band.bands,
        "rows": band.rows,
        "fn_weight": cfg.fn_weight,
        "verify": cfg.verify,
        "index": cfg.index,
        "shingle_hash": "xxh3_64 per token, combined; datasketch affine32 permutations",
    }


# --- candidate pairs -----------------------------------------------------------------------------


def _band_keys(sketch: Sketch, band: Banding) -> Iterator[tuple[tuple[int, int], tuple[str, bool]]]:
    for i, h in enumerate(sketch.band_keys(band)):
        yield (i, h), (sketch.id, sketch.existing)


def bucket_pairs(members: Iterable[tuple[str, bool]]) -> Iterator[tuple[str, str]]:
    """Candidate pairs (a < b) of one LSH bucket, never two indexed documents.

    A bucket's members agree on a whole band, so they are alike; past FULL_PAIRS_MAX members
    each is paired with the smallest id and with its successor, which keeps them connected
    without quadratic work.
    """
    existing = {}
    for doc_id, is_existing in members:
        existing[doc_id] = existing.get(doc_id, True) and is_existing
    ids = sorted(existing)
    if len(ids) <= FULL_PAIRS_MAX:
        pairs: Iterable[tuple[str, str]] = itertools.combinations(ids, 2)
    else:
        pairs = itertools.chain(((ids[0], b) for b in ids[1:]), itertools.pairwise(ids[1:]))
    for a, b in pairs:
        if not (existing[a] and existing[b]):
            yield a, b


def _bucket(_key: tuple[int, int], members: Iterable[tuple[str, bool]]):
    return bucket_pairs(members)


# --- verification --------------------------------------------------------------------------------


def _first_half(_id: str, grouped: dict[str, list]) -> Iterator[tuple[str, tuple[str, Sketch]]]:
    sketches = grouped["sketch"]
    if not sketches:
        return
    for b in grouped["pair"]:
        yield b, (_id, sketches[0])


def similarity(a: Sketch, b: Sketch, mode: str) -> float:
    if mode == "estimate":
        return estimated_jaccard(a.signature_array(), b.signature_array())
    return jaccard(a.shingle_array(), b.shingle_array())


def _verify(
    item: tuple[str, dict[str, list]], mode: str, threshold: float
) -> Iterator[tuple[str, str]]:
    _id, grouped = item
    sketches = grouped["sketch"]
    if not sketches:
        return
    for a, sketch_a in grouped["half"]:
        if similarity(sketch_a, sketches[0], mode) >= threshold:
            yield a, _id


# --- clusters ------------------------------------------------------------------------------------


def _assemble(doc_id: str, grouped: dict[str, list]) -> Iterator[tuple[str, Any]]:
    """Route one id: a free document (+ its sketch), or members of the cluster it belongs to."""
    docs, sketches, labels = grouped["doc"], grouped["sketch"], grouped["label"]
    new = [s for s in sketches if not s.existing]
    old = [s for s in sketches if s.existing]
    label = labels[0] if labels else (doc_id if old and docs else None)
    if label is None:
        for doc in docs:
            yield "doc", doc
        for s in new:
            yield "sketch", s
        return
    for s in old:
        yield "member", (label, Member(doc_id, s))
    for doc in docs:
        yield "member", (label, Member(doc_id, new[0] if new else None, doc))


def _pair(removed: Member, kept: Member, reason: str) -> RemovedPair:
    sim = (
        jaccard(removed.sketch.shingle_array(), kept.sketch.shingle_array())
        if removed.sketch and kept.sketch
        else 0.0
    )
    return RemovedPair(
        removed=removed.id,
        kept=kept.id,
        jaccard=round(sim, 6),
        reason=reason,
        removed_text=snippet(removed.doc["text"] or "") if removed.doc else "",
        kept_text=snippet(kept.doc["text"] or "") if kept.doc else "",
    )


def resolve_cluster(label: str, members: Iterable[Member]) -> Iterator[tuple[str, Any]]:
    """Survivor (or the indexed original), drops, the cluster's info and the kept sketch."""
    members = sorted(members, key=lambda m: (m.doc is not None, m.id))
    old = [m for m in members if m.doc is None]
    new = [m for m in members if m.doc is not None]
    pairs: list[RemovedPair] = []
    if old:
        for m in new:
            # The most similar indexed document (the smallest id among equals: old is sorted).
            candidates = [_pair(m, o, NEAR_EXISTING) for o in old]
            pairs.append(max(candidates, key=lambda c: c.jaccard))
        kept = old[0].id
    elif new:
        survivor, removed = merge_cluster([m.doc for m in new])
        by_id = {m.id: m for m in new}
        keep = by_id[survivor["id"]]
        pairs = [_pair(by_id[d["id"]], keep, NEAR) for d in removed]
        kept = keep.id
        yield "doc", survivor
        if keep.sketch is not None:
            yield "sketch", keep.sketch
    else:
        return
    urls = {m.id: m.doc.get("url", "") for m in new}
    for p in pairs:
        detail = f"kept={p.kept} jaccard={p.jaccard}"
        yield (
            "drop",
            Drop(
                p.reason,
                where=p.removed,
                detail=detail,
                id=p.removed,
                url=urls[p.removed],
                kept=p.kept,
            ),
        )
    yield "cluster", ClusterInfo(label, len(members), kept, bool(old), tuple(pairs))


# --- the transform -------------------------------------------------------------------------------


def _tag_is(item: tuple[str, Any], tag: str) -> bool:
    return item[0] == tag


def _value(item: tuple[str, Any]) -> Any:
    return item[1]


def _by_id(doc: dict) -> tuple[str, dict]:
    return doc["id"], doc


def _sketch_by_id(s: Sketch) -> tuple[str, Sketch]:
    return s.id, s


def _count(_: object, name: str) -> tuple[str, int]:
    return name, 1


def _split(pcoll, tags: tuple[str, ...], prefix: str) -> dict[str, Any]:
    return {
        tag: pcoll
        | f"{prefix}{tag.title()}" >> beam.Filter(_tag_is, tag)
        | f"{prefix}{tag.title()}Value" >> beam.Map(_value)
        for tag in tags
    }


class NearDedupResult(NamedTuple):
    documents: beam.PCollection
    clusters: beam.PCollection
    sketches: beam.PCollection
    stats: beam.PCollection
    params: beam.PCollection

    def report(self, directory: str, extra_stats=None, label: str = "NearDedupReport"):
        """Write report.json and report.md into ``directory``; one ("dedup_report", dict).

        ``extra_stats``: more (name, n) counts, e.g. ("dedup.exact", 1) per exact-dedup drop,
        which the report shows as removed by exact dedup.
        """
        stats = self.stats
        if extra_stats is not None:
            stats = (stats, extra_stats) | f"{label}Stats" >> beam.Flatten()
        return self.clusters | label >> NearDedupReport(stats, self.params, directory)


class NearDedup(beam.PTransform):
    """PCollection[dict] (TEXT_SCHEMA rows) -> NearDedupResult (see the module docstring)."""

    def __init__(self, cfg: DedupConfig, skip_run: str | None = None):
        super().__init__()
        self.cfg = cfg
        self.band = banding(cfg.threshold, cfg.num_perm, cfg.fn_weight, cfg.bands, cfg.rows)
        self.skip_run = skip_run
        self.index_paths: list[str] = []
        self.reuse_bands = False
        if cfg.index:
            from dedup.index import index_files

            self.index_paths, self.reuse_bands = index_files(cfg.index, cfg, self.band, skip_run)

    def expand(self, docs):
        cfg, band = self.cfg, self.band
        p = docs.pipeline
        sketches = (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=BATCH)
            | "Sketch" >> beam.FlatMap(sketch_batch, cfg)
        )
        all_sketches = sketches
        if self.index_paths:
            from dedup.index import read_index_file

            existing = (
                p
                | "IndexFiles" >> beam.Create(self.index_paths)
                | "SpreadIndexFiles" >> beam.Reshuffle()
                | "ReadIndex" >> beam.FlatMap(read_index_file, self.reuse_bands)
            )
            all_sketches = (sketches, existing) | "WithIndex" >> beam.Flatten()
        pairs = (
            all_sketches
            | "BandKeys" >> beam.FlatMap(_band_keys, band)
            | "GroupBands" >> beam.GroupByKey()
            | "BucketPairs" >> beam.FlatMapTuple(_bucket)
            | "DistinctPairs" >> beam.Distinct()
        )
        keyed_sketches = all_sketches | "SketchById" >> beam.Map(_sketch_by_id)
        if cfg.verify == "none":
            edges = pairs
        else:
            halves = (
                {"pair": pairs, "sketch": keyed_sketches}
                | "JoinFirst" >> beam.CoGroupByKey()
                | "FirstHalf" >> beam.FlatMapTuple(_first_half)
            )
            edges = (
                {"half": halves, "sketch": keyed_sketches}
                | "JoinSecond" >> beam.CoGroupByKey()
                | "Verify" >> beam.FlatMap(_verify, cfg.verify, cfg.threshold)
            )
        labels = edges | "Components" >> ConnectedComponents(cfg.cc_rounds)
        routed = _split(
            {"doc": docs | "DocById" >> beam.Map(_by_id), "sketch": keyed_sketches, "label": labels}
            | "JoinDocs" >> beam.CoGroupByKey()
            | "Assemble" >> beam.FlatMapTuple(_assemble),
            ("doc", "sketch", "member"),
            "Routed",
        )
        resolved = _split(
            routed["member"]
            | "GroupClusters" >> beam.GroupByKey()
            | "Resolve" >> beam.FlatMapTuple(resolve_cluster),
            ("doc", "drop", "sketch", "cluster"),
            "Resolved",
        )
        documents = (
            routed["doc"],
            resolved["doc"],
            resolved["drop"],
        ) | "Documents" >> beam.Flatten()
        kept_sketches = (routed["sketch"], resolved["sketch"]) | "KeptSketches" >> beam.Flatten()
        stats = (
            docs | "CountIn" >> beam.Map(_count, "documents_in"),
            sketches | "CountSketched" >> beam.Map(_count, "documents_sketched"),
            pairs | "CountPairs" >> beam.Map(_count, "candidate_pairs"),
            edges | "CountEdges" >> beam.Map(_count, "duplicate_pairs"),
            resolved["drop"] | "CountDrops" >> beam.Map(reason_one),
            resolved["cluster"] | "CountIdentical" >> beam.FlatMap(_identical),
        ) | "Stats" >> beam.Flatten()
        params = p | "Params" >> beam.Create([run_params(cfg, band)])
        return NearDedupResult(documents, resolved["cluster"], kept_sketches, stats, params)


def _identical(cluster: ClusterInfo) -> Iterator[tuple[str, int]]:
    for p in cluster.removed:
        if p.jaccard >= 1.0:
            yield "identical", 1


# --- the report ----------------------------------------------------------------------------------


def _size(cluster: ClusterInfo) -> tuple[int, int]:
    return cluster.size, 1


def _removed_pairs(cluster: ClusterInfo) -> Iterator[tuple[None, RemovedPair]]:
    for pair in cluster.removed:
        yield None, pair


def _least_similar(pair: RemovedPair) -> tuple[float, str]:
    return pair.jaccard, pair.removed


def _sample_key(pair: RemovedPair) -> int:
    return xxhash.xxh64_intdigest(pair.removed.encode())


def _tagged(value: Any, tag: str) -> tuple[None, tuple[str, Any]]:
    return None, (tag, value)


def _tagged_value(kv: tuple[None, Any], tag: str) -> tuple[None, tuple[str, Any]]:
    return kv[0], (tag, kv[1])


def _write_report(
    grouped: tuple[None, Iterable[tuple[str, Any]]], directory: str
) -> tuple[str, dict[str, Any]]:
    _key, items = grouped
    counts: dict[str, int] = {}
    sizes: dict[int, int] = {}
    examples: list[RemovedPair] = []
    params: dict[str, Any] = {}
    for tag, value in items:
        if tag == "count":
            counts[value[0]] = value[1]
        elif tag == "size":
            sizes[value[0]] = value[1]
        elif tag == "params":
            params = value
        else:
            examples.extend(value)
    unique = {e.removed: e for e in examples}
    chosen = sorted(unique.values(), key=_least_similar)
    report = build_report(counts, sizes, chosen, params)
    import json

    storage.write_text(storage.join(directory, "report.json"), json.dumps(report, indent=2) + "\n")
    storage.write_text(storage.join(directory, "report.md"), to_markdown(report))
    summary = {k: v for k, v in report.items() if k != "examples"}
    return "dedup_report", summary


class NearDedupReport(beam.PTransform):
    """PCollection[ClusterInfo] + stats + params -> one ("dedup_report", summary) element."""

    def __init__(self, stats, params, directory: str):
        super().__init__()
        self.stats, self.params, self.directory = stats, params, directory

    def expand(self, clusters):
        half = EXAMPLES // 2
        # Keyed: a global Top yields from finish_bundle, which Beam's DaskRunner loses.
        removed = clusters | "RemovedPairs" >> beam.FlatMap(_removed_pairs)
        parts = (
            self.stats
            | "SumStats" >> beam.CombinePerKey(sum)
            | "TagCounts" >> beam.Map(_tagged, "count"),
            clusters
            | "Sizes" >> beam.Map(_size)
            | "SumSizes" >> beam.CombinePerKey(sum)
            | "TagSizes" >> beam.Map(_tagged, "size"),
            removed
            | "LeastSimilar" >> beam.combiners.Top.SmallestPerKey(half, key=_least_similar)
            | "TagLeast" >> beam.Map(_tagged_value, "examples"),
            removed
            | "Sample" >> beam.combiners.Top.SmallestPerKey(EXAMPLES - half, key=_sample_key)
            | "TagSample" >> beam.Map(_tagged_value, "examples"),
            self.params | "TagParams" >> beam.Map(_tagged, "params"),
        )
        return (
            parts
            | "Gather" >> beam.Flatten()
            | "GroupAll" >> beam.GroupByKey()
            | "Write" >> beam.Map(_write_report, self.directory)
        )

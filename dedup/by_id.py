"""``webtext dedup`` on shards, deciding from ids: only ids, hashes and band keys are shuffled.

    paths --DedupById(cfg, out, work)--> DedupOutputs(files, drops, extras)

1. ``Scan`` reads each input shard once: per document it computes the shingle set, signature
   and band hashes, writes them (with the survivor fields and a text snippet) to the shard's
   spill file (:mod:`dedup.spill`) and emits one compact record
   ``(id, ref, content_hash, karma, created_utc, band_hashes)``; ``ref`` is an int naming
   (shard, row).
2. Exact: records grouped by content hash -> survivor by :func:`dedup.survivor.survivor_key`.
3. Near, over the exact survivors: ``(band, hash) -> (id, ref)`` buckets -> candidate pairs
   (:func:`dedup.transforms.bucket_pairs`) -> verification reading both shingle sets by ref from
   the spill files -> connected components -> each cluster's survivor, chosen from the fields
   read by ref.
4. Removed ids map to the document that now owns their submissions; the owners' extra
   submissions are read by ref and grouped by owner.
5. ``Write`` reads each input shard again, drops the removed ids, gives owners their cluster's
   submissions and writes output shard ``part-NNNNN`` with the input shard's number, all in one
   step: document rows never enter a PCollection.

The removed set, the survivors and the report are those of :class:`dedup.stage.Deduplicate`
(a test compares them); the persisted index (``dedup.index``/``write_index``) still uses that
transform, which carries sketches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from dedup.components import ConnectedComponents
from dedup.exact import EXACT
from dedup.minhash import band_hashes, banding, estimated_jaccard, jaccard, shingle_hashes
from dedup.minhash import signatures as minhash_signatures
from dedup.report import RemovedPair, snippet
from dedup.spill import SpillReader, doc_ref, meta_blob, write_shard
from dedup.survivor import survivor_key
from dedup.transforms import (
    BATCH,
    NEAR,
    ClusterInfo,
    NearDedupReport,
    _identical,
    _split,
    bucket_pairs,
    run_params,
)
from foundation.config import DedupConfig, OutputConfig
from foundation.drops import reason_one
from foundation.records import Drop
from foundation.shards import TEXT_SCHEMA, ShardFile, read_table, shard_name, table_from_rows
from foundation.storage import join

SCAN_COLUMNS = ["id", "url", "text", "content_hash", "karma", "created_utc", "submissions"]

# A record: (id, ref, content_hash, karma, created_utc, band_hashes); a node: (id, ref), which
# sorts by id like the ids the in-memory transform pairs and clusters.
Record = tuple[str, int, str, int, int, tuple[int, ...]]
Node = tuple[str, int]


class DedupOutputs(NamedTuple):
    files: beam.PCollection  # ShardFile per written output shard
    drops: beam.PCollection  # Drop per removed document
    extras: beam.PCollection  # ("dedup_report", summary) when near dedup runs


# --- 1. scan -------------------------------------------------------------------------------------


def scan_shard(item: tuple[int, str], work: str, cfg: DedupConfig) -> Iterator[Record]:
    """Spill one shard's shingles, signatures and survivor fields; yield its compact records."""
    shard, path = item
    band = banding(cfg.threshold, cfg.num_perm, cfg.fn_weight, cfg.bands, cfg.rows)
    table = read_table(path, SCAN_COLUMNS)
    records: list[Record] = []

    def spill_rows() -> Iterator[list[bytes]]:
        for start in range(0, table.num_rows, BATCH):
            docs = table.slice(start, BATCH).to_pylist()
            shingles = [shingle_hashes(d["text"] or "", cfg.ngram) for d in docs]
            full = [i for i, s in enumerate(shingles) if len(s)]
            sigs = minhash_signatures([shingles[i] for i in full], cfg.num_perm, cfg.seed)
            sig_of = dict(zip(full, sigs, strict=True))
            for i, d in enumerate(docs):
                sig = sig_of.get(i)
                bands = tuple(band_hashes(sig, band)) if sig is not None else ()
                ref = doc_ref(shard, start + i)
                records.append(
                    (d["id"], ref, d["content_hash"], d["karma"], d["created_utc"], bands)
                )
                yield [
                    shingles[i].astype("<u4").tobytes(),
                    sig.astype("<u4").tobytes() if sig is not None else b"",
                    meta_blob(d),
                    snippet(d["text"] or "").encode(),
                ]

    write_shard(work, shard, spill_rows())
    yield from records


# --- 2. exact ------------------------------------------------------------------------------------


def _by_hash(rec: Record) -> tuple[str, tuple[int, int, str, int]]:
    doc_id, ref, content_hash, karma, created, _ = rec
    return content_hash, (-int(karma), int(created), doc_id, ref)


def resolve_exact(
    _hash: str, members: Iterable[tuple[int, int, str, int]]
) -> Iterator[tuple[str, int, str, int]]:
    """(removed id, removed ref, survivor id, survivor ref) for every copy but the survivor."""
    ordered = sorted(members)  # survivor_key order: -karma, created_utc, id
    _, _, keep_id, keep_ref = ordered[0]
    for _, _, doc_id, ref in ordered[1:]:
        yield doc_id, ref, keep_id, keep_ref


class ExactDrop(beam.DoFn):
    """An exact move -> its Drop, with the removed document's URL read by ref."""

    def __init__(self, work: str):
        self.work = work

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, move: tuple[str, int, str, int]) -> Iterator[Drop]:
        doc_id, ref, keep_id, _ = move
        url = self.spill.meta(ref).get("url", "")
        yield Drop(EXACT, where=doc_id, detail=keep_id, id=doc_id, url=url, kept=keep_id)

    def teardown(self) -> None:
        self.spill.close()


def _removed_id(move: tuple[str, int, str, int]) -> tuple[str, str]:
    return move[0], move[2]


# --- 3. near -------------------------------------------------------------------------------------


def _near_input(rec: Record, exact_removed: dict[str, str]) -> bool:
    return rec[0] not in exact_removed


def _near_counts(rec: Record) -> Iterator[tuple[str, int]]:
    yield "documents_in", 1
    if rec[5]:
        yield "documents_sketched", 1


def _band_keys(rec: Record) -> Iterator[tuple[tuple[int, int], Node]]:
    for i, h in enumerate(rec[5]):
        yield (i, h), (rec[0], rec[1])


def _bucket(_key: tuple[int, int], members: Iterable[Node]) -> Iterator[tuple[Node, Node]]:
    return bucket_pairs((m, False) for m in members)


class Verify(beam.DoFn):
    """Candidate pair -> edge when its similarity (both shingle sets read by ref) passes."""

    def __init__(self, work: str, mode: str, threshold: float):
        self.work, self.mode, self.threshold = work, mode, threshold

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, pair: tuple[Node, Node]) -> Iterator[tuple[Node, Node]]:
        (_, ref_a), (_, ref_b) = pair
        if self.mode == "estimate":
            sim = estimated_jaccard(self.spill.signature(ref_a), self.spill.signature(ref_b))
        else:
            sim = jaccard(self.spill.shingles(ref_a), self.spill.shingles(ref_b))
        if sim >= self.threshold:
            yield pair

    def teardown(self) -> None:
        self.spill.close()


def _by_label(item: tuple[Node, Node]) -> tuple[str, Node]:
    node, label = item
    return label[0], node


class ResolveCluster(beam.DoFn):
    """(label, member nodes) -> tagged ("move", ...), ("drop", Drop), ("cluster", ClusterInfo).

    The survivor and the removed pairs are those of :func:`dedup.transforms.resolve_cluster`.
    """

    def __init__(self, work: str):
        self.work = work

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, item: tuple[str, Iterable[Node]]) -> Iterator[tuple[str, Any]]:
        label, nodes = item
        members = sorted(nodes, key=lambda n: survivor_key(self.spill.meta(n[1])))
        (keep_id, keep_ref), removed = members[0], members[1:]
        keep_shingles = self.spill.shingles(keep_ref)
        keep_text = self.spill.snippet(keep_ref)
        pairs = []
        for doc_id, ref in removed:
            sim = round(jaccard(self.spill.shingles(ref), keep_shingles), 6)
            pairs.append(
                RemovedPair(doc_id, keep_id, sim, NEAR, self.spill.snippet(ref), keep_text)
            )
            yield "move", (doc_id, ref, keep_id, keep_ref)
            url = self.spill.meta(ref).get("url", "")
            detail = f"kept={keep_id} jaccard={sim}"
            yield "drop", Drop(NEAR, where=doc_id, detail=detail, id=doc_id, url=url, kept=keep_id)
        yield "cluster", ClusterInfo(label, len(members), keep_id, False, tuple(pairs))

    def teardown(self) -> None:
        self.spill.close()


# --- 4. who inherits the removed documents' submissions ------------------------------------------


def _exact_child(move: tuple[str, int, str, int]) -> tuple[str, tuple[str, Any]]:
    return move[2], ("child", move)


def _near_parent(move: tuple[str, int, str, int]) -> tuple[str, tuple[str, Any]]:
    return move[0], ("owner", move[2])


def final_owners(
    _survivor: str, tagged: Iterable[tuple[str, Any]]
) -> Iterator[tuple[str, int, str]]:
    """Exact copies of a document that near dedup removed belong to the near survivor."""
    owner = None
    children = []
    for tag, value in tagged:
        if tag == "owner":
            owner = value
        else:
            children.append(value)
    for doc_id, ref, keep_id, _ in children:
        yield doc_id, ref, owner or keep_id


def _move_owner(move: tuple[str, int, str, int]) -> tuple[str, int, str]:
    return move[0], move[1], move[2]


def _removed_owner(move: tuple[str, int, str]) -> tuple[str, str]:
    return move[0], move[2]


def _by_owner(move: tuple[str, int, str]) -> tuple[str, int]:
    return move[2], move[1]


class InheritedSubmissions(beam.DoFn):
    """(owner id, refs of the documents it replaces) -> (owner id, their submissions)."""

    def __init__(self, work: str):
        self.work = work

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, item: tuple[str, Iterable[int]]) -> Iterator[tuple[str, list[dict]]]:
        owner, refs = item
        metas = sorted((self.spill.meta(r) for r in refs), key=survivor_key)
        yield owner, [s for m in metas for s in m["submissions"]]

    def teardown(self) -> None:
        self.spill.close()


def merge_submissions(own: list[dict], inherited: list[dict]) -> list[dict]:
    """The survivor's submissions and those it inherits, as :func:`merge_cluster` orders them."""
    seen: dict[str, dict] = {}
    for sub in [*own, *inherited]:
        seen.setdefault(sub["id"], sub)
    return sorted(seen.values(), key=lambda s: (s["created_utc"], s["id"]))


# --- 5. filter and write, one step per shard -----------------------------------------------------


def write_filtered(
    item: tuple[int, str],
    out: str,
    fmt: str,
    removed: dict[str, str],
    inherited: dict[str, list[dict]],
) -> Iterator[ShardFile]:
    """Read an input shard, drop removed ids, merge submissions, write the same-numbered shard."""
    from foundation.shards import write_table

    shard, path = item
    table = read_table(path)
    ids = table.column("id").to_pylist()
    keep = np.fromiter((i not in removed for i in ids), dtype=bool, count=len(ids))
    if not keep.any():
        return
    rows = table.filter(keep).to_pylist()
    for row in rows:
        extra = inherited.get(row["id"])
        if extra:
            row["submissions"] = merge_submissions(row["submissions"], extra)
    yield write_table(table_from_rows(rows, TEXT_SCHEMA), join(out, shard_name(shard, fmt)), fmt)


# --- the transform -------------------------------------------------------------------------------


def _count(_: object, name: str) -> tuple[str, int]:
    return name, 1


def _empty(p: beam.Pipeline, label: str) -> beam.PCollection:
    return p | label >> beam.Create([])


class DedupById(beam.PTransform):
    """PCollection[(shard number, path)] of text shards -> DedupOutputs (module docstring)."""

    def __init__(
        self, cfg: DedupConfig, output: OutputConfig, out: str, work: str, report_dir: str
    ):
        super().__init__()
        self.cfg, self.output, self.out, self.work, self.report_dir = (
            cfg,
            output,
            out,
            work,
            report_dir,
        )

    def expand(self, shards):
        cfg, work = self.cfg, self.work
        p = shards.pipeline
        records = shards | "Scan" >> beam.FlatMap(scan_shard, work, cfg)
        drops, extras = [], []
        exact_moves = _empty(p, "NoExactMoves")
        if cfg.exact:
            exact_moves = (
                records
                | "ByHash" >> beam.Map(_by_hash)
                | "GroupHashes" >> beam.GroupByKey()
                | "ResolveExact" >> beam.FlatMapTuple(resolve_exact)
            )
            drops.append(exact_moves | "ExactDrops" >> beam.ParDo(ExactDrop(work)))
        moves = exact_moves | "ExactOwners" >> beam.Map(_move_owner)
        if cfg.near:
            near = self._near(records, exact_moves)
            drops.append(near["drop"])
            extras.append(near["report"])
            moves = (
                (
                    exact_moves | "ExactChildren" >> beam.Map(_exact_child),
                    near["move"] | "NearParents" >> beam.Map(_near_parent),
                )
                | "OwnerItems" >> beam.Flatten()
                | "GroupOwners" >> beam.GroupByKey()
                | "FinalOwners" >> beam.FlatMapTuple(final_owners),
                near["move"] | "NearOwners" >> beam.Map(_move_owner),
            ) | "AllMoves" >> beam.Flatten()
        inherited = (
            moves
            | "ByOwner" >> beam.Map(_by_owner)
            | "GroupByOwner" >> beam.GroupByKey()
            | "Inherited" >> beam.ParDo(InheritedSubmissions(work))
        )
        removed = moves | "RemovedIds" >> beam.Map(_removed_owner)
        files = shards | "Write" >> beam.FlatMap(
            write_filtered,
            self.out,
            self.output.format,
            beam.pvalue.AsDict(removed),
            beam.pvalue.AsDict(inherited),
        )
        all_drops = drops | "AllDrops" >> beam.Flatten() if drops else _empty(p, "NoDrops")
        all_extras = extras | "AllExtras" >> beam.Flatten() if extras else _empty(p, "NoExtras")
        return DedupOutputs(files, all_drops, all_extras)

    def _near(self, records, exact_moves) -> dict[str, Any]:
        cfg, work = self.cfg, self.work
        band = banding(cfg.threshold, cfg.num_perm, cfg.fn_weight, cfg.bands, cfg.rows)
        exact_removed = exact_moves | "ExactRemoved" >> beam.Map(_removed_id)
        candidates = records | "NearInput" >> beam.Filter(
            _near_input, beam.pvalue.AsDict(exact_removed)
        )
        pairs = (
            candidates
            | "BandKeys" >> beam.FlatMap(_band_keys)
            | "GroupBands" >> beam.GroupByKey()
            | "BucketPairs" >> beam.FlatMapTuple(_bucket)
            | "DistinctPairs" >> beam.Distinct()
        )
        if cfg.verify == "none":
            edges = pairs
        else:
            edges = pairs | "Verify" >> beam.ParDo(Verify(work, cfg.verify, cfg.threshold))
        resolved = _split(
            edges
            | "Components" >> ConnectedComponents(cfg.cc_rounds)
            | "ByLabel" >> beam.Map(_by_label)
            | "GroupClusters" >> beam.GroupByKey()
            | "Resolve" >> beam.ParDo(ResolveCluster(work)),
            ("move", "drop", "cluster"),
            "Resolved",
        )
        exact_counts = exact_moves | "ExactCounts" >> beam.Map(_count, EXACT)
        stats = (
            candidates | "CountIn" >> beam.FlatMap(_near_counts),
            pairs | "CountPairs" >> beam.Map(_count, "candidate_pairs"),
            edges | "CountEdges" >> beam.Map(_count, "duplicate_pairs"),
            resolved["drop"] | "CountDrops" >> beam.Map(reason_one),
            resolved["cluster"] | "CountIdentical" >> beam.FlatMap(_identical),
            exact_counts,
        ) | "Stats" >> beam.Flatten()
        params = records.pipeline | "Params" >> beam.Create([run_params(cfg, band)])
        report = resolved["cluster"] | "Report" >> NearDedupReport(stats, params, self.report_dir)
        return {**resolved, "report": report}

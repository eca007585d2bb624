"""``webtext dedup`` on shards, deciding from ids: only refs, ints and file names are shuffled.

    paths --DedupById(cfg, out, work, report_dir, log)--> DedupOutputs(files, drops, extras)
    scans --DecideById(cfg, work, report_dir, log)--> Decisions(moves, drops, extras)

Steps 2-5 (:class:`DecideById`) only need shards scanned into ``work`` (:func:`scan_docs`),
whatever the rows are read from: ``webtext dedup`` scans text shards, the ingest's pages phase
scans its spill files (:mod:`pipeline.spill_dedup`) and writes its survivors its own way.

1. ``Scan`` reads each input shard once: per document it computes the shingle set, signature
   and band hashes, writes them (with the survivor fields and a text snippet) to the shard's
   spill file (:mod:`dedup.spill`), and writes the shard's grouping keys, sorted, to key files
   (:mod:`dedup.buckets`): one exact entry (the content hash's digest, ref, karma, time) and one
   band entry (band hash, ref, band) per band. It emits only ``(shard, documents, sketched)``;
   ``ref`` is an int naming (shard, row).
2. ``Buckets``: once every shard is scanned (a Gather of the scans, :mod:`foundation.gather`;
   no step reads a side input, which Dask would recompute per task), the key space is cut
   into ``ceil(documents / dedup.bucket_docs)`` buckets; each bucket task reads its range from
   every shard's key file, so a task holds about ``bucket_docs`` documents' keys at any size.
3. Exact, per bucket: equal content hashes -> survivor by :func:`dedup.survivor.survivor_key`;
   the bucket's removed refs go to a file that LSH reads, and its drops to one part of the drop
   log (``log``), written by the bucket task: a Drop never crosses a shuffle.
4. Near, per bucket (after every exact bucket): the exact survivors' (band, band hash) groups
   -> candidate pairs (as :func:`dedup.transforms.bucket_pairs` forms them), written to the
   pair bucket that owns them; per pair bucket (a GroupByKey of file names): distinct pairs ->
   verification reading both shingle sets by ref from the spill files -> edges (ref pairs) ->
   connected components of refs -> each cluster's survivor, chosen from the fields read by ref;
   its drops are logged and its report records combined in the same stage.
5. Removed documents map to the document that now owns their submissions; each move is keyed
   by the input shard of the removed row and of the owner row (refs and rows only).
6. ``Write``, per input shard (a GroupByKey of shard numbers): reads the shard, drops its removed
   rows, gives owners the submissions of the documents they replace (read by ref) and writes
   output shard ``part-NNNNN`` with the input shard's number, all in one step: document rows
   never enter a PCollection, and a task holds one shard's moves, not every removed id.

Per document, nothing crosses a shuffle until a document is found to be a duplicate: then its
edges, cluster membership and move do, as ints (refs); counts cross as per-task sums.
The removed set, the survivors and the report are those of
:class:`dedup.stage.Deduplicate` (a test compares them); the persisted index
(``dedup.index``/``write_index``) still uses that transform, which carries sketches.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import xxhash

from dedup.buckets import BAND as BAND_ENTRY
from dedup.buckets import EXACT as EXACT_ENTRY
from dedup.buckets import n_buckets, read_bucket, write_keys
from dedup.components import ConnectedComponents
from dedup.exact import EXACT
from dedup.lsh import band_pairs, distinct_pairs, exact_groups, pair_buckets
from dedup.minhash import band_hashes, banding, estimated_jaccard, jaccard, shingle_hashes
from dedup.minhash import signatures as minhash_signatures
from dedup.report import RemovedPair, snippet
from dedup.spill import SpillReader, doc_ref, meta_blob, split_ref, write_shard
from dedup.survivor import survivor_key
from dedup.transforms import (
    BATCH,
    NEAR,
    ClusterInfo,
    NearDedupReport,
    _identical,
    _split,
    run_params,
)
from foundation.batches import batched
from foundation.config import DedupConfig, OutputConfig
from foundation.droplog import DropLog, LogDrops, drop_order, part_counts, write_drops
from foundation.gather import Gather, Spread
from foundation.records import Drop
from foundation.shards import TEXT_SCHEMA, ShardFile, read_table, shard_name, table_from_rows
from foundation.storage import join, read_bytes, write_bytes

SCAN_COLUMNS = ["id", "url", "text", "content_hash", "karma", "created_utc", "submissions"]
_M64 = (1 << 64) - 1

# What a scan emits: (shard, documents, documents with a sketch).
ScanInfo = tuple[int, int, int]
Move = tuple[int, int]
"""(a removed document's ref, the ref of the document that now owns its submissions)."""


class DedupOutputs(NamedTuple):
    files: beam.PCollection  # ShardFile per written output shard
    drops: beam.PCollection  # DropFile per part written to the drop log (its counts per rule)
    extras: beam.PCollection  # ("dedup_report", summary) when near dedup runs


# --- 1. scan -------------------------------------------------------------------------------------


def scan_shard(item: tuple[int, str], work: str, cfg: DedupConfig) -> Iterator[ScanInfo]:
    """Spill one text shard's shingles, signatures, fields and grouping keys; yield its counts."""
    shard, path = item
    table = read_table(path, SCAN_COLUMNS)
    docs = (d for s in range(0, table.num_rows, BATCH) for d in table.slice(s, BATCH).to_pylist())
    yield scan_docs(shard, path, docs, work, cfg)


def scan_docs(
    shard: int, source: str, docs: Iterable[dict], work: str, cfg: DedupConfig
) -> ScanInfo:
    """Scan one shard's documents (dicts with SCAN_COLUMNS, in row order, read as they come):
    write its spill file and key files, note ``source`` (the file its rows come from, for the
    step that writes the survivors), and return its counts."""
    band = banding(cfg.threshold, cfg.num_perm, cfg.fn_weight, cfg.bands, cfg.rows)
    exact: list[tuple[int, int, int, int, int, bool]] = []
    bands: list[tuple[int, int, int]] = []

    def spill_rows() -> Iterator[list[bytes]]:
        for batch in batched(docs, BATCH):
            shingles = [shingle_hashes(d["text"] or "", cfg.ngram) for d in batch]
            full = [i for i, s in enumerate(shingles) if len(s)]
            sigs = minhash_signatures([shingles[i] for i in full], cfg.num_perm, cfg.seed)
            sig_of = dict(zip(full, sigs, strict=True))
            for i, d in enumerate(batch):
                sig = sig_of.get(i)
                ref = doc_ref(shard, len(exact))
                digest = xxhash.xxh3_128_intdigest(d["content_hash"].encode())
                sketched = sig is not None
                exact.append(
                    (digest >> 64, digest & _M64, ref, d["karma"], d["created_utc"], sketched)
                )
                if sketched:
                    bands.extend((h, ref, b) for b, h in enumerate(band_hashes(sig, band)))
                yield [
                    shingles[i].astype("<u4").tobytes(),
                    sig.astype("<u4").tobytes() if sig is not None else b"",
                    meta_blob(d),
                    snippet(d["text"] or "").encode(),
                ]

    write_shard(work, shard, spill_rows())
    write_bytes(_source_file(work, shard), source.encode("utf-8"))
    keys = np.array(exact, dtype=EXACT_ENTRY)
    write_keys(work, shard, "exact", keys)
    write_keys(work, shard, "bands", np.array(bands, dtype=BAND_ENTRY))
    return shard, len(keys), int(keys["sketched"].sum())


def plan_buckets(
    scanned: list[ScanInfo], bucket_docs: int
) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    """(bucket, bucket count, shard numbers) for each bucket, once every shard is scanned (a
    Gather of the scans, not a side input: Dask recomputes those in every task)."""
    shards = tuple(sorted(s[0] for s in scanned))
    buckets = n_buckets(sum(s[1] for s in scanned), bucket_docs)
    for b in range(buckets):
        yield b, buckets, shards


def _scan_counts(info: ScanInfo) -> Iterator[tuple[str, int]]:
    yield "documents_in", info[1]
    yield "documents_sketched", info[2]


def _id(spill: SpillReader, ref: int) -> str:
    return spill.meta(ref)["id"]


# --- 2. exact ------------------------------------------------------------------------------------


class ExactBucket(beam.DoFn):
    """A bucket's content hashes -> every copy but the survivor (:func:`survivor_key` order).

    Writes the bucket's drops to the drop log (one part, ``dedup-exact-BBBBB``) and its
    removed refs, which LSH leaves out (:func:`_removed_file`). Yields ("move", (ref, survivor
    ref)), ("drops", DropFile), ("count", (name, n)) per bucket (near dedup's input counts and
    the exact count) and ("removed", bucket): no Drop or id leaves the task.
    """

    def __init__(self, work: str, log: DropLog):
        self.work, self.log = work, log

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, item: tuple[int, int, tuple[int, ...]]) -> Iterator[tuple[str, Any]]:
        bucket, buckets, shards = item
        entries = read_bucket(self.work, shards, "exact", EXACT_ENTRY, bucket, buckets)
        removed, drops, sketched = [], [], 0
        for group in exact_groups(entries):
            copies = sorted(
                (-karma, created, _id(self.spill, ref), ref, has_sketch)
                for _, _, ref, karma, created, has_sketch in group.tolist()
            )
            _, _, keep_id, keep_ref, _ = copies[0]
            for _, _, doc_id, ref, has_sketch in copies[1:]:
                removed.append(ref)
                sketched += has_sketch
                url = self.spill.meta(ref).get("url", "")
                drops.append(
                    Drop(EXACT, where=doc_id, detail=keep_id, id=doc_id, url=url, kept=keep_id)
                )
                yield "move", (ref, keep_ref)
        written = write_drops(
            sorted(drops, key=drop_order), self.log.directory, f"dedup-exact-{bucket:05d}",
            self.log.cap,
        )  # fmt: skip
        if written:
            yield "drops", written
        yield "count", ("documents_in", -len(removed))
        yield "count", ("documents_sketched", -sketched)
        yield "count", (EXACT, len(removed))
        _save(_removed_file(self.work, bucket), np.sort(np.array(removed, dtype=np.int64)))
        yield "removed", bucket

    def teardown(self) -> None:
        self.spill.close()


def _removed_file(work: str, bucket: int) -> str:
    """The refs that exact bucket ``bucket`` removed."""
    return join(work, "exact", f"{bucket:05d}.npy")


def _save(path: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    write_bytes(path, buf.getvalue())


def _load(path: str) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(path)))


# --- 3. near -------------------------------------------------------------------------------------


class BandBucket(beam.DoFn):
    """A bucket's band entries -> candidate pairs, written to the pair buckets that own them.

    Exact copies removed by exact dedup (the refs in every exact bucket's removed file) are
    left out. Yields
    (pair bucket, this bucket) for each pair file written (:func:`_pair_file`).
    """

    def __init__(self, work: str):
        self.work = work

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(
        self, item: tuple[tuple[int, int, tuple[int, ...]], tuple[int, ...]]
    ) -> Iterator[tuple[int, str]]:
        (bucket, buckets, shards), exact_buckets = item
        entries = read_bucket(self.work, shards, "bands", BAND_ENTRY, bucket, buckets)
        if exact_buckets:
            removed = np.concatenate([_load(_removed_file(self.work, b)) for b in exact_buckets])
            entries = entries[~np.isin(entries["ref"], removed)]
        pairs = band_pairs(entries, lambda ref: _id(self.spill, ref))
        for owner, part in pair_buckets(pairs, buckets):
            _save(_pair_file(self.work, owner, bucket), part)
            yield owner, bucket

    def teardown(self) -> None:
        self.spill.close()


def with_removed(items: list[tuple[str, Any]]) -> Iterator[tuple[Any, tuple[int, ...]]]:
    """Every band bucket with every exact bucket, once all have written their removed refs."""
    removed = tuple(sorted(v for tag, v in items if tag == "removed"))
    for tag, bucket in items:
        if tag == "bucket":
            yield bucket, removed


def _pair_file(work: str, owner: int, bucket: int) -> str:
    """The pairs that band bucket ``bucket`` found for pair bucket ``owner``."""
    return join(work, "pairs", f"{owner:05d}", f"{bucket:05d}.npy")


class VerifyPairs(beam.DoFn):
    """(pair bucket, band buckets) -> distinct candidate pairs -> edges whose similarity passes.

    Similarity reads both shingle sets (or signatures) by ref from the spill files. Yields
    ("edge", (lo ref, hi ref)) and ("count", (name, n)): the graph is one of refs (ints).
    """

    def __init__(self, work: str, mode: str, threshold: float):
        self.work, self.mode, self.threshold = work, mode, threshold

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, item: tuple[int, Iterable[int]]) -> Iterator[tuple[str, Any]]:
        owner, found_by = item
        parts = [_load(_pair_file(self.work, owner, b)) for b in sorted(found_by)]
        pairs = distinct_pairs(*(np.concatenate([p[f] for p in parts]) for f in ("lo", "hi")))
        yield "count", ("candidate_pairs", len(pairs))
        edges = 0
        cached = (-1, np.empty(0))
        for lo, hi in pairs.tolist():
            if self.mode != "none":
                if cached[0] != lo:
                    cached = (lo, self._sketch(lo))
                if self._similarity(cached[1], self._sketch(hi)) < self.threshold:
                    continue
            edges += 1
            yield "edge", (lo, hi)
        yield "count", ("duplicate_pairs", edges)

    def _sketch(self, ref: int) -> np.ndarray:
        if self.mode == "estimate":
            return self.spill.signature(ref)
        return self.spill.shingles(ref)

    def _similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return estimated_jaccard(a, b) if self.mode == "estimate" else jaccard(a, b)

    def teardown(self) -> None:
        self.spill.close()


def _by_label(item: tuple[int, int]) -> tuple[int, int]:
    node, label = item
    return label, node


class ResolveCluster(beam.DoFn):
    """(label ref, member refs) -> tagged ("move", (ref, survivor ref)), ("drop", Drop),
    ("cluster", ClusterInfo).

    The survivor and the removed pairs are those of :func:`dedup.transforms.resolve_cluster`;
    the cluster's label is its smallest id, as there. Drops and clusters are consumed in this
    task's own stage (the drop log's parts, the report's combines), not shuffled.
    """

    def __init__(self, work: str):
        self.work = work

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, item: tuple[int, Iterable[int]]) -> Iterator[tuple[str, Any]]:
        _, refs = item
        ranked = sorted((survivor_key(self.spill.meta(ref)), ref) for ref in refs)
        members = [(key[2], ref) for key, ref in ranked]
        label = min(doc_id for doc_id, _ in members)
        (keep_id, keep_ref), removed = members[0], members[1:]
        keep_shingles = self.spill.shingles(keep_ref)
        keep_text = self.spill.snippet(keep_ref)
        pairs = []
        for doc_id, ref in removed:
            sim = round(jaccard(self.spill.shingles(ref), keep_shingles), 6)
            pairs.append(
                RemovedPair(doc_id, keep_id, sim, NEAR, self.spill.snippet(ref), keep_text)
            )
            yield "move", (ref, keep_ref)
            url = self.spill.meta(ref).get("url", "")
            detail = f"kept={keep_id} jaccard={sim}"
            yield "drop", Drop(NEAR, where=doc_id, detail=detail, id=doc_id, url=url, kept=keep_id)
        yield "cluster", ClusterInfo(label, len(members), keep_id, False, tuple(pairs))

    def teardown(self) -> None:
        self.spill.close()


# --- 4. who inherits the removed documents' submissions ------------------------------------------


def _exact_child(move: Move) -> tuple[int, tuple[str, int]]:
    return move[1], ("child", move[0])


def _near_parent(move: Move) -> tuple[int, tuple[str, int]]:
    return move[0], ("owner", move[1])


def final_owners(survivor: int, tagged: Iterable[tuple[str, int]]) -> Iterator[Move]:
    """Exact copies of a document that near dedup removed belong to the near survivor."""
    owner = survivor
    children = []
    for tag, ref in tagged:
        if tag == "owner":
            owner = ref
        else:
            children.append(ref)
    for ref in children:
        yield ref, owner


def _by_shard(move: Move) -> Iterator[tuple[int, tuple[str, Any]]]:
    """A move as its two shards see it: a removed row, and an owner row inheriting a ref."""
    ref, owner_ref = move
    shard, row = split_ref(ref)
    yield shard, ("removed", row)
    owner_shard, owner_row = split_ref(owner_ref)
    yield owner_shard, ("inherits", (owner_row, ref))


def _every_shard(item: tuple[int, str]) -> tuple[int, tuple[str, Any]]:
    return item[0], ("shard", None)


def merge_submissions(own: list[dict], inherited: list[dict]) -> list[dict]:
    """The survivor's submissions and those it inherits, as :func:`merge_cluster` orders them."""
    seen: dict[str, dict] = {}
    for sub in [*own, *inherited]:
        seen.setdefault(sub["id"], sub)
    return sorted(seen.values(), key=lambda s: (s["created_utc"], s["id"]))


class MovesByShard(beam.PTransform):
    """(PCollection[(shard, path)], PCollection[Move]) -> (shard, its tagged moves) for every
    scanned shard: ("removed", row) per removed row, ("inherits", (owner row, removed ref)) per
    row inheriting submissions. Ints only: a task holds one shard's moves, not every removed id.
    """

    def expand(self, pcolls):
        shards, moves = pcolls
        return (
            (
                shards | "EveryShard" >> beam.Map(_every_shard),
                moves | "ByShard" >> beam.FlatMap(_by_shard),
            )
            | "ShardItems" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
        )


class ShardMoves(NamedTuple):
    """One shard's moves, read from :class:`MovesByShard`'s tagged values."""

    removed: set[int]
    inherits: dict[int, list[int]]  # owner row -> refs whose submissions it inherits

    @classmethod
    def of(cls, tagged: Iterable[tuple[str, Any]]) -> ShardMoves:
        moves = cls(set(), {})
        for tag, value in tagged:
            if tag == "removed":
                moves.removed.add(value)
            elif tag == "inherits":
                moves.inherits.setdefault(value[0], []).append(value[1])
        return moves

    def submissions(self, spill: SpillReader, row: int, own: list[dict]) -> list[dict]:
        """Row ``row``'s submissions with those it inherits (read by ref, in
        :func:`survivor_key` order)."""
        refs = self.inherits.get(row)
        if not refs:
            return own
        metas = sorted((spill.meta(r) for r in refs), key=survivor_key)
        return merge_submissions(own, [sub for m in metas for sub in m["submissions"]])


def source_of(work: str, shard: int) -> str:
    """The file a scanned shard's rows came from (noted by the scan: only shard numbers cross
    the shuffle, no side input)."""
    return read_bytes(_source_file(work, shard)).decode("utf-8")


def _source_file(work: str, shard: int) -> str:
    return join(work, f"{shard:05d}.source")


# --- 5. filter and write, one step per shard -----------------------------------------------------


class WriteShard(beam.DoFn):
    """(shard, its removed rows and inherited refs) -> the same-numbered output shard.

    Reads the input shard, drops the removed rows, gives each owner the submissions of the
    documents it replaces and writes ``part-NNNNN``: a task holds one shard's rows and moves,
    whatever the input's size.
    """

    def __init__(self, work: str, out: str, fmt: str):
        self.work, self.out, self.fmt = work, out, fmt

    def setup(self) -> None:
        self.spill = SpillReader(self.work)

    def process(self, item: tuple[int, Iterable[tuple[str, Any]]]) -> Iterator[ShardFile]:
        from foundation.shards import write_table

        shard, tagged = item
        moves = ShardMoves.of(tagged)
        table = read_table(source_of(self.work, shard))
        keep = np.ones(table.num_rows, dtype=bool)
        keep[list(moves.removed)] = False
        if not keep.any():
            return
        rows = table.filter(keep).to_pylist()
        for row, index in zip(rows, np.flatnonzero(keep).tolist(), strict=True):
            row["submissions"] = moves.submissions(self.spill, index, row["submissions"])
        path = join(self.out, shard_name(shard, self.fmt))
        yield write_table(table_from_rows(rows, TEXT_SCHEMA), path, self.fmt)

    def teardown(self) -> None:
        self.spill.close()


# --- the transforms ------------------------------------------------------------------------------


def _tagged(value: Any, tag: str) -> tuple[str, Any]:
    return tag, value


def _band_bucket(item: tuple[tuple[int, int, tuple[int, ...]], tuple[int, ...]]) -> int:
    return item[0][0]


def _empty(p: beam.Pipeline, label: str) -> beam.PCollection:
    return p | label >> beam.Create([])


class Decisions(NamedTuple):
    moves: beam.PCollection  # Move per removed document, owner final
    drops: beam.PCollection  # DropFile: drop-log parts, written by the deciding tasks
    extras: beam.PCollection  # ("dedup_report", summary) when near dedup runs


class DecideById(beam.PTransform):
    """PCollection[ScanInfo] (shards scanned into ``work``) -> Decisions: exact and near dedup
    from the key files, bucket by bucket (module docstring, steps 2-5). Both ``webtext dedup``
    (:class:`DedupById`) and the ingest's pages phase (over its spill files) decide here.

    Removed documents are logged in ``log`` by the tasks that decide them: a Drop never crosses
    a shuffle, only the parts' names and counts.
    """

    def __init__(self, cfg: DedupConfig, work: str, report_dir: str, log: DropLog):
        super().__init__()
        self.cfg, self.work, self.report_dir, self.log = cfg, work, report_dir, log

    def expand(self, scanned):
        cfg, work = self.cfg, self.work
        p = scanned.pipeline
        buckets = (
            scanned
            | "AllScans" >> Gather()
            | "Buckets" >> beam.FlatMap(plan_buckets, cfg.bucket_docs)
            | "SpreadBuckets" >> Spread()
        )
        drops, extras = [], []
        tags = ("move", "drops", "count", "removed")
        exact = {tag: _empty(p, f"NoExact{tag.title()}") for tag in tags}
        if cfg.exact:
            exact = _split(
                buckets | "Exact" >> beam.ParDo(ExactBucket(work, self.log)), tags, "Exact"
            )
            drops.append(exact["drops"])
        moves = exact["move"]
        if cfg.near:
            near = self._near(scanned, buckets, exact)
            drops.append(near["drops"])
            extras.append(near["report"])
            moves = (
                (
                    exact["move"] | "ExactChildren" >> beam.Map(_exact_child),
                    near["move"] | "NearParents" >> beam.Map(_near_parent),
                )
                | "OwnerItems" >> beam.Flatten()
                | "GroupOwners" >> beam.GroupByKey()
                | "FinalOwners" >> beam.FlatMapTuple(final_owners),
                near["move"],
            ) | "AllMoves" >> beam.Flatten()
        all_drops = drops | "AllDrops" >> beam.Flatten() if drops else _empty(p, "NoDrops")
        all_extras = extras | "AllExtras" >> beam.Flatten() if extras else _empty(p, "NoExtras")
        return Decisions(moves, all_drops, all_extras)

    def _near(self, scanned, buckets, exact) -> dict[str, Any]:
        cfg, work = self.cfg, self.work
        band = banding(cfg.threshold, cfg.num_perm, cfg.fn_weight, cfg.bands, cfg.rows)
        band_work = (
            (
                buckets | "TagBuckets" >> beam.Map(_tagged, "bucket"),
                exact["removed"] | "TagRemoved" >> beam.Map(_tagged, "removed"),
            )
            | "BandItems" >> beam.Flatten()
            | "AfterExact" >> Gather()
            | "WithRemoved" >> beam.FlatMap(with_removed)
            | "SpreadBands" >> Spread(_band_bucket)
        )
        verified = _split(
            band_work
            | "Bands" >> beam.ParDo(BandBucket(work))
            | "GroupPairFiles" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(VerifyPairs(work, cfg.verify, cfg.threshold)),
            ("edge", "count"),
            "Verified",
        )
        resolved = _split(
            verified["edge"]
            | "Components" >> ConnectedComponents(cfg.cc_rounds)
            | "ByLabel" >> beam.Map(_by_label)
            | "GroupClusters" >> beam.GroupByKey()
            | "Resolve" >> beam.ParDo(ResolveCluster(work)),
            ("move", "drop", "cluster"),
            "Resolved",
        )
        # Written and counted in Resolve's own stage: only parts and per-bundle sums go on.
        near_drops = resolved["drop"] | "LogNearDrops" >> LogDrops(self.log.directory, self.log.cap)
        identical = (
            resolved["cluster"]
            | "CountIdentical" >> beam.FlatMap(_identical)
            | "SumIdentical" >> beam.CombinePerKey(sum)
        )
        stats = (
            scanned | "CountIn" >> beam.FlatMap(_scan_counts),
            exact["count"],
            verified["count"],
            near_drops | "CountDrops" >> beam.FlatMap(part_counts),
            identical,
        ) | "Stats" >> beam.Flatten()
        params = scanned.pipeline | "Params" >> beam.Create([run_params(cfg, band)])
        report = resolved["cluster"] | "Report" >> NearDedupReport(stats, params, self.report_dir)
        return {"move": resolved["move"], "drops": near_drops, "report": report}


class DedupById(beam.PTransform):
    """PCollection[(shard number, path)] of text shards -> DedupOutputs (module docstring)."""

    def __init__(
        self,
        cfg: DedupConfig,
        output: OutputConfig,
        out: str,
        work: str,
        report_dir: str,
        log: DropLog,
    ):
        super().__init__()
        self.cfg, self.output, self.out, self.work = cfg, output, out, work
        self.report_dir, self.log = report_dir, log

    def expand(self, shards):
        work = self.work
        decided = (
            shards
            | "Scan" >> beam.FlatMap(scan_shard, work, self.cfg)
            | "Decide" >> DecideById(self.cfg, work, self.report_dir, self.log)
        )
        files = (
            (shards, decided.moves)
            | "MovesByShard" >> MovesByShard()
            | "Write" >> beam.ParDo(WriteShard(work, self.out, self.output.format))
        )
        return DedupOutputs(files, decided.drops, decided.extras)

"""The persisted near-dedup index of a corpus: signatures, band hashes and shingle sets in Parquet.

    INDEX/part-<run>-00000.parquet ...   rows: id, signature, bands, shingles  (INDEX_SCHEMA)
    INDEX/_manifest.json                  Manifest(kind="minhash-index"), written last

A later run loads the index (``DedupConfig.index``) and drops its documents that are near
duplicates of indexed ones, then extends the index with its survivors (:class:`WriteIndex`).
File names carry a run key (a hash of the run's output directory), so a rerun of the same run
replaces its own files instead of adding them twice, and when loading, a run skips the files it
wrote itself (its documents are not "already in the corpus"). The manifest's config records
num_perm, seed, ngram and the shingle hash: an index built with other values cannot be used,
while other (bands, rows) only mean the band hashes are recomputed from the signatures.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import xxhash

from dedup.minhash import Banding, banding
from dedup.sketch import Sketch
from foundation import storage
from foundation.config import DedupConfig
from foundation.shards import MANIFEST, Manifest, ShardError, ShardFile, read_table, write_table

log = logging.getLogger(__name__)

KIND = "minhash-index"
SHINGLE_HASH = "xxh3_64 tokens, polynomial, fmix64 top 32 bits; datasketch affine32"
ROWS_PER_FILE = 100_000

INDEX_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("signature", pa.binary(), nullable=False),  # num_perm little-endian uint32
        pa.field("bands", pa.list_(pa.uint64()), nullable=False),
        pa.field("shingles", pa.binary(), nullable=False),  # sorted little-endian uint32
    ]
)


def run_key(output_dir: str) -> str:
    """The key of a run's index files: stable for the same output directory."""
    return xxhash.xxh64_hexdigest(output_dir.rstrip("/").encode())[:8]


def index_params(cfg: DedupConfig, banding: Banding) -> dict[str, Any]:
    return {
        "num_perm": cfg.num_perm,
        "seed": cfg.seed,
        "ngram": cfg.ngram,
        "shingle_hash": SHINGLE_HASH,
        "bands": banding.bands,
        "rows": banding.rows,
    }


def load_manifest(path: str) -> Manifest | None:
    """The index's manifest, or None when no index exists there yet."""
    if not storage.exists(storage.join(path, MANIFEST)):
        return None
    manifest = Manifest.load(path)
    if manifest.kind != KIND:
        raise ShardError(f"{path}: a {manifest.kind!r} directory, not a near-dedup index")
    return manifest


def index_files(
    path: str, cfg: DedupConfig, banding: Banding, skip_run: str | None
) -> tuple[list[str], bool]:
    """(paths of the index files to load, whether their band hashes fit ``banding``).

    Raises ShardError if the index was built with other signatures.
    """
    manifest = load_manifest(path)
    if manifest is None:
        raise ShardError(f"{path}: no near-dedup index here (no _manifest.json)")
    want = index_params(cfg, banding)
    for name in ("num_perm", "seed", "ngram", "shingle_hash"):
        if manifest.config.get(name) != want[name]:
            raise ShardError(
                f"{path}: index built with {name}={manifest.config.get(name)!r}, this run uses "
                f"{want[name]!r}; rebuild the index or use the same dedup.{name}"
            )
    own = f"part-{skip_run}-" if skip_run else None
    paths = [
        storage.join(path, f.path) for f in manifest.files if not (own and f.path.startswith(own))
    ]
    same = (manifest.config.get("bands"), manifest.config.get("rows")) == (
        banding.bands,
        banding.rows,
    )
    return paths, same


def read_index_file(path: str, reuse_bands: bool) -> Iterator[Sketch]:
    """The sketches of one index file, marked existing (with their band hashes if reusable)."""
    for row in read_table(path).to_pylist():
        yield Sketch(
            id=row["id"],
            signature=row["signature"],
            shingles=row["shingles"],
            existing=True,
            bands=tuple(row["bands"]) if reuse_bands else (),
        )


def _shard_of(sketch: Sketch, n_files: int) -> tuple[int, Sketch]:
    return xxhash.xxh64_intdigest(sketch.id.encode()) % n_files, sketch


def _n_files(count: int) -> int:
    return max(1, -(-count // ROWS_PER_FILE))


def _write_file(
    item: tuple[int, Iterable[Sketch]], path: str, run: str, banding: Banding
) -> ShardFile:
    index, sketches = item
    rows = [
        {
            "id": s.id,
            "signature": s.signature,
            "bands": s.band_keys(banding),
            "shingles": s.shingles,
        }
        for s in sorted(sketches, key=lambda s: s.id)
    ]
    name = f"part-{run}-{index:05d}.parquet"
    table = pa.Table.from_pylist(rows, schema=INDEX_SCHEMA)
    return write_table(table, storage.join(path, name), "parquet")


def commit_index(
    files: Iterable[ShardFile], path: str, run: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Write the index manifest: earlier runs' files plus this run's (replacing its own)."""
    new = sorted(files, key=lambda f: f.path)
    own = f"part-{run}-"
    base = load_manifest(path)
    if base is not None and base.config != params:
        for name in ("num_perm", "seed", "ngram", "shingle_hash"):
            if base.config.get(name) != params[name]:
                raise ShardError(f"{path}: cannot extend an index built with other {name}")
    kept = [f for f in (base.files if base else []) if not f.path.startswith(own)]
    listed = {f.path for f in kept} | {f.path for f in new}
    for name in storage.listdir(path):
        if name.startswith(own) and name not in listed:
            storage.remove(storage.join(path, name))
    runs = sorted(set(base.extra.get("runs", []) if base else []) | {run})
    manifest = Manifest(
        kind=KIND,
        format="parquet",
        files=sorted(kept + new, key=lambda f: f.path),
        counts={"documents": sum(f.rows for f in kept + new)},
        config=params,
        extra={"runs": runs},
    )
    manifest.save(path)
    log.info("Index %s: %d documents in %d files.", path, manifest.rows, len(manifest.files))
    return {"path": path, "documents": manifest.rows, "files": len(manifest.files), "run": run}


def _one_key(item: ShardFile | None) -> tuple[None, ShardFile | None]:
    return None, item


def _commit(
    grouped: tuple[None, Iterable[ShardFile | None]], *args: Any
) -> tuple[str, dict[str, Any]]:
    _key, files = grouped
    return "dedup_index", commit_index([f for f in files if f is not None], *args)


class WriteIndex(beam.PTransform):
    """PCollection[Sketch] (a run's kept documents) -> one ("dedup_index", summary) element.

    Writes this run's index files into ``path`` and then the manifest listing them with the
    files of earlier runs. The output element is meant for the run's final commit step.
    """

    def __init__(self, path: str, cfg: DedupConfig, run: str):
        super().__init__()
        self.path, self.run = path, run
        self.banding = banding(cfg.threshold, cfg.num_perm, cfg.fn_weight, cfg.bands, cfg.rows)
        self.params = index_params(cfg, self.banding)

    def expand(self, sketches):
        n_files = (
            sketches | "Count" >> beam.combiners.Count.Globally() | "NumFiles" >> beam.Map(_n_files)
        )
        files = (
            sketches
            | "KeyByFile" >> beam.Map(_shard_of, beam.pvalue.AsSingleton(n_files))
            | "GroupByFile" >> beam.GroupByKey()
            | "WriteFile" >> beam.Map(_write_file, self.path, self.run, self.banding)
        )
        # A marker element, so that a run without documents still commits its (empty) part.
        marker = sketches.pipeline | "Marker" >> beam.Create([None])
        return (
            (files, marker)
            | "Gather" >> beam.Flatten()
            | "OneKey" >> beam.Map(_one_key)
            | "GroupAll" >> beam.GroupByKey()
            | "Commit" >> beam.Map(_commit, self.path, self.run, self.params)
        )

"""The fetch stage as Beam transforms: live or from web archives and checkpointed per unit, or
replayed from WARC.

    FetchUnits(cfg, fetch_dir, archive): PCollection[str] (RUN/urls/part-*.parquet)
        -> list[FetchResult]
    ReplayWarc(cfg, fetch_dir, work): PCollection[str] (unit files; + cfg.warc_inputs)
        -> list[FetchResult]

Every URL ends with one FetchResult and one row in a fetch log (:data:`LOG_SCHEMA`, Parquet):

* live (and the archive backends, :mod:`pipeline.archive.fetcher`, which fetch through the same
  interface): unit ``RUN/urls/part-00007.parquet`` writes ``RUN/fetch/part-00007.warc.zst`` (every
  fetched response, :mod:`pipeline.warc`) and THEN ``RUN/fetch/part-00007.log.parquet``, each
  atomically. The log marks the unit complete: a rerun replays a complete unit from its log and
  WARC (same FetchResults, no request), so a killed job refetches only unfinished units. The
  WARCs are always written (they are the checkpoint); with ``record_warc`` they are gzipped
  (``.warc.gz``, for any WARC reader) and kept, else zstd-compressed (faster) and removed once
  the shards manifest is committed (:func:`discard_unit_warcs`). A rerun looks for the
  checkpoint under its own setting's name: turning ``record_warc`` over between a killed run
  and its rerun refetches the finished units.
* replay: ``RUN/fetch/replay/part-*.parquet``, written by :class:`WriteFetchLog` inside
  :class:`ReplayWarc` from the same FetchResults that go on to extraction (each record is read
  once); its ShardFiles (``ReplayWarc.log_files``) must reach the commit step, e.g. as the
  ``fetch.urls`` count, so that the log is in the graph that feeds it (Dask computes only what
  the last leaf needs).

Replay matches WARC responses to candidates by canonical URL (``dedup.urls.canonicalize`` of the
requested URL our recorder stores, else of ``WARC-Target-URI``); a candidate without one gets
``fetch.not_in_warc``. Several records for one URL: whole records before damaged ones, 2xx
before others, then the latest ``WARC-Date``, then the smallest body hash, so the choice does not
depend on file order.

The join never holds a page, nor every URL in one place: each unit's candidates and each WARC's
index entries (:class:`pipeline.warc.WarcEntry`: file, offset, status, date, body hash) are
written to key files on disk, and one bucket of the canonical URLs at a time is joined from
them (:mod:`pipeline.replay_join`): Beam's local runner holds a grouping in the driver's
memory, so a join through a CoGroupByKey grows with the input. The chosen entries leave in
lists of up to :data:`PAGE_BATCH`, and each list's records are read at their offsets by the
step that turns them into FetchResults, which is fused with extraction: bodies never cross a
shuffle, and extraction gets lists to work on in parallel, as from a live fetch unit. A record
whose payload is shorter than its WARC length, does not match its ``WARC-Payload-Digest`` or
cannot be read again gives ``fetch.warc_damaged``, naming the file, the offset and why.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from foundation import storage
from foundation.batches import batched
from foundation.config import ArchiveConfig, FetchConfig
from foundation.errors import WebtextError
from foundation.records import Candidate, FetchResult, candidate_from_row
from foundation.shards import read_table, write_table
from foundation.write import WriteShards
from pipeline import fetch_rules
from pipeline.fetch_rules import FetchFailure
from pipeline.replay_join import Hit, JoinWarc
from pipeline.warc import (
    CHECKPOINT,
    KEPT,
    WarcCompression,
    WarcResponse,
    iter_responses,
    read_response,
)

log = logging.getLogger(__name__)

LOG_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("final_url", pa.string(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),  # "fetched" or "fetch.<reason>"
        pa.field("status", pa.int32(), nullable=False),  # 0 when no response
        pa.field("error", pa.string(), nullable=False),
        pa.field("content_type", pa.string(), nullable=False),
        pa.field("encoding", pa.string()),
        pa.field("bytes", pa.int64(), nullable=False),  # decoded body size
        pa.field("fetch_time", pa.int64(), nullable=False),  # unix s
        # Seconds, 0 for replay. elapsed: the URL's whole time, from its first request to its
        # outcome: waits for a per-host slot, retry waits and name resolution included (its
        # meaning before queued_s and fetching_s were added). queued_s: waiting for per-host
        # slots; fetching_s: holding one (connecting, sending, reading). Both summed over
        # robots.txt, redirects and retries; elapsed - queued_s - fetching_s is mostly retry
        # waits. A slow host has a high fetching_s, a crowded one a high queued_s.
        pa.field("elapsed", pa.float64(), nullable=False),
        pa.field("queued_s", pa.float64(), nullable=False),
        pa.field("fetching_s", pa.float64(), nullable=False),
        # Provenance: "live", "warc" or the archive's name; the record's address (an archive's
        # replay URL). Logs written before these columns read as live.
        pa.field("source", pa.string()),
        pa.field("record", pa.string()),
    ]
)
REPLAY_LOG_ROWS = 100_000
DAMAGED = "fetch.warc_damaged"


def log_row(
    result: FetchResult, elapsed: float = 0.0, queued_s: float = 0.0, fetching_s: float = 0.0
) -> dict:
    return {
        "doc_id": result.candidate.doc_id,
        "url": result.candidate.url,
        "final_url": result.final_url,
        "outcome": result.outcome,
        "status": result.status,
        "error": result.error,
        "content_type": result.content_type,
        "encoding": result.encoding,
        "bytes": len(result.body),
        "fetch_time": result.fetch_time,
        "elapsed": elapsed,
        "queued_s": queued_s,
        "fetching_s": fetching_s,
        "source": result.source,
        "record": result.record,
    }


def unit_compression(record_warc: bool) -> WarcCompression:
    """Kept WARCs are gzip, for any reader; checkpoints only we read are zstd, for speed."""
    return KEPT if record_warc else CHECKPOINT


def unit_files(fetch_dir: str, unit_path: str, record_warc: bool = False) -> tuple[str, str]:
    """(WARC, log) of a unit: ``part-00007.parquet`` -> ``RUN/fetch/part-00007.warc.zst``
    (``.warc.gz`` with ``record_warc``), ``RUN/fetch/part-00007.log.parquet``."""
    name = unit_path.rsplit("/", 1)[-1].split(".", 1)[0]
    suffix = unit_compression(record_warc).suffix
    return storage.join(fetch_dir, name + suffix), storage.join(fetch_dir, f"{name}.log.parquet")


def discard_unit_warcs(fetch_dir: str) -> int:
    """Remove the unit WARCs (for ``record_warc=False`` after the commit)."""
    suffixes = (KEPT.suffix, CHECKPOINT.suffix)
    names = [n for n in storage.listdir(fetch_dir) if n.endswith(suffixes)]
    for name in names:
        storage.remove(storage.join(fetch_dir, name))
    return len(names)


def read_unit(unit_path: str) -> list[Candidate]:
    return [candidate_from_row(row) for row in read_table(unit_path).to_pylist()]


def replay_unit(candidates: list[Candidate], warc_path: str, log_path: str) -> list[FetchResult]:
    """The FetchResults a finished unit produced, from its log and WARC (no network)."""
    rows = {r["doc_id"]: r for r in read_table(log_path).to_pylist()}
    bodies = {r.doc_id: r.body for r in iter_responses(warc_path)}
    out = []
    for c in candidates:
        row = rows[c.doc_id]
        body = bodies[c.doc_id] if row["outcome"] == "fetched" else b""
        out.append(
            FetchResult(
                candidate=c,
                outcome=row["outcome"],
                status=row["status"],
                final_url=row["final_url"],
                content_type=row["content_type"],
                body=body,
                encoding=row["encoding"],
                fetch_time=row["fetch_time"],
                error=row["error"],
                source="live" if row.get("source") is None else row["source"],
                record=row.get("record") or "",
            )
        )
    return out


PAGE_BATCH = 32
"""A unit's FetchResults leave in lists of up to this many: extraction works on a list's pages in
parallel and emits all of them within its call (a runner may lose what a DoFn emits only when
its bundle ends, as Dask's does), so a list is the unit of parallel extraction."""


class _FetchUnitFn(beam.DoFn):
    """One unit file -> its FetchResults in lists (:data:`PAGE_BATCH`), fetched live or replayed
    from its checkpoint."""

    def __init__(self, cfg: FetchConfig, fetch_dir: str, archive: ArchiveConfig):
        self.cfg, self.fetch_dir, self.archive = cfg, fetch_dir, archive
        self.fetched_units = Metrics.counter(self.__class__, "units_fetched")
        self.replayed_units = Metrics.counter(self.__class__, "units_replayed")

    def setup(self) -> None:
        from pipeline.archive.fetcher import make_fetcher

        self.fetcher = make_fetcher(self.cfg, self.archive, self.fetch_dir)

    def teardown(self) -> None:
        self.fetcher.close()

    def process(self, unit_path: str):
        warc_path, log_path = unit_files(self.fetch_dir, unit_path, self.cfg.record_warc)
        candidates = read_unit(unit_path)
        if storage.exists(log_path) and storage.exists(warc_path):
            try:
                results = replay_unit(candidates, warc_path, log_path)
            except Exception as e:  # a corrupt or partial checkpoint: the unit is fetched again
                log.warning("%s: checkpoint unusable (%r); fetching the unit again", log_path, e)
            else:
                self.replayed_units.inc()
                yield from batched(results, PAGE_BATCH)
                return
        found = None
        if self.cfg.reads_archives:
            from pipeline.archive.captures import unit_captures

            found = unit_captures(self.archive, self.fetch_dir, unit_path)
        yield from batched(self._fetch(candidates, warc_path, log_path, found), PAGE_BATCH)
        self.fetched_units.inc()

    def _fetch(self, candidates: list[Candidate], warc_path: str, log_path: str, found=None):
        """Each result goes downstream as soon as it is fetched and recorded, so extraction runs
        while the unit's other requests are in flight; the log, which marks the unit complete,
        is written after the WARC is closed. A bundle that fails midway commits none of them.
        ``found``: the unit's captures from the columnar join (:mod:`pipeline.archive.captures`)."""
        from pipeline.warc import WarcRecorder

        start = time.monotonic()
        rows, fetched = [], 0
        with WarcRecorder(warc_path, unit_compression(self.cfg.record_warc)) as recorder:
            stream = (
                self.fetcher.stream(candidates, found) if found else self.fetcher.stream(candidates)
            )
            for e in stream:
                r = e.result
                if r.ok:
                    fetched += 1
                    recorder.write(
                        r.candidate.url,
                        r.final_url,
                        r.status,
                        e.reason,
                        e.headers,
                        r.body,
                        e.request_headers,
                        doc_id=r.candidate.doc_id,
                        fetch_time=r.fetch_time,
                    )
                rows.append(log_row(r, e.elapsed, e.queued_s, e.fetching_s))
                Metrics.counter("fetch", r.outcome).inc()
                yield r
        write_table(pa.Table.from_pylist(rows, schema=LOG_SCHEMA), log_path, "parquet")
        log.info(
            "%s: %d URLs, %d fetched, %.1fs with their extraction",
            log_path,
            len(rows),
            fetched,
            time.monotonic() - start,
        )


class FetchUnits(beam.PTransform):
    """Unit files -> FetchResults, live or from archives (``cfg.backend``), resumable per unit
    (see the module docstring)."""

    def __init__(self, cfg: FetchConfig, fetch_dir: str, archive: ArchiveConfig | None = None):
        super().__init__()
        if cfg.replays:
            raise ValueError(
                f"FetchUnits fetches; fetch.backend {cfg.backend!r} replays (ReplayWarc)"
            )
        self.cfg, self.fetch_dir = cfg, fetch_dir
        self.archive = archive or ArchiveConfig()

    def expand(self, units):
        return (
            units
            | "SpreadUnits" >> beam.Reshuffle()
            | "FetchUnit" >> beam.ParDo(_FetchUnitFn(self.cfg, self.fetch_dir, self.archive))
        )


# --- WARC replay ---------------------------------------------------------------------------------


class WarcInputError(WebtextError, FileNotFoundError):
    """A ``fetch.warc_inputs`` entry matches no file."""


def check_warc_inputs(cfg: FetchConfig) -> None:
    """Raise WarcInputError for the first WARC input that matches nothing, before any pipeline
    runs (replay expands them on the workers, after the whole URL phase)."""
    if cfg.replays:
        for spec in cfg.warc_inputs:
            expand_warc_input(spec)


def expand_warc_input(spec: str) -> list[str]:
    """The files a ``warc_inputs`` entry names: a file, a directory (its ``*.warc*``/``*.arc*``
    files) or a glob, sorted."""
    suffixes = (".warc", ".warc.gz", ".warc.zst", ".arc", ".arc.gz")
    files = storage.expand_files(spec, suffixes)
    if files is None:
        raise WarcInputError(f"{spec}: no WARC file matches it (fetch.warc_inputs)")
    return files


def result_from_response(candidate: Candidate, resp: WarcResponse, cfg: FetchConfig) -> FetchResult:
    """Apply the live fetcher's rules (status, content type, caps, charset) to a WARC record."""
    base = {
        "candidate": candidate,
        "final_url": resp.target_uri,
        "status": resp.status,
        "fetch_time": resp.timestamp,
        "source": "warc",
    }
    try:
        if not 200 <= resp.status < 300:
            raise FetchFailure(f"http_{resp.status}", f"HTTP {resp.status} in the WARC")
        kind, body = stored_page(resp, cfg)
    except FetchFailure as e:
        return FetchResult(outcome=f"fetch.{e.reason}", error=str(e), **base)
    return FetchResult(
        outcome="fetched",
        content_type=kind,
        body=body,
        encoding=fetch_rules.detect_charset(resp.header("content-type"), body),
        **base,
    )


def stored_page(resp: WarcResponse, cfg: FetchConfig) -> tuple[str, bytes]:
    """The sniffed content type and decoded body of a stored 2xx response, under the live
    fetcher's rules (content type, size and decompression caps); FetchFailure if it is no page."""
    content_type = resp.header("content-type")
    fetch_rules.check_content_type(content_type)
    body = fetch_rules.decode_body(
        resp.header("content-encoding"), [resp.body], cfg.max_bytes, cfg.max_decompressed_bytes
    )
    return fetch_rules.check_sniffed(content_type, body), body


def replay_hit(hit: Hit, cfg: FetchConfig) -> FetchResult:
    """The FetchResult of a hit: its record read from the WARC, through the live rules."""
    c, entry = hit.candidate, hit.entry
    if entry is None:
        return FetchResult(c, "fetch.not_in_warc", error=f"no WARC record for {hit.key}")
    damaged = entry.damaged
    if not damaged:
        Metrics.counter("replay", "records_read").inc()
        try:
            resp = read_response(entry, max_body=cfg.max_bytes)
        except Exception as e:  # the file changed or broke since it was indexed
            damaged = f"cannot be read again: {e!r}"
        else:
            if hashlib.sha1(resp.body).hexdigest() != entry.digest:
                damaged = "its payload changed since the WARC was indexed"
            else:
                result = result_from_response(c, resp, cfg)
                return replace(result, record=f"{entry.path}@{entry.offset}")
    return FetchResult(
        c,
        DAMAGED,
        status=entry.status,
        final_url=entry.target_uri,
        fetch_time=entry.timestamp,
        error=f"{entry.path} at offset {entry.offset}: {damaged}",
        source="warc",
        record=f"{entry.path}@{entry.offset}",
    )


def replay_hits(hits: list[Hit], cfg: FetchConfig) -> list[FetchResult]:
    return [replay_hit(hit, cfg) for hit in hits]


def _log_rows(results: list[FetchResult]) -> list[dict]:
    return [log_row(r) for r in results]


class WriteFetchLog(beam.PTransform):
    """Log rows (:func:`log_row`) -> ShardFiles of the fetch log in ``directory``
    (deterministic names)."""

    def __init__(self, directory: str):
        super().__init__()
        self.directory = directory

    def expand(self, rows):
        return rows | "WriteLog" >> WriteShards(
            self.directory, "parquet", REPLAY_LOG_ROWS, LOG_SCHEMA, id_field="doc_id"
        )


class _RecoverDeadFn(beam.DoFn):
    """Lists of replayed FetchResults -> the same lists, the links the WARC has no page for
    read from the archives (:func:`pipeline.archive.fetcher.recover_dead`); lookups are cached
    under the fetch directory, so a rerun does not ask again."""

    def __init__(self, cfg: FetchConfig, archive: ArchiveConfig, fetch_dir: str):
        self.cfg, self.archive, self.fetch_dir = cfg, archive, fetch_dir

    def setup(self) -> None:
        from pipeline.archive.fetcher import ArchiveFetcher, lookups_dir

        cache = lookups_dir(self.archive, self.fetch_dir)
        self.fetcher = ArchiveFetcher(self.cfg, self.archive, cache)

    def teardown(self) -> None:
        self.fetcher.close()

    def process(self, results: list[FetchResult]):
        from pipeline.archive.fetcher import recover_dead

        yield recover_dead(results, self.fetcher)


class ReplayWarc(beam.PTransform):
    """Unit files -> lists of FetchResults of their candidates, read from ``cfg.warc_inputs``
    (module docstring); with ``fetch.backend = "warc+archive"`` what the WARC has no page for
    is read from the archives of ``archive``.

    The join's key and hit files go to ``work`` (:mod:`pipeline.replay_join`), which the caller
    removes once the pipeline is done. The fetch log goes to ``FETCH_DIR/replay/``;
    ``self.log_files`` is the PCollection of its ShardFiles, which the caller must feed to its
    commit step (on Dask, nothing else makes the log be written).
    """

    def __init__(
        self, cfg: FetchConfig, fetch_dir: str, work: str, archive: ArchiveConfig | None = None
    ):
        super().__init__()
        if not cfg.warc_inputs:
            raise ValueError("ReplayWarc needs fetch.warc_inputs (WARC files, globs or dirs)")
        if cfg.backend == "warc+archive" and archive is None:
            raise ValueError("fetch.backend 'warc+archive' needs the archive config")
        self.cfg, self.fetch_dir, self.work, self.archive = cfg, fetch_dir, work, archive
        self.log_files = None

    def expand(self, units):
        cfg = self.cfg
        warcs = (
            units.pipeline
            | "WarcInputs" >> beam.Create(list(cfg.warc_inputs))
            | "ExpandInputs" >> beam.FlatMap(expand_warc_input)
        )
        join = JoinWarc(self.work, cfg.max_bytes, cfg.replay_bucket_urls, PAGE_BATCH)
        results = (units, warcs) | "Join" >> join | "ReadRecords" >> beam.Map(replay_hits, cfg)
        if cfg.backend == "warc+archive":
            results = results | "RecoverDead" >> beam.ParDo(
                _RecoverDeadFn(cfg, self.archive, self.fetch_dir)
            )
        self.log_files = (
            results
            | "LogRows" >> beam.FlatMap(_log_rows)
            | "FetchLog" >> WriteFetchLog(storage.join(self.fetch_dir, "replay"))
        )
        return results

"""The ingestion job: Reddit submissions to deduplicated text shards, as two Beam pipelines.

    urls phase:  dumps | praw -> submissions -> filters, canonical URL, URL dedup, karma
                 -> RUN/urls/part-*.parquet (each file one fetch unit) + _manifest.json
    pages phase: units -> fetch (live, checkpointed per unit | WARC replay) -> extract -> quality
                 -> exact dedup -> near dedup -> RUN/shards/part-*.parquet + _manifest.json

Each phase ends in one commit step fed by all its outputs, so it is correct on runners that only
compute the graph's last leaf (Dask), and a phase whose manifest exists is skipped on a rerun. A
killed pages phase resumes unit by unit: finished fetch units are replayed from their WARC.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import apache_beam as beam

from foundation import storage
from foundation.beam import beam_options
from foundation.config import JobConfig
from foundation.droplog import DropLog, LogDrops, drops_dir
from foundation.drops import SplitDrops
from foundation.errors import NoOutputError, WebtextError
from foundation.layout import RunLayout
from foundation.records import Drop, FetchResult
from foundation.shards import REJECTED, Manifest, ShardFile
from foundation.write import (
    CommitManifest,
    CommitShards,
    as_count,
    as_drops,
    as_extra,
    as_file,
    is_complete,
)

log = logging.getLogger(__name__)

BAD_EXAMPLES = 20
URLS_ON_DASK = "--dask_partition_size=1"
"""The URL phase on Dask: a partition per (dump file, reader) item, so ``source.readers``
tasks parse a dump (the phase has no side inputs, which Dask would recompute per partition)."""


class IngestError(WebtextError, RuntimeError):
    """The job could not complete; the message says which stage and why."""


class FetchFailureError(IngestError):
    """More of the job's fetches failed than ``fetch.max_failure_fraction`` allows."""


@dataclass(frozen=True)
class IngestResult:
    shards_dir: str
    urls: Manifest
    shards: Manifest
    seconds: dict[str, float]


# --- urls phase ----------------------------------------------------------------------------------


def _named(value: object, name: str) -> tuple[str, object]:
    """Keyed for a per-key combine: a global one (Top.Smallest) yields from finish_bundle,
    which Dask loses, and injects its default through a side input."""
    return name, value


def spill_dir(urls_dir: str) -> str:
    """Where the URL phase spills chunks, postings and candidates; removed when it ends."""
    return storage.join(urls_dir, "_spill")


def bad_fraction_check(max_bad_fraction: float):
    """A commit check that vetoes the urls phase when too many dump lines were malformed."""
    return _BadFractionCheck(max_bad_fraction)


@dataclass(frozen=True)
class _BadFractionCheck:
    max_bad_fraction: float

    def __call__(self, manifest: Manifest) -> str | None:
        from pipeline.sources import BadInputError, check_bad_fraction

        bad = {k: v for k, v in manifest.counts.items() if k.startswith("source.")}
        bad.pop("source.submissions", None)
        try:
            check_bad_fraction(
                manifest.counts.get("source.submissions", 0),
                bad,
                self.max_bad_fraction,
                manifest.extra.get("bad_examples", []),
            )
        except BadInputError as e:
            return str(e)
        return None


def build_urls_pipeline(p: beam.Pipeline, cfg: JobConfig, urls_dir: str) -> None:
    from pipeline.postings import BAD_EXAMPLES, DedupUrls
    from pipeline.reddit_api import ReadRedditApi
    from pipeline.sources import SplitDumps
    from pipeline.url_units import WriteUnits

    spill = spill_dir(urls_dir)
    batches = []
    if cfg.source.dumps:
        chunks = storage.join(spill, "chunks")
        split = SplitDumps(cfg.source.dumps, chunks, cfg.source.chunk_mb << 20, cfg.source.readers)
        batches.append(p | "SplitDumps" >> split)
    if cfg.source.subreddits:
        batches.append(
            p
            | "ReadRedditApi" >> ReadRedditApi(cfg.source)
            | "ApiBatches" >> beam.BatchElements(min_batch_size=1000, max_batch_size=5000)
        )
    if not batches:
        raise IngestError("no source: give dump files (source.dumps) or subreddits")
    drop_log = DropLog(drops_dir(urls_dir), cfg.output.max_drops_per_rule)
    deduped = (
        batches
        | "AllSources" >> beam.Flatten()
        | "DedupUrls" >> DedupUrls(cfg.filter, spill, drop_log)
    )
    units = deduped["candidates"] | "WriteUnits" >> WriteUnits(urls_dir, cfg.output.unit_urls)
    examples = (
        deduped["examples"]
        | "ExamplesExtra" >> beam.Map(_named, "bad_examples")
        | "FirstExamples" >> beam.combiners.Top.SmallestPerKey(BAD_EXAMPLES)
    )
    commit_items = [
        units | "Files" >> beam.Map(as_file),
        deduped["counts"] | "Counts" >> beam.Map(as_count),
        examples | "Extras" >> beam.Map(as_extra),
        deduped["drops"] | "DropParts" >> beam.Map(as_drops),
    ]
    _ = (
        commit_items
        | "CommitItems" >> beam.Flatten()
        | "Commit"
        >> CommitManifest(
            urls_dir,
            kind="urls",
            fmt="parquet",
            config=cfg.to_dict(),
            check=bad_fraction_check(cfg.source.max_bad_fraction),
            drop_log=drop_log,
        )
    )


# --- pages phase ---------------------------------------------------------------------------------


def _fetch_drop(result: FetchResult) -> Drop:
    c = result.candidate
    return Drop(result.outcome, where=c.url, detail=result.error, id=c.doc_id, url=c.url)


def _fetched(batch: list[FetchResult]) -> list[FetchResult]:
    return [result for result in batch if result.ok]


def _is_failed(result: FetchResult) -> bool:
    return not result.ok


def _count_url(_: object) -> tuple[str, int]:
    return "fetch.urls", 1


def _logged_urls(log_file: ShardFile) -> tuple[str, int]:
    """A replay log shard's rows, one per URL: the count that puts the log in the commit's
    graph (Dask computes only what the commit needs)."""
    return "fetch.urls", log_file.rows


def _count_source(result: FetchResult) -> list[tuple[str, int]]:
    """Pages fetched from each source (live, warc, an archive's name), for the manifest."""
    return [(f"fetched.{result.source}", 1)] if result.ok else []


def build_pages_pipeline(
    p: beam.Pipeline, cfg: JobConfig, unit_paths: list[str], layout: RunLayout
) -> None:
    from pipeline.extract import Extract
    from pipeline.fetch import FetchUnits, ReplayWarc
    from pipeline.quality import Quality
    from pipeline.spill import SpillDocuments, unspill

    units = p | "Units" >> beam.Create(unit_paths)
    if not cfg.fetch.replays:
        batches = units | "Fetch" >> FetchUnits(cfg.fetch, layout.fetch, cfg.archive)
        results = batches | "Results" >> beam.FlatMap(list)
        urls = results | "CountUrls" >> beam.Map(_count_url)
    else:
        work = storage.join(layout_spill(layout), "_replay")  # removed with the spill
        replay = ReplayWarc(cfg.fetch, layout.fetch, work, cfg.archive)
        batches = units | "Replay" >> replay
        results = batches | "Results" >> beam.FlatMap(list)
        urls = replay.log_files | "CountUrls" >> beam.Map(_logged_urls)
    failed = results | "Failed" >> beam.Filter(_is_failed) | "FetchDrops" >> beam.Map(_fetch_drop)
    pages = batches | "Fetched" >> beam.Map(_fetched)
    docs, extract_drops = pages | "Extract" >> Extract(cfg.extract) | "SplitExtract" >> SplitDrops()
    docs, quality_drops = docs | "Quality" >> Quality(cfg.quality) | "SplitQuality" >> SplitDrops()
    docs = docs | "Spill" >> SpillDocuments(layout_spill(layout))  # what follows carries ids
    log = DropLog(drops_dir(layout.shards), cfg.output.max_drops_per_rule)
    deduped = _dedup(docs, cfg, layout, log)
    drops = (failed, extract_drops, quality_drops) | "AllDrops" >> beam.Flatten()
    sources = results | "CountSources" >> beam.FlatMap(_count_source)
    _ = {
        "documents": deduped.documents,  # references: the text stays behind
        "drops": drops,
        "drop_parts": deduped.drops,
        "extras": deduped.extras,
    } | "Commit" >> CommitShards(
        layout.shards,
        cfg.output,
        cfg.to_dict(),
        counts=(urls, sources),
        resolve=unspill,
        drop_log=log,
    )


def _dedup(docs: beam.PCollection, cfg: JobConfig, layout: RunLayout, log: DropLog):
    """Slim spilled documents -> DedupOutputs whose documents are references to the survivors
    and whose drops are parts of ``log``.

    Decided from ids over the spill files (:mod:`pipeline.spill_dedup`), unless a persisted
    index is read or written: the in-memory transform carries the sketches the index needs."""
    if cfg.dedup.index or cfg.dedup.write_index:
        from dedup.index import run_key
        from dedup.stage import Deduplicate
        from pipeline.spill import reference

        out = docs | "Dedup" >> Deduplicate(cfg.dedup, layout.dedup, run_key(layout.shards))
        return out._replace(
            documents=out.documents | "References" >> beam.Map(reference),
            drops=out.drops | "LogDedupDrops" >> LogDrops(log.directory, log.cap),
        )
    from pipeline.spill_dedup import DedupSpilled

    work = storage.join(layout_spill(layout), "_dedup")
    return docs | "Dedup" >> DedupSpilled(cfg.dedup, work, layout.dedup, log)


def layout_spill(layout: RunLayout) -> str:
    """Where the pages phase writes its documents once (:mod:`pipeline.spill`)."""
    return storage.join(layout.fetch, "spill")


# --- the job -------------------------------------------------------------------------------------


class _UnitProgress:
    """A progress bar over finished fetch units, read from the run directory while Beam runs."""

    def __init__(self, fetch_dir: str, total: int, enabled: bool):
        self.fetch_dir, self.total, self.enabled = fetch_dir, total, enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _done(self) -> int:
        return sum(name.endswith(".log.parquet") for name in storage.listdir(self.fetch_dir))

    def _poll(self) -> None:
        from tqdm import tqdm

        with tqdm(
            total=self.total, desc="fetch units", unit="unit", disable=not self.enabled
        ) as bar:
            while not self._stop.wait(0.5):
                bar.update(self._done() - bar.n)
            bar.update(self._done() - bar.n)

    def __enter__(self) -> _UnitProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_ingest(cfg: JobConfig, layout: RunLayout, progress: bool = True) -> IngestResult:
    """The ingest stage: run (or resume) both phases into ``layout``; what each made."""
    from pipeline.archive.fetcher import check_sources
    from pipeline.fetch import check_warc_inputs

    if not is_complete(layout.shards):
        check_warc_inputs(cfg.fetch)
        check_sources(cfg.fetch, cfg.archive, layout.fetch)
    seconds: dict[str, float] = {}
    urls = run_urls(cfg, layout, seconds)
    if is_complete(layout.shards):
        log.info("Pages phase already complete in %s; skipping it.", layout.shards)
    else:
        seconds["pages"] = _timed(_pages_phase, cfg, layout, urls.paths(layout.urls), progress)
    return IngestResult(layout.shards, urls, Manifest.load(layout.shards), seconds)


def check_ingest(cfg: JobConfig, result: IngestResult) -> None:
    """Fail loudly on a crawl that lost (nearly) everything, once its outputs are committed:
    FetchFailureError past ``fetch.max_failure_fraction``, NoOutputError without documents."""
    from pipeline.rules import URLS_FETCHED, fetch_failures, largest

    shards = result.shards
    counts = {**result.urls.counts, **shards.counts}
    tried, failed = counts.get(URLS_FETCHED, 0), fetch_failures(shards.counts)
    where = f"the shards and their counts are in {result.shards_dir}"
    if tried and failed / tried > cfg.fetch.max_failure_fraction:
        raise FetchFailureError(
            f"{failed:,} of {tried:,} fetches failed ({failed / tried:.0%}), more than "
            f"fetch.max_failure_fraction={cfg.fetch.max_failure_fraction:g} allows "
            f"({largest(shards.counts, 'fetch.')}); {where}"
        )
    if shards.rows == 0:
        raise NoOutputError(
            f"no documents from {tried:,} candidate URLs ({largest(counts)}); {where}"
        )


def check_urls(urls: Manifest, directory: str) -> None:
    """Fail loudly on a URL phase that found nothing to fetch (``--urls-only``; a full ingest
    fails the same way at its end, with no documents)."""
    from pipeline.rules import largest

    if urls.rows == 0:
        read = urls.counts.get("source.submissions", 0)
        raise NoOutputError(
            f"no candidate URLs from {read:,} submissions ({largest(urls.counts)}); "
            f"the counts are in {directory}"
        )


def run_urls(cfg: JobConfig, layout: RunLayout, seconds: dict[str, float]) -> Manifest:
    """The URL phase alone: run it unless complete (adding its time to ``seconds``)."""
    if is_complete(layout.urls):
        log.info("URL phase already complete in %s; skipping it.", layout.urls)
        storage.remove(spill_dir(layout.urls))  # if it was killed just after its commit
    else:
        seconds["urls"] = _timed(_urls_phase, cfg, layout)
    return Manifest.load(layout.urls)


def _timed(phase, *args) -> float:
    start = time.perf_counter()
    phase(*args)
    return time.perf_counter() - start


def _urls_phase(cfg: JobConfig, layout: RunLayout) -> None:
    spill = spill_dir(layout.urls)
    storage.remove(spill)  # what a killed run left: the phase starts over
    try:
        options = beam_options(cfg.output, URLS_ON_DASK)
        with beam.Pipeline(options=options) as p:
            build_urls_pipeline(p, cfg, layout.urls)  # bad inputs fail here, before it runs
            storage.makedirs(layout.urls)  # and so does a run directory that cannot hold it
    finally:
        storage.remove(spill)
    rejected = storage.join(layout.urls, REJECTED)
    if storage.exists(rejected):
        raise IngestError(json.loads(storage.read_text(rejected))["extra"]["rejected"])


def _pages_phase(cfg: JobConfig, layout: RunLayout, unit_paths: list[str], progress: bool) -> None:
    from pipeline.spill import clear

    show = progress and not cfg.fetch.replays
    clear(layout_spill(layout))  # what a killed run left
    if cfg.fetch.reads_archives and not cfg.fetch.replays and cfg.archive.columnar_index:
        from pipeline.archive.captures import find_captures

        find_captures(cfg.archive, layout.fetch, unit_paths, beam_options(cfg.output))
    with (
        _UnitProgress(layout.fetch, len(unit_paths), show),
        beam.Pipeline(options=beam_options(cfg.output)) as p,
    ):
        build_pages_pipeline(p, cfg, unit_paths, layout)
    clear(layout_spill(layout))
    if not cfg.fetch.replays and not cfg.fetch.record_warc and is_complete(layout.shards):
        from pipeline.fetch import discard_unit_warcs

        removed = discard_unit_warcs(layout.fetch)
        log.info("Removed %d fetch checkpoints (fetch.record_warc is off).", removed)

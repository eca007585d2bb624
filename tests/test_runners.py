"""The same ingest pipeline on real distributed engines gives exactly the same shards.

A Dask cluster (``dask scheduler`` and two ``dask worker`` processes) through Beam's DaskRunner,
and Beam's portability layer (a local job service and an external SDK worker pool, the protocol
Flink, Spark and Dataflow use), each against the FnApiRunner run on the same input.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from foundation.config import ExtractConfig, JobConfig, with_overrides
from foundation.layout import RunLayout
from foundation.shards import Manifest, read_shards, read_table
from pipeline.extract import Extract
from pipeline.extraction import TIMEOUT
from pipeline.ingest import run_ingest
from tests.page_server import PageServer, append_line, article_html, submission, write_dump
from tests.test_extract import ARTICLE, _outcome, page, slow_page

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args} exited with {p.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def _processes(*commands: list[str]) -> Iterator[list[subprocess.Popen]]:
    """Start ``commands`` with this venv first on PATH and the checkout importable (Dask's
    scheduler unpickles the graph, which names tests' own helpers by module)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": path}
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for c in commands
    ]
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def served_dump(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runners")
    pages = {f"/r/{i}.html": article_html(5000 + i) for i in range(30)}
    pages["/dup.html"] = pages["/r/3.html"]
    with PageServer(pages) as server:
        subs = [submission(i, server.base_url + p, score=3 + i) for i, p in enumerate(pages)]
        subs.append(submission(99, "https://en.wikipedia.org/wiki/Dask", score=50))
        dump = tmp / "RS_runners.zst"
        write_dump(dump, subs)
        yield tmp, dump


def _ingest(
    run_dir: Path, dump: Path, beam_args: tuple[str, ...] = (), **overrides: object
) -> list[dict]:
    cfg = with_overrides(
        JobConfig(),
        {
            **overrides,
            "output.run_dir": str(run_dir),
            "output.workers": 2,
            "output.unit_urls": 7,
            "output.shard_docs": 8,
            "output.beam_args": beam_args,
            "source.dumps": (str(dump),),
            "fetch.allow_addresses": ("127.0.0.1",),
            "fetch.per_host_delay_s": 0.0,
            "fetch.per_host_concurrency": 8,
            "quality.min_words": 100,
            **overrides,
        },
    )
    run_ingest(cfg, RunLayout.at(cfg.output.run_dir), progress=False)
    table = read_shards(str(run_dir / "shards"))
    rows = table.drop_columns(["fetch_time"]).to_pylist()
    return sorted(rows, key=lambda r: r["id"])


@pytest.fixture(scope="module")
def reference(served_dump):
    tmp, dump = served_dump
    docs = _ingest(tmp / "fnapi", dump, **{"fetch.record_warc": True})
    assert len(docs) == 30  # 31 pages, one an exact copy
    return docs


def _replayed(tmp: Path, name: str, dump: Path, beam_args: tuple[str, ...] = ()) -> list[dict]:
    """Ingest from the reference run's recorded WARCs; checks that the fetch log has every URL
    (on Dask it is written only if it feeds the commit)."""
    warcs = str(tmp / "fnapi" / "fetch" / "*.warc.gz")
    run = tmp / name
    overrides = {"fetch.backend": "warc", "fetch.warc_inputs": (warcs,)}
    docs = _ingest(run, dump, beam_args, **overrides)
    log_files = sorted((run / "fetch" / "replay").iterdir())
    logged = [u for f in log_files for u in read_table(str(f), ["url"]).column("url").to_pylist()]
    assert len(logged) == len(set(logged)) == Manifest.load(str(run / "urls")).rows
    assert {d["source"] for d in docs} == {"warc"}  # provenance: read from a WARC, at an offset
    assert all(d["record"].split("@")[0].endswith(".warc.gz") for d in docs)
    return _without_provenance(docs)


def _without_provenance(docs: list[dict]) -> list[dict]:
    """Documents apart from where their bytes came from (live or a WARC record)."""
    return [{k: v for k, v in d.items() if k not in ("source", "record")} for d in docs]


def test_replay_gives_the_live_documents(served_dump, reference):
    tmp, dump = served_dump
    assert _replayed(tmp, "replay", dump) == _without_provenance(reference)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    """A scheduler and two one-thread workers on loopback; yields the scheduler's address."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    scheduler += ["--no-dashboard"]
    worker = [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"]
    with _processes(scheduler, worker, worker) as procs:
        _wait_for_port(port, procs)
        yield address


def _on_dask(address: str) -> tuple[str, ...]:
    return (
        "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
        f"--dask_client_address={address}",
    )


def test_dask_cluster_gives_the_same_documents(served_dump, reference, dask_cluster):
    """Two readers of the dump: the URL phase in two Dask partitions (one of them empty)."""
    tmp, dump = served_dump
    docs = _ingest(tmp / "dask", dump, _on_dask(dask_cluster), **{"source.readers": 2})
    assert docs == reference


def test_dask_replay_gives_the_live_documents(served_dump, reference, dask_cluster):
    tmp, dump = served_dump
    replayed = _replayed(tmp, "dask-replay", dump, _on_dask(dask_cluster))
    assert replayed == _without_provenance(reference)


@pytest.fixture(scope="module")
def archived(archive_world, tmp_path_factory):
    """A dump of links into the archive world (a real pywb, tests/archive_world.py), the
    archive backend's settings and the documents the FnApiRunner reads with them."""
    from tests.archive_world import NEWS, SUBMITTED
    from tests.test_archive import ARCHIVE

    tmp = tmp_path_factory.mktemp("archived")
    paths = ("story", "moved", "rev", "flaky", "gone", "never")
    subs = [submission(i, f"{NEWS}/{p}", created_utc=SUBMITTED) for i, p in enumerate(paths)]
    dump = tmp / "RS_archived.zst"
    write_dump(dump, subs)
    settings = {"fetch.backend": "archive", "archive.sources": (archive_world.source,)}
    settings |= {f"archive.{k}": v for k, v in ARCHIVE.items()}
    reference = _ingest(tmp / "fnapi", dump, **settings)
    assert {d["source"] for d in reference} == {"local"}
    assert len(reference) == 4  # gone: only a 404 capture; never: not archived
    return dump, settings, reference


def test_dask_cluster_gives_the_same_documents_from_an_archive(archived, dask_cluster, tmp_path):
    dump, settings, reference = archived
    assert _ingest(tmp_path / "dask", dump, _on_dask(dask_cluster), **settings) == reference


def test_on_dask_extraction_runs_its_children_in_parallel(dask_cluster, tmp_path):
    """With two children, the ordinary page leaves while the slow one still runs in the other;
    one child at a time (what Dask was once limited to) would emit the slow page's drop first."""
    pages = [page(slow_page(), doc_id="slow"), page(ARTICLE.encode(), doc_id="good")]
    out = tmp_path / "outcomes.jsonl"
    cfg = ExtractConfig(timeout_s=2.0, processes=2)
    options = PipelineOptions(list(_on_dask(dask_cluster)))
    with beam.Pipeline(options=options) as p:
        outcomes = p | beam.Create([pages]) | Extract(cfg) | beam.Map(_outcome)
        _ = outcomes | beam.Map(append_line, str(out))  # Dask's workers import it by module
    outcomes = [json.loads(line) for line in out.read_text().splitlines()]
    assert outcomes == [["doc", "good"], [TIMEOUT, "https://example.org/slow"]]


def test_portable_runner_gives_the_same_documents(served_dump, reference, archived, archive_world):
    """Live pages, and archived ones by Common Crawl's route (CDX, then one Range read per
    record), on Beam's portability layer give the FnApiRunner's documents."""
    tmp, dump = served_dump
    job_port, pool_port = _free_port(), _free_port()
    python = sys.executable
    job_service = [
        python,
        "-m",
        "apache_beam.runners.portability.local_job_service_main",
        "--port",
        str(job_port),
    ]
    pool = [
        python,
        "-m",
        "apache_beam.runners.worker.worker_pool_main",
        "--service_port",
        str(pool_port),
    ]
    portable = (
        "--runner=PortableRunner",
        f"--job_endpoint=localhost:{job_port}",
        "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{pool_port}",
    )
    archived_dump, settings, archived_reference = archived
    settings = {**settings, "archive.sources": (archive_world.cc_source,)}
    with _processes(job_service, pool) as procs:
        _wait_for_port(job_port, procs)
        _wait_for_port(pool_port, procs)
        docs = _ingest(tmp / "portable", dump, portable)
        from_archive = _ingest(tmp / "portable-archive", archived_dump, portable, **settings)
    assert docs == reference
    assert {d["source"] for d in from_archive} == {"cc"}
    assert _without_provenance(from_archive) == _without_provenance(archived_reference)


def _dedup(run: Path, beam_args: tuple[str, ...] = ()) -> list[dict]:
    from dedup.shards import run_dedup

    cfg = with_overrides(
        JobConfig(),
        {
            "output.run_dir": str(run),
            "output.workers": 2,
            "output.beam_args": beam_args,
            "dedup.cc_rounds": 4,
            "dedup.bucket_docs": 4,
        },
    )
    out = run / "dedup"
    run_dedup(cfg, RunLayout.at(str(run)), str(out))
    rows = read_shards(str(out)).to_pylist()
    return sorted(rows, key=lambda r: r["id"])


def test_dask_dedup_by_id_gives_the_same_shards(dask_cluster, tmp_path):
    """``webtext dedup`` on Dask: shards in two partitions, no side inputs, the local output."""
    import shutil

    from tests.test_dedup_by_id import _planted, _shards

    _shards(tmp_path / "local" / "shards", _planted())
    shutil.copytree(tmp_path / "local" / "shards", tmp_path / "dask" / "shards")
    reference = _dedup(tmp_path / "local")
    assert len(reference) == len(_planted()) - 10  # 5 exact and 5 near copies removed
    assert _dedup(tmp_path / "dask", _on_dask(dask_cluster)) == reference

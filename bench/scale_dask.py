"""The ingest URL stage and dedup on a Dask cluster beside the local runner: same output? cost?

Starts ``dask scheduler`` and two ``dask worker --memory-limit`` processes on loopback, generates
(seeded, streaming) a Pushshift-style ``.zst`` dump of ``--subs`` submissions (self posts, NSFW,
heavy-tailed scores, reposts under URL variations, Wikipedia, media and Reddit links) and text
shards of ``--docs`` documents (a fifth near-duplicates of earlier ones), then runs each stage
on Dask and on the local runner (FnApiRunner, 2 workers). It checks the outputs are exactly
equal (candidate URLs with their karma and submissions; kept document ids) and prints wall time,
CPU seconds and the peak RSS of the process tree (client + scheduler + workers, every 0.5 s).
The dask processes are always stopped. Figures and their history: docs/benchmarks.md.

    PYTHONPATH=$PWD python bench/scale_dask.py [--subs 100000] [--docs 5000] [--worker-mem 4GB]
        [--readers 2] [--skip ingest|dedup]

On Dask the URL stage runs with ``source.readers`` readers per dump and a partition per reader,
dedup with a partition per worker (``foundation.beam``); the local run uses the defaults.
Last line: ``scale_dask: ingest_equal=1 dedup_equal=1 ingest_s=... dedup_s=... peak_mb=...
worker_mb=...`` (worker_mb: the largest single dask worker's peak).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.context import print_context  # noqa: E402
from bench.process_tree import VENV_BIN, tree_rss  # noqa: E402

DASK_RUNNER = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"
SHARD_DOCS = 1000


# --- inputs --------------------------------------------------------------------------------------


def _url(rng: random.Random, i: int, earlier: list[str]) -> tuple[str, bool]:
    """A submission's URL and whether it is a self post."""
    roll = rng.random()
    if roll < 0.10:
        return f"https://www.reddit.com/r/test/comments/{i:x}/", True
    if roll < 0.14:
        return f"https://en.wikipedia.org/wiki/Topic_{rng.randrange(5000)}", False
    if roll < 0.18:
        return f"https://i.imgur.com/{i:x}.jpg", False
    if roll < 0.21:
        return f"https://www.reddit.com/r/other/comments/{rng.randrange(10**6):x}/", False
    if roll < 0.36 and earlier:  # a repost, often spelled differently
        url = rng.choice(earlier)
        variant = rng.randrange(4)
        if variant == 1:
            url = url.replace("https://", "http://", 1)
        elif variant == 2:
            url += "?utm_source=reddit"
        elif variant == 3:
            url = url.replace("://", "://www.", 1)
        return url, False
    url = f"https://site{rng.randrange(20000)}.example/{rng.randrange(10**9):x}/story-{i}"
    if len(earlier) < 50000:
        earlier.append(url)
    elif rng.random() < 0.05:
        earlier[rng.randrange(len(earlier))] = url
    return url, False


def write_dump(path: Path, n: int, seed: int = 0) -> None:
    """``n`` Pushshift-style submissions, zstd-compressed, written as they are generated."""
    import zstandard

    rng, earlier = random.Random(seed), []
    with open(path, "wb") as raw, zstandard.ZstdCompressor().stream_writer(raw) as out:
        for i in range(n):
            url, is_self = _url(rng, i, earlier)
            sub = {
                "id": f"{i:x}",
                "subreddit": f"sub{rng.randrange(300)}",
                "url": url,
                "score": int(rng.paretovariate(1.1)) - 1,
                "created_utc": 1_560_000_000 + i * 7,
                "is_self": is_self,
                "over_18": rng.random() < 0.02,
                "title": f"post {i}",
            }
            out.write((json.dumps(sub) + "\n").encode())


def _text(rng: random.Random, vocab: list[str], words: int) -> list[str]:
    return rng.choices(vocab, k=words)


def write_shards(directory: Path, n: int, seed: int = 0) -> None:
    """``n`` documents of ~4.5 KB as text shards; every fifth a near-duplicate of an earlier one
    (1% of its words changed), the rest independent."""
    from foundation.shards import Manifest, shard_name, table_from_rows, write_table
    from tests.shard_factory import text_row

    rng = random.Random(seed)
    vocab = ["".join(rng.choices("etaoinshrdlucmfwyp", k=rng.randint(2, 9))) for _ in range(20000)]
    recent: list[list[str]] = []
    rows, files = [], []
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if i % 5 == 4 and recent:
            words = list(rng.choice(recent))
            for j in rng.sample(range(len(words)), len(words) // 100):
                words[j] = rng.choice(vocab)
        else:
            words = _text(rng, vocab, rng.randint(600, 1000))
            recent = [*recent[-199:], words]
        rows.append(text_row(" ".join(words), i))
        if len(rows) == SHARD_DOCS or i == n - 1:
            path = str(directory / shard_name(len(files), "parquet"))
            files.append(write_table(table_from_rows(rows), path, "parquet"))
            rows = []
    Manifest(kind="text", format="parquet", files=files, counts={"docs": n}).save(str(directory))


# --- the cluster and measuring -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dask_cluster(worker_mem: str, workers: int = 2) -> Iterator[tuple[str, list[psutil.Process]]]:
    """A scheduler and ``workers`` one-thread workers on loopback; always stopped on exit."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(VENV_BIN / "dask")
    commands = [[dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]]
    worker = [dask, "worker", address, "--nthreads", "1", "--memory-limit", worker_mem]
    commands += [[*worker, "--no-dashboard"] for _ in range(workers)]
    procs = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands
    ]
    try:
        _wait_for_workers(address, workers, procs)
        yield address, [psutil.Process(p.pid) for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _wait_for_workers(address: str, n: int, procs: list[subprocess.Popen]) -> None:
    from distributed import Client

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a dask process exited at start")
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(n, timeout=60)
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no {n} dask workers at {address}")


def measured(argv: list[str], also: Sequence[psutil.Process] = ()) -> dict[str, float]:
    """Run ``argv``; wall s, CPU s and peak RSS (MB) of its tree plus the ``also`` trees, and
    the peak of the largest single ``also`` tree (a dask worker: what its memory limit sees)."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu0 = sum(_tree_cpu(p) for p in also)
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proc, peak, cpu, done = psutil.Process(child.pid), [0, 0], [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            with contextlib.suppress(psutil.Error):
                each = [tree_rss(p) for p in also]
                peak[0] = max(peak[0], tree_rss(proc) + sum(each))
                peak[1] = max(peak[1], *each, 0)
                cpu[0] = max(cpu[0], _tree_cpu(proc))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode:
        print(output.decode(errors="replace")[-3000:], file=sys.stderr)
        raise RuntimeError(f"{argv[:4]} exited with {child.returncode}")
    seconds = time.perf_counter() - start
    cluster_cpu = sum(_tree_cpu(p) for p in also) - cpu0
    return {
        "s": seconds,
        "cpu_s": cpu[0] + cluster_cpu,
        "peak_mb": peak[0] / 1e6,
        "process_mb": peak[1] / 1e6,
    }


def _tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


# --- the stages ----------------------------------------------------------------------------------


def urls_job(run_dir: str, dump: str, readers: int, beam_args: list[str]) -> None:
    """The ingest URL stage alone (what ``webtext ingest`` runs first), as its pipeline."""
    import apache_beam as beam

    from foundation.beam import beam_options
    from foundation.config import JobConfig, with_overrides
    from pipeline.ingest import URLS_ON_DASK, build_urls_pipeline

    cfg = with_overrides(
        JobConfig(),
        {
            "output.run_dir": run_dir,
            "output.workers": 2,
            "output.beam_args": tuple(beam_args),
            "source.dumps": (dump,),
            "source.readers": readers,
        },
    )
    with beam.Pipeline(options=beam_options(cfg.output, URLS_ON_DASK)) as p:
        build_urls_pipeline(p, cfg, f"{run_dir}/urls")


def candidates(urls_dir: Path) -> list[tuple]:
    from foundation.shards import read_shards

    rows = read_shards(str(urls_dir)).to_pylist()
    return sorted(
        (r["doc_id"], r["canonical_url"], r["karma"], json.dumps(r["submissions"], sort_keys=True))
        for r in rows
    )


def kept_ids(out_dir: Path) -> list[str]:
    from foundation.shards import read_shards

    return sorted(read_shards(str(out_dir), columns=["id"]).column("id").to_pylist())


def run_ingest(
    work: Path, dump: Path, beam_args: list[str], also, readers: int = 1
) -> dict[str, float]:
    run = work / ("dask" if beam_args else "local")
    argv = [sys.executable, __file__, "--urls-job", str(run), str(dump), str(readers)]
    argv += beam_args
    figures = measured(argv, also)
    return {**figures, "out": candidates(run / "urls")}


def run_dedup(work: Path, shards: Path, beam_args: list[str], also) -> dict[str, float]:
    out = work / ("dedup-dask" if beam_args else "dedup-local")
    argv = [sys.executable, "-m", "webtext.cli", "dedup", str(shards), "--out", str(out)]
    argv += ["--output-workers=2"] + [f"--beam={a}" for a in beam_args]
    figures = measured(argv, also)
    return {**figures, "out": kept_ids(out)}


def difference(local: list[tuple], dask: list[tuple]) -> str:
    """What differs between two runs' candidates: how many, and the first few."""
    only_local, only_dask = sorted(set(local) - set(dask)), sorted(set(dask) - set(local))
    return (
        f"ingest differs: {len(local)} local, {len(dask)} dask candidates; only local "
        f"{len(only_local)} {only_local[:2]}; only dask {len(only_dask)} {only_dask[:2]}"
    )


def report(name: str, n: int, unit: str, fig: dict) -> None:
    worker = f", largest worker {fig['process_mb']:.0f} MB" if fig["process_mb"] else ""
    print(
        f"{name}: {n} {unit}, {fig['s']:.1f} s ({n / fig['s']:.0f} {unit}/s), "
        f"{fig['cpu_s']:.1f} CPU s, peak {fig['peak_mb']:.0f} MB{worker}, "
        f"load {os.getloadavg()[0]:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subs", type=int, default=100_000, help="submissions in the dump")
    parser.add_argument("--docs", type=int, default=5_000, help="documents to deduplicate")
    parser.add_argument("--worker-mem", default="4GB", help="each dask worker's memory limit")
    parser.add_argument("--readers", type=int, default=2, help="source.readers on Dask")
    parser.add_argument("--skip", choices=("ingest", "dedup"), action="append", default=[])
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, Ctrl-C in a container) unwinds through the finally that stops dask.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print_context(subs=args.subs, docs=args.docs, worker_mem=args.worker_mem)
    result = {"ingest_equal": -1, "dedup_equal": -1, "ingest_s": 0.0, "dedup_s": 0.0}
    peaks, workers = [0.0], [0.0]
    with tempfile.TemporaryDirectory(prefix="scale-dask-") as tmp:
        work = Path(tmp)
        dump, shards = work / "RS_bench.zst", work / "shards"
        if "ingest" not in args.skip:
            write_dump(dump, args.subs)
        if "dedup" not in args.skip:
            write_shards(shards, args.docs)
        with dask_cluster(args.worker_mem) as (address, procs):
            on_dask = [DASK_RUNNER, f"--dask_client_address={address}"]
            if "ingest" not in args.skip:
                local = run_ingest(work, dump, [], ())
                dask = run_ingest(work, dump, on_dask, procs, args.readers)
                report("ingest local", args.subs, "subs", local)
                report("ingest dask ", args.subs, "subs", dask)
                result["ingest_equal"] = int(local["out"] == dask["out"])
                if not result["ingest_equal"]:
                    print(difference(local["out"], dask["out"]))
                result["ingest_s"] = dask["s"]
                peaks.append(dask["peak_mb"])
                workers.append(dask["process_mb"])
                print(
                    f"ingest: {len(local['out'])} candidates; local peak {local['peak_mb']:.0f} MB"
                )
            if "dedup" not in args.skip:
                local = run_dedup(work, shards, [], ())
                dask = run_dedup(work, shards, on_dask, procs)
                report("dedup local", args.docs, "docs", local)
                report("dedup dask ", args.docs, "docs", dask)
                result["dedup_equal"] = int(local["out"] == dask["out"])
                result["dedup_s"] = dask["s"]
                peaks.append(dask["peak_mb"])
                workers.append(dask["process_mb"])
                print(
                    f"dedup: {len(local['out'])} of {args.docs} kept, equal={result['dedup_equal']}"
                )
    print(
        f"scale_dask: ingest_equal={result['ingest_equal']} dedup_equal={result['dedup_equal']} "
        f"ingest_s={result['ingest_s']:.1f} dedup_s={result['dedup_s']:.1f} "
        f"peak_mb={max(peaks):.0f} worker_mb={max(workers):.0f}"
    )
    return 0 if all(result[k] != 0 for k in ("ingest_equal", "dedup_equal")) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--urls-job":
        urls_job(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    else:
        sys.exit(main())

"""``webtext demo``: the whole job on the embedded offline demo, in a few minutes on 2 cores.

Generates the demo dump and WARCs (``webtext/demo/generate.py``), starts the demo's web archive
(pywb on 127.0.0.1 over ``archive.warc.gz``, :func:`demo_archive`), then runs ``webtext run``
with ``webtext/demo/job.toml``: the same code path as real data, replayed from the WARC instead
of fetched, the links dead in it read from the archive, with a small tokenizer and model so that
training finishes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

log = logging.getLogger(__name__)

DEMO_CONFIG = "job.toml"
ARCHIVE_NAME = "demo-archive"
"""The demo archive's name in ``archive.sources``, the shards' ``source`` column and the counts."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole job offline on the embedded demo data",
        description=(
            "Generate a Pushshift-style dump, a WARC of the pages it links to and a web archive "
            "of some links dead in it, then ingest (dead links recovered from the archive, "
            "served by pywb on 127.0.0.1), deduplicate, check contamination, tokenize, train a "
            "small GPT-2, sample from it and evaluate it on the test sets, clean vs dirty. "
            "Rerunning skips what is already done."
        ),
    )
    parser.add_argument("--dir", default="runs/demo", help="demo input and run directory")
    parser.add_argument("--max-steps", type=int, help="training steps (default: the demo job's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def demo_config(directory: str, max_steps: int | None = None, archive: str | None = None):
    """The demo's JobConfig: job.toml with the generated inputs and the run under ``directory``;
    ``archive`` is the demo archive's ``archive.sources`` entry (:func:`demo_archive`), without
    which the WARC is replayed alone (``fetch.backend = "warc"``)."""
    from foundation import storage
    from foundation.config import JobConfig, with_overrides
    from webtext.demo.generate import generate_demo

    data = generate_demo(storage.join(directory, "input"))
    with resources.as_file(resources.files("webtext.demo") / DEMO_CONFIG) as path:
        cfg = JobConfig.from_toml(path)
    overrides = {
        "source.dumps": (data.dump,),
        "fetch.warc_inputs": (data.warc,),
        "contamination.test_sets": tuple(
            f"{name}={storage.join(data.test_sets, name + '.txt')}" for name in ("overlap", "clean")
        ),
        "output.run_dir": storage.join(directory, "run"),
    }
    if archive:
        overrides["archive.sources"] = (archive,)
    else:
        overrides["fetch.backend"] = "warc"
    if max_steps is not None:
        overrides["train.max_steps"] = max_steps
    return with_overrides(cfg, overrides)


@contextmanager
def demo_archive(directory: str) -> Iterator[str]:
    """The demo's web archive served by pywb on 127.0.0.1 while in the ``with`` (a few seconds
    to start); yields its ``archive.sources`` entry."""
    from pathlib import Path

    from foundation import storage
    from webtext.archive_server import PywbServer
    from webtext.demo.generate import generate_demo

    data = generate_demo(storage.join(directory, "input"))
    with PywbServer(Path(directory) / "archive", {"demo": [Path(data.archive_warc)]}) as pywb:
        yield f"{ARCHIVE_NAME}={pywb.cdx_url('demo')}"


def recorded_archive(directory: str) -> str | None:
    """The archive entry a finished demo ingest used: a rerun passes it again, so the ingest's
    settings are unchanged (pywb's port differs each start) and no archive is started."""
    from foundation import storage

    path = storage.join(directory, "run", "run.json")
    if not storage.exists(path):
        return None
    ingest = json.loads(storage.read_text(path)).get("stages", {}).get("ingest", {})
    sources = (ingest.get("inputs") or {}).get("archive", {}).get("sources") or []
    return sources[0] if ingest.get("finished") and sources else None


def run(args: argparse.Namespace) -> int:
    from webtext.archive_server import PywbMissing
    from webtext.commands.run import run_and_report

    progress = not args.no_progress
    recorded = recorded_archive(args.dir)
    if recorded:
        return run_and_report(demo_config(args.dir, args.max_steps, recorded), "eval", progress)
    try:
        with demo_archive(args.dir) as archive:
            cfg = demo_config(args.dir, args.max_steps, archive)
            return run_and_report(cfg, "eval", progress)
    except PywbMissing as e:
        log.warning("No web archive in this demo (%s); replaying the WARC alone.", e)
    return run_and_report(demo_config(args.dir, args.max_steps), "eval", progress)

"""``webtext demo``: the whole job on the embedded offline demo, in a few minutes on 2 cores.

Generates the demo dump and WARC (``webtext/demo/generate.py``), then runs ``webtext run`` with
``webtext/demo/job.toml``: the same code path as real data, replayed from the WARC instead of
fetched, with a small tokenizer and model so that training finishes on a laptop CPU.
"""

from __future__ import annotations

import argparse
from importlib import resources

DEMO_CONFIG = "job.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole job offline on the embedded demo data",
        description=(
            "Generate a Pushshift-style dump and a WARC of the pages it links to, then ingest, "
            "deduplicate, check contamination, tokenize, train a small GPT-2, sample from it and "
            "evaluate it on the test sets, clean vs dirty. "
            "Rerunning skips what is already done."
        ),
    )
    parser.add_argument("--dir", default="runs/demo", help="demo input and run directory")
    parser.add_argument("--max-steps", type=int, help="training steps (default: the demo job's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def demo_config(directory: str, max_steps: int | None = None):
    """The demo's JobConfig: job.toml with the generated inputs and the run under ``directory``."""
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
    if max_steps is not None:
        overrides["train.max_steps"] = max_steps
    return with_overrides(cfg, overrides)


def run(args: argparse.Namespace) -> int:
    from webtext.commands.run import run_and_report

    cfg = demo_config(args.dir, args.max_steps)
    return run_and_report(cfg, "eval", progress=not args.no_progress)

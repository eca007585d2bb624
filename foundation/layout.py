"""The run directory: every path under ``runs/NAME/``, in one place.

    urls/            candidate URLs (Parquet, one file per fetch unit) + manifest
    fetch/           per-unit fetch checkpoints (WARC) and logs
    shards/          text shards + manifest
    dedup/           near-dedup report (report.json, report.md)
    contamination/   Bloom filter, report.json/.md/.html
    tokens/          token shards + tokenizer.json + manifest
    train/           checkpoints, metrics.jsonl, loss.png, tokenizer.json
    eval/            eval.json/.md/.html
    sample.txt       a sample from the last checkpoint
    config/JOB.json  the resolved config of each job that wrote here
    run.json         which stages ``webtext run`` finished, with what

A single-stage command pointed at other directories (``webtext tokenize SHARDS --out DIR``)
gets a layout with those directories replaced, so every stage asks the layout for its paths.

A path one stage records for another (a checkpoint's tokenizer, the token manifest's text
shards) is written by :func:`record_path` and read by :func:`resolve_recorded`: relative to the
recording directory inside the run, so the run can be moved, copied or opened from anywhere.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from foundation import storage

STAGE_DIRS = ("urls", "fetch", "shards", "dedup", "contamination", "tokens", "train", "eval")


@dataclass(frozen=True)
class RunLayout:
    """Where each stage of one run reads and writes."""

    root: str
    urls: str
    fetch: str
    shards: str
    dedup: str
    contamination: str
    tokens: str
    train: str
    eval: str

    @classmethod
    def at(cls, root: str, **moved: str | None) -> RunLayout:
        """The layout of the run in ``root``; ``moved`` replaces stage directories (None: keep)."""
        unknown = set(moved) - set(STAGE_DIRS)
        if unknown:
            raise TypeError(f"not a stage directory: {', '.join(sorted(unknown))}")
        dirs = {name: storage.join(root, name) for name in STAGE_DIRS}
        dirs.update({k: v for k, v in moved.items() if v is not None})
        return cls(root=root, **dirs)

    def replace(self, **moved: str | None) -> RunLayout:
        return dataclasses.replace(self, **{k: v for k, v in moved.items() if v is not None})

    @property
    def dedup_report(self) -> str:
        return storage.join(self.dedup, "report.md")

    @property
    def contamination_report(self) -> str:
        return storage.join(self.contamination, "report.json")

    @property
    def contamination_html(self) -> str:
        return storage.join(self.contamination, "report.html")

    @property
    def loss_curve(self) -> str:
        return storage.join(self.train, "loss.png")

    @property
    def metrics(self) -> str:
        return storage.join(self.train, "metrics.jsonl")

    @property
    def sample(self) -> str:
        return storage.join(self.root, "sample.txt")

    @property
    def eval_json(self) -> str:
        return storage.join(self.eval, "eval.json")

    @property
    def eval_html(self) -> str:
        return storage.join(self.eval, "eval.html")

    @property
    def state(self) -> str:
        return storage.join(self.root, "run.json")

    def config(self, job: str) -> str:
        return storage.join(self.root, "config", f"{job}.json")


def record_path(path: str, start: str) -> str:
    """``path`` as a file in the stage directory ``start`` should record it.

    Relative to ``start`` when ``path`` lies in the same run (under ``start``'s parent), so the
    record survives moving the run; otherwise absolute (a URI as it is), so it does not depend
    on the directory the job was started from.
    """
    if _is_uri(path) or _is_uri(start):
        return path
    target, base = os.path.abspath(path), os.path.abspath(start)
    run = os.path.dirname(base)
    if os.path.commonpath([target, run]) != run:
        return target
    return os.path.relpath(target, base)


def resolve_recorded(recorded: str, start: str) -> str:
    """The path a record in ``start`` names, read from any working directory.

    A relative record is taken relative to ``start`` (what :func:`record_path` writes), unless
    only the path as written exists: runs made before records were relative hold paths
    relative to the directory the job ran in. When neither exists, the ``start``-relative path,
    so an error names where the file should be.
    """
    if _is_uri(recorded) or os.path.isabs(recorded):
        return recorded
    here = storage.join(start, recorded)
    if not _is_uri(here):
        here = os.path.normpath(here)
    if storage.exists(here) or not storage.exists(recorded):
        return here
    return recorded


def _is_uri(path: str) -> bool:
    return "://" in path

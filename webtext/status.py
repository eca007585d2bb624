"""What a run directory holds, stage by stage: done, partial or not started, with counts and sizes.

Reads only manifests, reports and file listings, so it is instant on any run directory and safe
while a job is still writing (a stage is done only once its manifest exists).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from foundation import storage
from foundation.layout import RunLayout
from foundation.shards import MANIFEST, REJECTED, Manifest, ShardError

DONE, PARTIAL, MISSING, FAILED = "done", "partial", "not started", "failed"


@dataclass(frozen=True)
class StageStatus:
    name: str
    state: str
    detail: str
    bytes: int = 0


def _dir_bytes(path: str) -> int:
    """Bytes of the files under ``path``, subdirectories included (the archive lookups)."""
    total = 0
    for name in storage.listdir(path):
        child = storage.join(path, name)
        total += _dir_bytes(child) if storage.is_dir(child) else storage.size(child)
    return total


def _manifest_stage(name: str, path: str, unit: str) -> StageStatus:
    if storage.exists(storage.join(path, MANIFEST)):
        try:
            m = Manifest.load(path)
        except ShardError as e:
            return StageStatus(name, FAILED, str(e))
        size = sum(f.bytes for f in m.files)
        return StageStatus(name, DONE, f"{m.rows:,} {unit} in {len(m.files)} files", size)
    if storage.exists(storage.join(path, REJECTED)):
        why = json.loads(storage.read_text(storage.join(path, REJECTED)))
        return StageStatus(name, FAILED, why.get("extra", {}).get("rejected", "rejected"))
    if storage.listdir(path):
        return StageStatus(name, PARTIAL, "files written, no manifest yet", _dir_bytes(path))
    return StageStatus(name, MISSING, "")


def _pages_by_source(layout: RunLayout) -> str:
    """``; pages: live 120, wayback 31`` from the shards manifest, once the pages phase is done
    (its ``fetched.<source>`` counts); "" before, or for a run made before they were counted."""
    if not storage.exists(storage.join(layout.shards, MANIFEST)):
        return ""
    try:
        counts = Manifest.load(layout.shards).counts
    except ShardError:
        return ""
    from webtext.summary import pages_by_source

    pages = pages_by_source(counts)
    return f"; pages: {pages}" if pages else ""


def _fetch_stage(layout: RunLayout) -> StageStatus:
    path = layout.fetch
    replay = storage.join(path, "replay")
    if storage.exists(replay) and storage.listdir(replay):
        logs = len(storage.listdir(replay))
        detail = f"replayed from WARC ({logs} log files){_pages_by_source(layout)}"
        return StageStatus("fetch", DONE, detail, _dir_bytes(replay))
    done = sum(n.endswith(".log.parquet") for n in storage.listdir(path))
    urls = layout.urls
    total = len(Manifest.load(urls).files) if storage.exists(storage.join(urls, MANIFEST)) else 0
    if not done:
        return StageStatus("fetch", MISSING, f"0/{total} units" if total else "")
    state = DONE if total and done >= total else PARTIAL
    detail = f"{done}/{total} units{_pages_by_source(layout)}"
    return StageStatus("fetch", state, detail, _dir_bytes(path))


def _report_stage(name: str, path: str, describe) -> StageStatus:
    if not storage.exists(path):
        return StageStatus(name, MISSING, "")
    try:
        data = json.loads(storage.read_text(path))
    except json.JSONDecodeError as e:
        return StageStatus(name, FAILED, f"{path}: unreadable report ({e})")
    return StageStatus(name, DONE, describe(data), storage.size(path))


def _dedup_detail(report: dict) -> str:
    keys = ("documents_in", "documents_out")
    return ", ".join(f"{k}={report[k]:,}" for k in keys if isinstance(report.get(k), int))


def _contamination_detail(report: dict) -> str:
    sets = report.get("test_sets", {})
    if isinstance(sets, dict):
        items = [(name, s.get("overlap_pct")) for name, s in sets.items()]
    else:
        items = [(s.get("name"), s.get("overlap_pct")) for s in sets]
    return ", ".join(f"{n} {p:.2f}%" for n, p in items if isinstance(p, int | float)) or "report"


def _train_stage(layout: RunLayout) -> StageStatus:
    path, metrics = layout.train, layout.metrics
    if not storage.exists(metrics):
        return StageStatus("train", MISSING if not storage.listdir(path) else PARTIAL, "")
    lines = [json.loads(x) for x in storage.read_text(metrics).splitlines() if x.strip()]
    last = next((r for r in reversed(lines) if "loss" in r or "train_loss" in r), {})
    step = last.get("step", "?")
    loss = last.get("loss", last.get("train_loss"))
    detail = f"step {step}" + (f", loss {loss:.3f}" if isinstance(loss, int | float) else "")
    return StageStatus("train", DONE if lines else PARTIAL, detail, _dir_bytes(path))


def run_status(run_dir: str) -> list[StageStatus]:
    lay = RunLayout.at(run_dir)
    return [
        _manifest_stage("urls", lay.urls, "candidate URLs"),
        _fetch_stage(lay),
        _manifest_stage("shards", lay.shards, "documents"),
        _report_stage("dedup", storage.join(lay.dedup, "report.json"), _dedup_detail),
        _report_stage("contamination", lay.contamination_report, _contamination_detail),
        _manifest_stage("tokens", lay.tokens, "tokens"),
        _train_stage(lay),
        _sample_stage(lay.sample),
        _report_stage("eval", lay.eval_json, _eval_detail),
    ]


def _eval_detail(report: dict) -> str:
    """Token perplexity per task, on all examples and on the clean ones."""
    parts = []
    for name, task in report.get("tasks", {}).items():
        subsets = task.get("subsets", {})
        every, clean = subsets.get("all", {}), subsets.get("clean", {})
        if isinstance(every.get("ppl_token"), int | float):
            part = f"{name} ppl {every['ppl_token']:.1f}"
            if isinstance(clean.get("ppl_token"), int | float):
                part += f" (clean {clean['ppl_token']:.1f})"
            parts.append(part)
        elif isinstance(every.get("accuracy"), int | float):
            parts.append(f"{name} acc {every['accuracy']:.3f}")
    return ", ".join(parts) or "report"


def _sample_stage(path: str) -> StageStatus:
    if not storage.exists(path):
        return StageStatus("sample", MISSING, "")
    words = len(storage.read_text(path).split())
    return StageStatus("sample", DONE, f"{words} words", storage.size(path))


def format_status(run_dir: str, stages: list[StageStatus]) -> str:
    lines = [f"Run directory: {run_dir}"]
    for s in stages:
        size = f"{s.bytes / 1e6:,.1f} MB" if s.bytes else ""
        lines.append(f"  {s.name:<14}{s.state:<13}{size:>12}  {s.detail}")
    return "\n".join(lines)

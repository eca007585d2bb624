"""``webtext run``: every stage of a job in order, skipping the ones already done for this config.

    ingest (with dedup) -> contamination report -> tokenize -> train -> sample -> eval

``eval`` scores the trained model on the contamination test sets (plain text or JSONL) as
language-modelling tasks, each example flagged clean or dirty against the run's filter.

Each stage's outputs end in a manifest (or report) written last, and ``RUN/run.json`` records,
per finished stage, a fingerprint of what it was made from: the config sections the stage reads
and the checksum of its input's manifest. A rerun skips a stage whose outputs exist and whose
fingerprint matches, so after a failure only the failed stage and the ones after it run, and
after a change of training settings only training (and the sample) run again. A stage whose
inputs changed runs again; training with other settings starts afresh and moves the previous
run's checkpoints aside rather than resuming a run with a different schedule.

Ingestion is the exception: its outputs are fetched pages, which cost hours to remake, so a run
directory whose shards were made with other ingestion settings is an error naming the changed
settings, not a silent refetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation import storage
from foundation.config import JobConfig
from foundation.errors import WebtextError
from foundation.layout import RunLayout
from foundation.shards import MANIFEST, Manifest

log = logging.getLogger(__name__)

STAGES = ("ingest", "contamination", "tokenize", "train", "sample", "eval")
INGEST_SECTIONS = ("source", "filter", "fetch", "extract", "quality", "dedup")
OUTPUT_FIELDS = ("format", "shard_docs", "unit_urls")
"""Output settings that change the shards (workers, runner and run_dir do not)."""
JUDGING_FIELDS = ("fetch.max_failure_fraction",)
"""Ingest settings that judge the shards without changing them: a rerun may change them."""


class RunError(WebtextError):
    """A stage failed or cannot run; the message names the stage and what to do."""


@dataclass
class RunResult:
    layout: RunLayout
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def outputs(self) -> dict[str, str]:
        """Paths a person wants to open that exist, by what they are."""
        lay = self.layout
        named = {
            "text shards": lay.shards,
            "dedup report": lay.dedup_report,
            "contamination report": lay.contamination_html,
            "loss curve": lay.loss_curve,
            "sample": lay.sample,
            "evaluation report": lay.eval_html,
        }
        return {label: path for label, path in named.items() if storage.exists(path)}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _manifest_checksum(directory: str) -> str | None:
    if not storage.exists(storage.join(directory, MANIFEST)):
        return None
    return Manifest.load(directory).checksum


class RunState:
    """``RUN/run.json``: per stage, the fingerprint it was started with and when it finished."""

    def __init__(self, layout: RunLayout):
        self.path = layout.state
        self.stages: dict[str, dict[str, Any]] = {}
        if storage.exists(self.path):
            self.stages = json.loads(storage.read_text(self.path)).get("stages", {})

    def entry(self, stage: str) -> dict[str, Any]:
        return self.stages.get(stage, {})

    def start(self, stage: str, fingerprint: str, inputs: Any) -> None:
        self.stages[stage] = {"fingerprint": fingerprint, "inputs": inputs, "finished": None}
        self._save()

    def finish(self, stage: str, seconds: float) -> None:
        self.stages[stage]["seconds"] = round(seconds, 2)
        self.stages[stage]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._save()

    def _save(self) -> None:
        storage.write_text(self.path, json.dumps({"stages": self.stages}, indent=2) + "\n")


@dataclass(frozen=True)
class Stage:
    """One step of the job: what it reads (for the fingerprint), whether its outputs exist."""

    name: str
    inputs: Callable[[JobConfig, RunLayout], Any]
    complete: Callable[[JobConfig, RunLayout], bool]
    execute: Callable[[JobConfig, RunLayout, bool], None]
    check: Callable[[JobConfig, RunLayout], None] | None = None
    """Raises when the stage's outputs, new or kept from before, must not go on to the next."""


# --- ingest ----------------------------------------------------------------------------------


def _ingest_inputs(cfg: JobConfig, layout: RunLayout) -> Any:
    d = cfg.to_dict()
    for name in JUDGING_FIELDS:
        section, _, field_name = name.partition(".")
        del d[section][field_name]
    inputs = {
        **{s: d[s] for s in INGEST_SECTIONS},
        "output": {k: d["output"][k] for k in OUTPUT_FIELDS},
    }
    if cfg.fetch.reads_archives:  # runs that read no archive stay fresh
        inputs["archive"] = d["archive"]
    return inputs


def _ingest_complete(cfg: JobConfig, layout: RunLayout) -> bool:
    from foundation.write import is_complete

    return is_complete(layout.shards)


def _ingest(cfg: JobConfig, layout: RunLayout, progress: bool) -> None:
    from pipeline.ingest import run_ingest
    from webtext.commands.options import write_resolved_config
    from webtext.summary import ingest_summary

    result = run_ingest(cfg, layout, progress)
    write_resolved_config(cfg, layout, "ingest")
    print(ingest_summary(result))


def _ingest_check(cfg: JobConfig, layout: RunLayout) -> None:
    """Kept shards too: a rerun of a job that failed on them fails again rather than going on."""
    from pipeline.ingest import IngestResult, check_ingest

    urls, shards = Manifest.load(layout.urls), Manifest.load(layout.shards)
    check_ingest(cfg, IngestResult(layout.shards, urls, shards, {}))


# --- contamination ---------------------------------------------------------------------------


def _test_sets(cfg: JobConfig) -> dict[str, str]:
    from contamination.sources import parse_test_sets

    return parse_test_sets(cfg.contamination.test_sets)


def _contamination_inputs(cfg: JobConfig, layout: RunLayout) -> Any:
    c = cfg.contamination
    return {
        "shards": _manifest_checksum(layout.shards),
        "settings": [c.n, c.fp_rate, c.text_docs, c.field],
        "test_sets": {name: _file_state(path) for name, path in _test_sets(cfg).items()},
    }


def _file_state(path: str) -> Any:
    """Size and mtime of a test set (file or folder): enough to notice it was replaced."""
    if not storage.exists(path):
        return None
    local = Path(path)
    if local.is_dir():
        return sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in local.iterdir())
    if local.exists():
        return [local.stat().st_size, local.stat().st_mtime_ns]
    return storage.size(path)


def _contamination_complete(cfg: JobConfig, layout: RunLayout) -> bool:
    return storage.exists(layout.contamination_report)


def _contamination(cfg: JobConfig, layout: RunLayout, progress: bool) -> None:
    from contamination.api import run_contamination
    from contamination.report import format_table

    print(format_table(run_contamination(cfg, layout)))


# --- tokenize --------------------------------------------------------------------------------


def _tokenize_inputs(cfg: JobConfig, layout: RunLayout) -> Any:
    return {"shards": _manifest_checksum(layout.shards), "tokenize": cfg.to_dict()["tokenize"]}


def _tokenize_complete(cfg: JobConfig, layout: RunLayout) -> bool:
    return _manifest_checksum(layout.tokens) is not None


def _tokenize(cfg: JobConfig, layout: RunLayout, progress: bool) -> None:
    from trainer.stages import run_tokenize

    print(run_tokenize(cfg, layout, progress))


# --- train and sample ------------------------------------------------------------------------


def _train_inputs(cfg: JobConfig, layout: RunLayout) -> Any:
    d = cfg.to_dict()
    return {
        "tokens": _manifest_checksum(layout.tokens),
        "model": d["model"],
        "train": d["train"],
    }


def _train_complete(cfg: JobConfig, layout: RunLayout) -> bool:
    from trainer.checkpoint import latest_step  # torch: not at CLI start-up

    return (latest_step(layout.train) or 0) >= cfg.train.max_steps


def _train(cfg: JobConfig, layout: RunLayout, progress: bool) -> None:
    from trainer.stages import TrainingInterrupted, run_train
    from webtext.commands.options import write_resolved_config

    summary = run_train(cfg, layout, resume=True, progress=progress)
    write_resolved_config(cfg, layout, "train")
    if summary.interrupted:
        raise TrainingInterrupted(f"train: interrupted at step {summary.step}; rerun to resume")
    print(summary)


def _sample_inputs(cfg: JobConfig, layout: RunLayout) -> Any:
    from trainer.checkpoint import latest_step

    return {"step": latest_step(layout.train), "train": _train_inputs(cfg, layout)}


def _sample_complete(cfg: JobConfig, layout: RunLayout) -> bool:
    return storage.exists(layout.sample)


def _sample(cfg: JobConfig, layout: RunLayout, progress: bool) -> None:
    from trainer.stages import SampleOptions, run_sample

    text = run_sample(layout, SampleOptions(max_new_tokens=120))[0]
    storage.write_text(layout.sample, text + "\n")


EVAL_SUFFIXES = (".txt", ".jsonl")


def _eval_tasks(cfg: JobConfig) -> dict[str, tuple[str, str]]:
    return {
        name: ("lm", path)
        for name, path in _test_sets(cfg).items()
        if path.endswith(EVAL_SUFFIXES) and storage.exists(path)
    }


def _eval_inputs(cfg: JobConfig, layout: RunLayout) -> Any:
    return {
        "sample": _sample_inputs(cfg, layout),
        "eval": cfg.to_dict()["eval"],
        "contamination": _contamination_inputs(cfg, layout),
    }


def _eval_complete(cfg: JobConfig, layout: RunLayout) -> bool:
    return storage.exists(layout.eval_json)


def _eval(cfg: JobConfig, layout: RunLayout, progress: bool) -> None:
    from trainer.stages import run_eval

    tasks = _eval_tasks(cfg)
    if not tasks:
        log.warning("eval: no plain-text or JSONL test set to score; nothing to evaluate")
        return
    print(run_eval(cfg, layout, tasks, contamination=layout.root, progress=progress))


STAGE_LIST = (
    Stage("ingest", _ingest_inputs, _ingest_complete, _ingest, _ingest_check),
    Stage("contamination", _contamination_inputs, _contamination_complete, _contamination),
    Stage("tokenize", _tokenize_inputs, _tokenize_complete, _tokenize),
    Stage("train", _train_inputs, _train_complete, _train),
    Stage("sample", _sample_inputs, _sample_complete, _sample),
    Stage("eval", _eval_inputs, _eval_complete, _eval),
)


def _up_to_date(name: str, done: bool, entry: dict[str, Any], fingerprint: str) -> bool:
    if not done:
        return False
    if name == "ingest":  # complete shards are never remade (other settings raise earlier)
        return True
    return entry.get("fingerprint") == fingerprint and bool(entry.get("finished"))


def _move_aside(train_dir: str) -> None:
    """Keep a training run made with other settings instead of resuming it with these."""
    if Path(train_dir).exists():
        aside = f"{train_dir}.{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.move(train_dir, aside)
        log.warning("train: settings or data changed; the previous run moved to %s", aside)


def run_job(cfg: JobConfig, until: str = STAGES[-1], progress: bool = True) -> RunResult:
    """Run the job's stages up to ``until`` (inclusive); see the module docstring."""
    if until not in STAGES:
        raise ValueError(f"until={until!r}: must be one of {', '.join(STAGES)}")
    layout = RunLayout.at(cfg.output.run_dir)
    state = RunState(layout)
    result = RunResult(layout)
    for stage in STAGE_LIST:
        _run_stage(stage, cfg, layout, state, result, progress)
        if stage.name == until:
            break
    return result


def _run_stage(
    stage: Stage,
    cfg: JobConfig,
    layout: RunLayout,
    state: RunState,
    result: RunResult,
    progress: bool,
) -> None:
    """Skip ``stage`` when its outputs are up to date for these inputs, else run it."""
    inputs = _stage_inputs(stage, cfg, layout)
    fingerprint = _digest(inputs)
    entry = state.entry(stage.name)
    recorded = entry.get("fingerprint")
    done = stage.complete(cfg, layout)
    if stage.name == "ingest" and done and recorded not in (None, fingerprint):
        changed = _changed(entry.get("inputs", {}), inputs)
        raise RunError(
            f"ingest: the shards in {layout.shards} were made with other settings "
            f"({', '.join(changed)}); use a new output.run_dir, or remove {layout.shards} "
            "to remake them from the fetched pages"
        )
    if _up_to_date(stage.name, done, entry, fingerprint):
        log.info("%s: already complete for this config; skipping.", stage.name)
        _check_stage(stage, cfg, layout)
        result.skipped.append(stage.name)
        if recorded != fingerprint:  # shards from `webtext ingest`, adopted as they are
            state.start(stage.name, fingerprint, inputs)
            state.finish(stage.name, 0.0)
        return
    if stage.name == "train" and recorded not in (None, fingerprint):
        _move_aside(layout.train)
    log.info("%s: running.", stage.name)
    state.start(stage.name, fingerprint, inputs)
    start = time.perf_counter()
    try:
        stage.execute(cfg, layout, progress)
    except WebtextError as e:
        raise RunError(f"{stage.name}: {e} (fix it and rerun: finished stages are kept)") from e
    _check_stage(stage, cfg, layout)
    result.seconds[stage.name] = time.perf_counter() - start
    state.finish(stage.name, result.seconds[stage.name])
    result.ran.append(stage.name)


def _check_stage(stage: Stage, cfg: JobConfig, layout: RunLayout) -> None:
    if stage.check is None:
        return
    try:
        stage.check(cfg, layout)
    except WebtextError as e:
        raise RunError(f"{stage.name}: {e}") from e


def _stage_inputs(stage: Stage, cfg: JobConfig, layout: RunLayout) -> Any:
    try:
        return stage.inputs(cfg, layout)
    except WebtextError as e:
        raise RunError(f"{stage.name}: {e}") from e


def _changed(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two nested dicts."""
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, name + ".")
        elif a != b:
            out.append(name)
    return out

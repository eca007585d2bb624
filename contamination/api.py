"""The in-process API of the contamination checker (what ``webtext run``, the CLI, the
zero-shot evaluation and the trainer call).

- :func:`build_filter` ``(train_sources, cfg) -> BloomFilter``
- :func:`check` ``(filter, test_sets) -> Report``
- :func:`run_check` ``(train, test_sets, out_dir, cfg) -> Report``: build the filter in place
  as ``out_dir/bloom.bin``, memory-map it, check, write report.json/.md/.html.
- :func:`run_contamination` ``(cfg, layout, train) -> Report``: the stage's entry point, the
  run's shards against ``contamination.test_sets`` into ``layout.contamination``.
- :func:`flag_examples` ``(filter, texts) -> list[ExampleFlag]``: clean/dirty per example.
- The gate lives in :mod:`contamination.gate`; decontamination in
  :mod:`contamination.decontaminate`.

``cfg`` is a :class:`ContaminationConfig` or a whole :class:`JobConfig`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from contamination.bloom import BloomFilter
from contamination.build import build_filter_file, build_from_sources
from contamination.check import ExampleFlag, Report
from contamination.check import check as check_loaded
from contamination.check import flag_examples as _flag_examples
from contamination.report import write_reports
from contamination.sources import (
    ContaminationInputError,
    ReadOptions,
    parse_test_sets,
    read_test_set,
    train_side,
)
from foundation import storage
from foundation.config import ContaminationConfig, JobConfig
from foundation.layout import RunLayout, record_path

log = logging.getLogger(__name__)

FILTER_FILE = "bloom.bin"


def _section(cfg: ContaminationConfig | JobConfig | None) -> ContaminationConfig:
    if cfg is None:
        return ContaminationConfig()
    return cfg.contamination if isinstance(cfg, JobConfig) else cfg


def chunk_bytes(cfg: ContaminationConfig) -> int:
    return max(1, int(cfg.chunk_mb * 2**20))


def read_options(cfg: ContaminationConfig | JobConfig | None) -> ReadOptions:
    c = _section(cfg)
    return ReadOptions(text_docs=c.text_docs, field=c.field)


def _as_list(paths: str | Sequence[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def build_filter(
    train_sources: str | Sequence[str], cfg: ContaminationConfig | JobConfig | None = None
) -> BloomFilter:
    """The filter of the training side's ``cfg.n``-grams (a shard directory, or files/folders)."""
    c = _section(cfg)
    train = train_side(_as_list(train_sources), read_options(c))
    return build_from_sources(train, c.n, c.fp_rate, c.workers, chunk_bytes=chunk_bytes(c))


def check(
    bloom: BloomFilter,
    test_sets: Mapping[str, str],
    cfg: ContaminationConfig | JobConfig | None = None,
) -> Report:
    """Check test sets given as ``{name: path}`` against a built or loaded filter."""
    opts = read_options(cfg)
    loaded = {name: read_test_set(path, opts) for name, path in test_sets.items()}
    train = {
        "kind": bloom.meta.get("train_kind"),
        "checksum": bloom.meta.get("manifest_checksum"),
        "paths": bloom.meta.get("train_paths", []),
    }
    return check_loaded(bloom, loaded, dict(test_sets), train)


def flag_examples(bloom: BloomFilter, texts: Sequence[str]) -> list[ExampleFlag]:
    """Per text: n-grams, hits, ``.dirty`` (any n-gram in the training filter)."""
    return _flag_examples(bloom, texts)


def run_check(
    train_shards_or_files: str | Sequence[str],
    test_sets: Mapping[str, str],
    out_dir: str,
    cfg: ContaminationConfig | JobConfig | None = None,
) -> Report:
    """Build, save, memory-map and check; writes ``bloom.bin`` and the reports in ``out_dir``."""
    c = _section(cfg)
    if not test_sets:
        raise ValueError("no test sets given: pass at least one NAME=PATH")
    opts = read_options(c)
    loaded = {name: read_test_set(path, opts) for name, path in test_sets.items()}
    paths = _as_list(train_shards_or_files)
    train = train_side(paths, opts)
    recorded = [record_path(p, out_dir) for p in paths]  # the report moves with its run
    filter_path = storage.join(out_dir, FILTER_FILE)
    fill = build_filter_file(
        train, c.n, c.fp_rate, filter_path, c.workers, chunk_bytes(c), {"train_paths": recorded}
    )
    mapped = BloomFilter.load(filter_path)
    mapped.known_fill(fill)  # the check then reads only the blocks the test sets touch
    info = {"kind": train.kind, "checksum": train.checksum, "paths": recorded}
    tests = {name: record_path(path, out_dir) for name, path in test_sets.items()}
    report = check_loaded(mapped, loaded, tests, info)
    report.filter["path"] = FILTER_FILE
    written = write_reports(report, out_dir)
    log.info("contamination report: %s", written["json"])
    return report


def run_contamination(
    cfg: JobConfig, layout: RunLayout, train: Sequence[str] | None = None
) -> Report:
    """The contamination stage: ``train`` (default the run's shards) against the configured
    test sets; the filter and reports go to ``layout.contamination``."""
    tests = parse_test_sets(cfg.contamination.test_sets)
    if not tests:
        raise ContaminationInputError(
            "no test sets: give --test NAME=PATH or set contamination.test_sets "
            '(e.g. test_sets = ["wikitext2=wiki.test.txt"]) so training has a report to respect'
        )
    return run_check(list(train or [layout.shards]), tests, layout.contamination, cfg)

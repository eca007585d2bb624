"""``webtext eval``'s job: read the task files, score, flag, summarise, write the reports.

Input: a model, its tokenizer, task files (``{name: (kind, path)}``), an optional training
filter and the :class:`~foundation.config.EvalConfig`. Output: ``eval.json`` (settings, every
task's metrics on all/clean/dirty examples and every example's values and flag), ``eval.md``
and ``eval.html`` (a table per task: all, clean, dirty, and clean's relative difference).
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foundation import storage
from foundation.config import ConfigError, EvalConfig
from trainer import eval_tasks, evaluate
from trainer.eval_flags import dirty_flags

REPORT_VERSION = 1
KINDS = ("lm", "lambada", "cbt")
_COUNTS = ("examples", "tokens", "words")
_ROWS = {
    "lm": (
        "examples",
        "tokens",
        "words",
        "ppl_token",
        "ppl_word",
        "bits_per_byte",
        "bits_per_char",
    ),
    "lambada": ("examples", "accuracy", "ppl_word"),
    "cbt": ("examples", "accuracy"),
}


def task_names(lm: list[str], lambada: str | None, cbt: str | None) -> dict[str, tuple[str, str]]:
    """``{name: (kind, path)}``; LM tasks are named after their files (``wiki.test``)."""
    tasks: dict[str, tuple[str, str]] = {}
    for path in lm:
        base = Path(path).name.removesuffix(".jsonl").removesuffix(".txt")
        name, k = base, 2
        while name in tasks:
            name, k = f"{base}-{k}", k + 1
        tasks[name] = ("lm", path)
    if lambada:
        tasks["lambada"] = ("lambada", lambada)
    if cbt:
        tasks["cbt"] = ("cbt", cbt)
    return tasks


def stride_for(cfg: EvalConfig, block_size: int) -> int:
    """``cfg.stride``, where 0 means half the context (each token sees at least half a block)."""
    stride = cfg.stride or max(1, block_size // 2)
    if stride > block_size:
        raise ConfigError(f"eval.stride={stride}: larger than the model's block_size={block_size}")
    return stride


def run_task(
    model: Any, tokenizer: Any, kind: str, path: str, cfg: EvalConfig, progress: Any = None
) -> list[evaluate.ExampleScore]:
    """Read one task file and score every example."""
    stride = stride_for(cfg, model.config.block_size)
    if kind == "lm":
        docs = eval_tasks.read_lm(path, cfg.lm_unit, cfg.detokenize)
        return evaluate.score_lm(
            model, tokenizer, docs, stride, cfg.batch_size, cfg.dtype, progress
        )
    if kind == "lambada":
        examples = eval_tasks.read_lambada(path)
        return evaluate.score_lambada(
            model, tokenizer, examples, cfg.batch_size, cfg.dtype, progress
        )
    if kind == "cbt":
        cloze = eval_tasks.read_cbt(path, cfg.placeholder)
        return evaluate.score_cloze(model, tokenizer, cloze, cfg.dtype, progress)
    raise ValueError(f"unknown task kind {kind!r}; known: {list(KINDS)}")


def _gpt2_files(model: str) -> str | None:
    """A model directory holding GPT-2's vocab.json + merges.txt but no tokenizer.json."""
    d = Path(model)
    return str(d) if (d / "vocab.json").is_file() and (d / "merges.txt").is_file() else None


def _load_tokenizer(path: str) -> Any:
    """tokenizer.json (a file or a directory holding one), else GPT-2's two files."""
    from trainer.tokenizer import load_tokenizer

    d = Path(path)
    if d.is_dir() and not (d / "tokenizer.json").is_file() and _gpt2_files(path):
        return load_tokenizer(vocab=str(d / "vocab.json"), merges=str(d / "merges.txt"))
    return load_tokenizer(path)


def evaluate_model(
    model_path: str,
    tasks: Mapping[str, tuple[str, str]],
    cfg: EvalConfig,
    contamination: str | None = None,
    tokenizer_path: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint or HF directory, its tokenizer and the training filter, and score.

    ``contamination``: a filter, report directory, run or training data (eval_flags.py); none
    flags every example clean. Raises EvalInputError when no tokenizer is known or it does not fit.
    """
    from trainer.eval_flags import load_filter
    from trainer.sample import load_model

    device = cfg.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, recorded = load_model(model_path, device)
    tok_path = tokenizer_path or recorded or _gpt2_files(model_path)
    if tok_path is None:
        raise eval_tasks.EvalInputError(f"{model_path} records no tokenizer; pass --tokenizer")
    tokenizer = _load_tokenizer(tok_path)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise eval_tasks.EvalInputError(
            f"{tok_path}: {tokenizer.vocab_size} ids, the model only "
            f"{model.config.vocab_size}: not this model's tokenizer"
        )
    bloom, info = load_filter(contamination, cfg.n) if contamination else (None, None)
    return build_report(model, tokenizer, tasks, cfg, bloom, info, model_path, progress)


def build_report(
    model: Any,
    tokenizer: Any,
    tasks: Mapping[str, tuple[str, str]],
    cfg: EvalConfig,
    bloom: Any = None,
    contamination: Mapping[str, Any] | None = None,
    model_path: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Score every task and summarise it on all, clean and dirty examples."""
    from tqdm import tqdm

    started = time.time()
    out: dict[str, Any] = {}
    for name, (kind, path) in tasks.items():
        with tqdm(desc=name, unit="req", disable=not progress, leave=False) as bar:
            t0 = time.perf_counter()
            scores = run_task(model, tokenizer, kind, path, cfg, bar)
            seconds = time.perf_counter() - t0
        flags = dirty_flags(bloom, [s.text for s in scores])
        summary = evaluate.summarise(kind, scores, [f["dirty"] for f in flags])
        out[name] = {
            "kind": kind,
            "path": path,
            "seconds": seconds,
            # Examples under n words have no n-gram to look up: they always count as clean.
            "too_short_to_flag": sum(1 for f in flags if f["ngrams"] == 0),
            **summary,
            "examples": [{"id": s.id, **f, **s.values} for s, f in zip(scores, flags, strict=True)],
        }
    return {
        "version": REPORT_VERSION,
        "created": started,
        "model": model_path,
        "model_config": model.config.to_dict(),
        "tokenizer": getattr(tokenizer, "source", None),
        "settings": {**dataclasses.asdict(cfg), "stride": stride_for(cfg, model.config.block_size)},
        "contamination": dict(contamination) if contamination is not None else None,
        "tasks": out,
    }


def _fmt(metric: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in _COUNTS:
        return str(int(value))
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def _rel(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}%"


def tables(report: Mapping[str, Any]) -> dict[str, list[list[str]]]:
    """Per task: header row then one row per metric (all, clean, dirty, clean vs all)."""
    out = {}
    for name, task in report["tasks"].items():
        subsets, rel = task["subsets"], task["relative_difference_pct"]
        rows = [["metric", "all", "clean", "dirty", "clean vs all"]]
        for metric in _ROWS[task["kind"]]:
            cells = [_fmt(metric, subsets[s].get(metric)) for s in ("all", "clean", "dirty")]
            rows.append([metric, *cells, _rel(rel.get(metric)) if metric in rel else ""])
        out[name] = rows
    return out


def format_tables(report: Mapping[str, Any]) -> str:
    """The tables as plain text for a terminal."""
    lines = []
    for name, rows in tables(report).items():
        lines.append(f"{name}:")
        for row in rows:
            lines.append("  " + "".join(f"{c:>14}" if i else f"{c:<16}" for i, c in enumerate(row)))
    return "\n".join(lines)


def _header_lines(report: Mapping[str, Any]) -> list[str]:
    s = report["settings"]
    c = report.get("contamination")
    flag = (
        f"examples flagged dirty if any normalised {c['n']}-gram is in the training filter "
        f"({c.get('filter') or c.get('train')})"
        if c
        else "no contamination filter given: every example counts as clean"
    )
    return [
        f"model: {report['model']}",
        f"stride {s['stride']} of block_size {report['model_config']['block_size']}, "
        f"detokenize {s['detokenize']}, batch {s['batch_size']}",
        flag,
        "clean vs all: relative difference of the clean score from the score on all examples",
    ]


def to_markdown(report: Mapping[str, Any]) -> str:
    lines = ["# Zero-shot evaluation", ""]
    lines += [f"- {line}" for line in _header_lines(report)]
    for name, rows in tables(report).items():
        task = report["tasks"][name]
        lines += ["", f"## {name} ({task['kind']}, {task['path']})", ""]
        if task["too_short_to_flag"]:
            lines += [f"{task['too_short_to_flag']} examples too short to flag (clean).", ""]
        lines.append("| " + " | ".join(rows[0]) + " |")
        lines.append("|" + "---|" * len(rows[0]))
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines) + "\n"


def to_html(report: Mapping[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>webtext eval</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .8em;"
        "text-align:right}td:first-child,th:first-child{text-align:left}</style>",
        "<h1>Zero-shot evaluation</h1><ul>",
        *(f"<li>{e(line)}</li>" for line in _header_lines(report)),
        "</ul>",
    ]
    for name, rows in tables(report).items():
        task = report["tasks"][name]
        parts.append(f"<h2>{e(name)} <small>({e(task['kind'])}, {e(task['path'])})</small></h2>")
        parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in rows[0]) + "</tr>")
        for r in rows[1:]:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def write_reports(report: Mapping[str, Any], out_dir: str) -> dict[str, str]:
    """Write eval.json, eval.md and eval.html (each atomically); returns their paths."""
    paths = {k: storage.join(out_dir, f"eval.{k}") for k in ("json", "md", "html")}
    text = json.dumps(_finite(report), indent=2, default=_json_default, allow_nan=False) + "\n"
    storage.write_text(paths["json"], text)
    storage.write_text(paths["md"], to_markdown(report))
    storage.write_text(paths["html"], to_html(report))
    return paths


def _finite(value: Any) -> Any:
    """NaN/inf (a metric of an empty subset) as null: eval.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {value!r}")

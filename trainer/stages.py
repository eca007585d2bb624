"""The trainer's stages, one entry point each: typed config and run layout in, summary out.

``webtext run`` and the single-stage commands (``tokenize``, ``train``, ``sample``, ``export``,
``eval``) call these and nothing else; a summary prints as the line a person reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from foundation import storage
from foundation.config import ConfigError, JobConfig
from foundation.errors import NoOutputError, WebtextError
from foundation.layout import RunLayout
from foundation.shards import Manifest


@dataclass(frozen=True)
class TokenizeSummary:
    out: str
    manifest: Manifest

    def __str__(self) -> str:
        c, m = self.manifest.counts, self.manifest
        return (
            f"tokenized {c['docs_train'] + c['docs_val']} documents "
            f"({c['text_bytes'] / 1e6:.1f} MB): train {c['tokens_train']} tokens, "
            f"val {c['tokens_val']} tokens, vocab {m.extra['vocab_size']}, "
            f"{len(m.files)} files in {self.out}"
        )


def run_tokenize(cfg: JobConfig, layout: RunLayout, progress: bool = True) -> TokenizeSummary:
    """Text shards (``layout.shards``) -> tokenizer and token shards (``layout.tokens``)."""
    from trainer.tokenize import tokenize_shards

    if Manifest.load(layout.shards, "text").rows == 0:
        raise NoOutputError(f"the text shards in {layout.shards} hold no documents to tokenize")
    manifest = tokenize_shards(layout.shards, layout.tokens, cfg.tokenize, progress=progress)
    summary = TokenizeSummary(layout.tokens, manifest)
    if manifest.counts["tokens_train"] + manifest.counts["tokens_val"] == 0:
        raise NoOutputError(f"no tokens: {summary}")  # written all the same: the counts say why
    return summary


class TrainingInterrupted(WebtextError):
    """Training stopped early (SIGTERM); a rerun with resume continues from the checkpoint."""


@dataclass(frozen=True)
class TrainSummary:
    step: int
    val_loss: float | None
    checkpoint: str | None
    interrupted: bool

    def __str__(self) -> str:
        what = "interrupted" if self.interrupted else "finished"
        val = f", val loss {self.val_loss:.4f}" if self.val_loss is not None else ""
        return f"train {what} at step {self.step}{val}; checkpoint {self.checkpoint}"


def run_train(
    cfg: JobConfig, layout: RunLayout, resume: bool = True, progress: bool = True
) -> TrainSummary:
    """Token shards (``layout.tokens``) -> checkpoints and metrics (``layout.train``)."""
    from trainer.train import train

    Manifest.load(layout.tokens, "tokens")  # missing or another stage's: names `webtext tokenize`
    result = train(cfg, layout.tokens, layout.train, resume=resume, progress=progress)
    ckpt = str(result.checkpoint) if result.checkpoint is not None else None
    return TrainSummary(result.step, result.val_loss, ckpt, result.interrupted)


@dataclass(frozen=True)
class SampleOptions:
    prompt: str = ""
    max_new_tokens: int = 100
    temperature: float = 0.8
    top_k: int | None = 200
    seed: int = 0
    num_samples: int = 1
    tokenizer: str | None = None
    """tokenizer.json; None: the one the model records."""
    device: str = "cpu"


class SampleError(WebtextError, ValueError):
    """The model and tokenizer cannot sample together."""


def run_sample(layout: RunLayout, opts: SampleOptions) -> list[str]:
    """Continuations of ``opts.prompt`` from the model in ``layout.train`` (a checkpoint or an
    export)."""
    from trainer.sample import load_model, sample
    from trainer.tokenizer import load_tokenizer

    if opts.max_new_tokens < 0 or opts.temperature < 0 or opts.num_samples < 1:
        raise ConfigError("max_new_tokens and temperature must be >= 0, num_samples >= 1")
    model, recorded = load_model(layout.train, opts.device)
    tok_path = opts.tokenizer or recorded
    if tok_path is None:
        raise SampleError(f"{layout.train} records no tokenizer; pass --tokenizer")
    try:
        return sample(
            model,
            load_tokenizer(tok_path),
            opts.prompt,
            opts.max_new_tokens,
            opts.temperature,
            opts.top_k,
            opts.seed,
            opts.num_samples,
        )
    except ValueError as e:
        raise SampleError(f"{tok_path}: {e}") from e


def run_export(layout: RunLayout, out_dir: str, tokenizer: str | None = None) -> str:
    """The model in ``layout.train`` as a Hugging Face GPT-2 directory, tokenizer included."""
    from trainer.hf import ExportError, export_hf
    from trainer.sample import load_model

    model, recorded = load_model(layout.train)
    tok = tokenizer or recorded
    if tok is None or not storage.exists(tok):
        where = f"{tok} (recorded in the checkpoint) is missing" if tok else "none is recorded"
        raise ExportError(f"cannot include the tokenizer: {where}; pass --tokenizer")
    out = export_hf(model, out_dir, tok)
    return f"exported {model.num_params() / 1e6:.1f}M parameters to {out}"


@dataclass(frozen=True)
class EvalSummary:
    report: Mapping[str, Any]
    paths: Mapping[str, str]

    def __str__(self) -> str:
        from trainer.eval_report import format_tables

        files = ", ".join(self.paths[k] for k in ("json", "md", "html"))
        return f"{format_tables(self.report)}\nreports: {files}"


def run_eval(
    cfg: JobConfig,
    layout: RunLayout,
    tasks: Mapping[str, tuple[str, str]],
    contamination: str | None = None,
    tokenizer: str | None = None,
    progress: bool = True,
) -> EvalSummary:
    """Score the model in ``layout.train`` on ``tasks``, clean vs dirty; reports in
    ``layout.eval``."""
    from trainer.eval_report import evaluate_model, write_reports

    report = evaluate_model(layout.train, tasks, cfg.eval, contamination, tokenizer, progress)
    return EvalSummary(report, write_reports(report, layout.eval))

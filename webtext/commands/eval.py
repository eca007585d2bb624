"""``webtext eval``: zero-shot evaluation, with every figure split into clean and dirty examples.

    webtext eval --model RUN/train --lm wiki.test.txt --detokenize wikitext \\
        --lambada lambada_test.jsonl --cbt cbt_cn.jsonl --contamination RUN --out RUN/eval

``--model`` is a checkpoint (file or directory) or a Hugging Face GPT-2 directory (local files
only). ``--contamination`` is a saved filter, a report directory, a run, or training shards/files
(see trainer/eval_flags.py). Writes eval.json, eval.md and eval.html to ``--out`` and prints the
tables. The short flags set the ``eval`` config section's fields (``--eval-FIELD`` sets any).
"""

from __future__ import annotations

import argparse
import sys

from webtext.commands.options import add_config_flags, resolve_config

SECTIONS = ("eval",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="zero-shot perplexity, LAMBADA and cloze accuracy, clean vs dirty",
        description="Zero-shot evaluation (GPT-2 section 3), contamination-aware (GPT-3 App. C).",
    )
    parser.add_argument("--model", required=True, help="checkpoint file/dir or HF GPT-2 dir")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the one the model records)")
    parser.add_argument(
        "--lm", action="append", default=[], metavar="FILE", help="text or JSONL file (repeat)"
    )
    parser.add_argument("--lambada", metavar="FILE", help='JSONL of {"text": ...}')
    parser.add_argument("--cbt", metavar="FILE", help="JSONL of context/question/candidates/answer")
    parser.add_argument("--contamination", metavar="PATH", help="filter, report dir, run or shards")
    parser.add_argument("--stride", type=int, help="eval.stride (0: block_size / 2)")
    parser.add_argument("--batch-size", type=int, help="eval.batch_size")
    parser.add_argument("--detokenize", choices=("none", "wikitext", "ptb"), help="eval.detokenize")
    parser.add_argument("--n", type=int, help="eval.n: n-gram length of the dirty test")
    parser.add_argument("--device", help="eval.device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser, SECTIONS)
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict[str, object]:
    """The short flags as the ``eval`` fields they set (unset ones are None: not applied)."""
    return {
        "eval.stride": args.stride,
        "eval.batch_size": args.batch_size,
        "eval.detokenize": args.detokenize,
        "eval.n": args.n,
        "eval.device": args.device,
    }


def run(args: argparse.Namespace) -> int:
    from foundation import storage
    from foundation.layout import RunLayout
    from trainer.eval_report import task_names
    from trainer.stages import run_eval

    cfg = resolve_config(args, **overrides(args))
    tasks = task_names(args.lm, args.lambada, args.cbt)
    if not tasks:
        print("webtext eval: give at least one of --lm, --lambada, --cbt", file=sys.stderr)
        return 2
    layout = RunLayout.at(storage.parent(args.model), train=args.model, eval=args.out)
    progress = not args.no_progress
    print(run_eval(cfg, layout, tasks, args.contamination, args.tokenizer, progress))
    return 0

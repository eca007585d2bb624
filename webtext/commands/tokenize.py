"""``webtext tokenize``: text shards -> a byte-level BPE and train/val token shards."""

from __future__ import annotations

import argparse
import sys

from webtext.commands.options import add_config_flags, resolve_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenize",
        help="text shards -> tokenizer.json and train/val token shards",
        description=(
            "Train a GPT-2 byte-level BPE on the shards (or use the one given), split documents "
            "into train/val by a hash of their id and write memory-mappable token shards with a "
            "manifest into --out. Rerunning resumes: finished text shards are not re-encoded."
        ),
    )
    parser.add_argument("shards", help="text-shard directory (with _manifest.json)")
    parser.add_argument("--out", required=True, help="output directory, e.g. RUN/tokens")
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--tokenizer", help="use this tokenizer.json (tokenize.tokenizer)")
    given.add_argument("--vocab", help="GPT-2 layout vocab.json; needs --merges")
    parser.add_argument("--merges", help="GPT-2 layout merges.txt; needs --vocab")
    parser.add_argument("--vocab-size", type=int, help="ids when training (tokenize.vocab_size)")
    parser.add_argument("--workers", type=int, help="encoding processes (tokenize.workers)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser, ("tokenize",))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from foundation import storage
    from foundation.layout import RunLayout
    from trainer.stages import run_tokenize

    if (args.vocab is None) != (args.merges is None):
        print("webtext tokenize: --vocab and --merges go together", file=sys.stderr)
        return 2
    cfg = resolve_config(
        args,
        **{
            "tokenize.tokenizer": args.tokenizer,
            "tokenize.vocab": args.vocab,
            "tokenize.merges": args.merges,
            "tokenize.vocab_size": args.vocab_size,
            "tokenize.workers": args.workers,
        },
    )
    layout = RunLayout.at(storage.parent(args.shards), shards=args.shards, tokens=args.out)
    print(run_tokenize(cfg, layout, progress=not args.no_progress))
    return 0

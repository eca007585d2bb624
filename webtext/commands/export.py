"""``webtext export``: a checkpoint to a Hugging Face GPT2LMHeadModel directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint as a Hugging Face GPT-2 (config.json, model.safetensors)",
        description=(
            "Export a checkpoint to OUT_DIR in the layout transformers' GPT2LMHeadModel and "
            "AutoTokenizer load with from_pretrained(OUT_DIR)."
        ),
    )
    parser.add_argument("checkpoint", help="checkpoint file or checkpoint directory")
    parser.add_argument("out_dir")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the one the run used)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.checkpoint import CheckpointError
    from trainer.hf import export_hf
    from trainer.sample import load_model

    try:
        model, tokenizer = load_model(args.checkpoint)
    except CheckpointError as e:
        print(f"webtext export: {e}", file=sys.stderr)
        return 1
    if args.tokenizer is None and tokenizer is not None and not Path(tokenizer).exists():
        print(f"webtext export: {tokenizer} (recorded in the checkpoint) is gone; exporting "
              "without a tokenizer (pass --tokenizer)", file=sys.stderr)  # fmt: skip
        tokenizer = None
    out = export_hf(model, args.out_dir, args.tokenizer or tokenizer)
    print(f"exported {model.num_params() / 1e6:.1f}M parameters to {out}")
    return 0

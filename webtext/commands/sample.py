"""``webtext sample``: text from a checkpoint or a Hugging Face export."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="generate text from a checkpoint or an export",
        description="Generate text with temperature and top-k sampling (KV-cached).",
    )
    parser.add_argument("model", help="checkpoint file, checkpoint directory or HF export dir")
    parser.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    parser.add_argument("--top-k", type=int, default=200, help="0 disables top-k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the one the model records)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.checkpoint import CheckpointError
    from trainer.hf import ExportError
    from trainer.sample import load_model, sample
    from trainer.tokenizer import load_tokenizer

    if args.max_new_tokens < 0 or args.temperature < 0 or args.num_samples < 1:
        print("webtext sample: --max-new-tokens/--temperature must be >= 0, --num-samples >= 1",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        model, tok_path = load_model(args.model, args.device)
    except (CheckpointError, ExportError) as e:
        print(f"webtext sample: {e}", file=sys.stderr)
        return 1
    tok_path = args.tokenizer or tok_path
    if tok_path is None:
        print(f"webtext sample: {args.model} records no tokenizer; pass --tokenizer",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        texts = sample(
            model,
            load_tokenizer(tok_path),
            args.prompt,
            args.max_new_tokens,
            args.temperature,
            args.top_k or None,
            args.seed,
            args.num_samples,
        )
    except ValueError as e:
        print(f"webtext sample: {tok_path}: {e}", file=sys.stderr)
        return 1
    for i, text in enumerate(texts):
        if i:
            print("\n" + "-" * 40)
        print(args.prompt + text)
    return 0

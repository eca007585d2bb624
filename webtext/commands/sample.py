"""``webtext sample``: text from a checkpoint or a Hugging Face export."""

from __future__ import annotations

import argparse


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
    from foundation import storage
    from foundation.layout import RunLayout
    from trainer.stages import SampleOptions, run_sample

    opts = SampleOptions(
        prompt=args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k or None,
        seed=args.seed,
        num_samples=args.num_samples,
        tokenizer=args.tokenizer,
        device=args.device,
    )
    texts = run_sample(RunLayout.at(storage.parent(args.model), train=args.model), opts)
    for i, text in enumerate(texts):
        if i:
            print("\n" + "-" * 40)
        print(args.prompt + text)
    return 0

"""The training loop's own throughput: ``trainer.train.train`` end to end on random token shards.

    python bench/train_loop_speed.py --model small --device cpu            # CPU
    python bench/train_loop_speed.py --model gpt2 --device cuda --compile  # GPT-2 124M on a GPU

bench/train_speed.py times the bare step on tensors already in place; this times what a user
runs: memory-mapped token shards, host-to-device copies, accumulation, the NaN check, clipping,
per-step metrics and a final checkpoint (no evaluation: see :func:`random_tokens`). ``--loss``
and ``--sdpa`` are the same comparisons as train_speed's. Its tokens/s beside train_speed's
shows the loop's overhead. The figure is the median of the per-step tokens/s in
``metrics.jsonl`` after ``--warmup`` steps (compilation happens in the first). The last line is
``train_loop_speed: tokens_per_s=... mfu=... device=...``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from context import print_context
from train_speed import attention_kernel, use_loss

from foundation.config import JobConfig, ModelConfig, TrainConfig
from foundation.shards import Manifest
from trainer.metrics import read_metrics
from trainer.model import named_config
from trainer.tokens import write_token_file
from trainer.train import train


def random_tokens(directory: Path, n_tokens: int, vocab_size: int) -> str:
    """A token directory of uniformly random ids, one train file and no validation split: the
    loop then skips evaluation, whose compilation would cost each GPU run half a minute."""
    rng = np.random.default_rng(0)
    entries = [
        write_token_file(
            str(directory / name), rng.integers(0, vocab_size, n, dtype=np.int64), vocab_size, 0
        )
        for name, n in (("train-00000.bin", n_tokens),)
    ]
    Manifest(
        kind="tokens", format="bin", files=entries, extra={"vocab_size": vocab_size, "eot_id": 0}
    ).save(str(directory))
    return str(directory)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="small", help="a named size: gpt2, small, tiny...")
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--vocab-size", type=int, default=50257, help="token ids (model pads to 64)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument(
        "--sdpa",
        default="auto",
        choices=["auto", "flash", "cudnn", "efficient", "math"],
        help="attention kernel tried first (auto: PyTorch's choice)",
    )
    p.add_argument(
        "--loss",
        default="auto",
        choices=["auto", "fused", "plain"],
        help="auto: the model's (plain when compiled, else fused); fused: the chunked "
        "head_cross_entropy always; plain: full logits (swapped in for this run, to compare)",
    )
    args = p.parse_args()
    use_loss(args.loss)

    steps = args.warmup + args.steps
    job = JobConfig(
        model=ModelConfig(name=args.model, block_size=args.block_size),
        train=TrainConfig(
            batch_size=args.batch_size,
            max_steps=steps,
            warmup_steps=1,
            eval_interval=steps,
            eval_steps=1,
            checkpoint_interval=steps,
            compile=args.compile,
            device=args.device,
            dtype=args.dtype,
            allow_contaminated=True,  # random tokens have no contamination report
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        block = args.block_size or named_config(args.model).block_size
        tokens = random_tokens(
            Path(tmp) / "tokens", steps * args.batch_size * (block + 1) * 2, args.vocab_size
        )
        with attention_kernel(args.sdpa):
            train(job, tokens, f"{tmp}/run", progress=False)
        records = [r for r in read_metrics(Path(tmp) / "run" / "metrics.jsonl") if "loss" in r]
    timed = records[args.warmup :]
    tps = statistics.median(r["tokens_per_s"] for r in timed)
    util = statistics.median(r["mfu"] for r in timed)
    ms = statistics.median(r["tokens"] / r["step"] / r["tokens_per_s"] * 1000 for r in timed)
    first_s = records[0]["tokens"] / records[0]["tokens_per_s"]
    print(
        f"{args.model}, batch {args.batch_size}, {args.device}, dtype={args.dtype}, "
        f"compile={args.compile}, loss={args.loss}, sdpa={args.sdpa}: first step {first_s:.1f} s, "
        f"then {len(timed)} timed steps, median {ms:.1f} ms/step"
    )
    print_context(model=args.model, batch=args.batch_size, steps=len(timed))
    print(f"train_loop_speed: tokens_per_s={tps:.0f} mfu={util:.4f} device={args.device}")


if __name__ == "__main__":
    main()

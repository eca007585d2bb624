"""Training throughput: tokens/s and MFU of forward + backward + AdamW on random tokens.

    python bench/train_speed.py                      # CPU, the issue's small config, 2 threads
    python bench/train_speed.py --compile            # the same through torch.compile
    python bench/train_speed.py --loss plain         # the full-logits loss, for comparison
    python bench/train_speed.py --loss fused         # the chunked loss, compiled too
    python bench/train_speed.py --device cuda --dtype bfloat16 --compile \
        --n-layer 12 --n-head 12 --n-embd 768 --block-size 1024 --batch-size 16   # GPT-2 124M

The first ``--warmup`` steps (compilation, allocator, caches) are not timed. The step is the
trainer's: autocast to ``--dtype`` on CUDA, AdamW (fused on CUDA) with decay on matrices, grad
clipping at 1.0, TF32 matmuls on Ampere+, SDPA attention (flash on CUDA with bf16/fp16).
MFU uses trainer.metrics' FLOPs per token and per-device peak (see its docstring; on a CPU
derived from its flags or measured, whichever is higher, named by ``peak_source``).
The last line is ``train_speed: tokens_per_s=... mfu=... peak_source=... device=...``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from context import print_context
from torch.nn import functional as F

from trainer import precision
from trainer.metrics import flops_per_token, peak_flops
from trainer.model import GPT, GPTConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--block-size", type=int, default=256)
    p.add_argument("--vocab-size", type=int, default=50304)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"],
        help="torch.compile mode (autotuning costs minutes of compilation)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=2, help="CPU intra-op threads")
    p.add_argument(
        "--sdpa",
        default="auto",
        choices=["auto", "flash", "cudnn", "efficient", "math"],
        help="attention kernel (auto: PyTorch's choice; others are tried first)",
    )
    p.add_argument(
        "--loss",
        default="auto",
        choices=["auto", "fused", "plain"],
        help="auto: the model's (trainer.model.lm_loss: plain when compiled, else fused); "
        "fused: the chunked head_cross_entropy always; plain: full logits, then F.cross_entropy",
    )
    p.add_argument(
        "--profile",
        default=None,
        help="after timing, profile 3 steps with torch.profiler and write the kernel summary here",
    )
    args = p.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = GPTConfig(
        block_size=args.block_size,
        vocab_size=args.vocab_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
    )
    raw = GPT(cfg).to(device)
    opt = raw.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device.type)

    use_loss(args.loss)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return raw(x, y)[1]

    if args.compile:
        loss_of = torch.compile(loss_of, mode=args.compile_mode)
    dtype = getattr(torch, args.dtype)
    autocast = precision.autocast(device, dtype)
    x = torch.randint(0, cfg.vocab_size, (args.batch_size, cfg.block_size), device=device)
    y = torch.randint(0, cfg.vocab_size, (args.batch_size, cfg.block_size), device=device)

    def step() -> torch.Tensor:
        with autocast:
            loss = loss_of(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(raw.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()  # no wait for the device: the host queues the next step

    with attention_kernel(args.sdpa):
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            step()
        float(step())  # waits for the device
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        losses = [step() for _ in range(args.steps)]
        last = torch.stack(losses).tolist()[-1]  # waits for the device
        dt = time.perf_counter() - t0
        if args.profile:
            profile(step, args.profile)
    if last != last:
        raise SystemExit("train_speed: the loss is NaN")
    tps = args.steps * args.batch_size * cfg.block_size / dt
    fpt = flops_per_token(
        raw.num_params(non_embedding=True),
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd // cfg.n_head,
        cfg.block_size,
    )
    peak = peak_flops(device.type, args.dtype, args.threads if device.type == "cpu" else None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{raw.num_params() / 1e6:.1f}M params, {name}, {args.dtype}, "
        f"compile={args.compile and args.compile_mode}, loss={args.loss}, "
        f"sdpa={args.sdpa}, threads={torch.get_num_threads()}: warm-up {warm_s:.1f} s, "
        f"{dt / args.steps * 1000:.0f} ms/step"
    )
    util = peak.mfu(tps, fpt)
    print(f"MFU {util:.1%} of a peak of {peak.describe()}")
    ceiling = matmul_flops(device, dtype, args.batch_size * cfg.block_size, cfg) / fpt
    print(
        f"matmul ceiling: the output head's matmul (most of the FLOPs) runs at "
        f"{ceiling * fpt / 1e9:.0f} GFLOP/s here; at that rate the model's FLOPs allow about "
        f"{ceiling:.0f} tokens/s on this device, and this run reaches {tps / ceiling:.0%}"
    )
    print_context(batch=args.batch_size, block=cfg.block_size, dtype=args.dtype)
    print(
        f"train_speed: tokens_per_s={tps:.0f} mfu={util:.4f} "
        f"peak_source={peak.kind} device={device.type} "
        f"matmul_ceiling_tokens_per_s={ceiling:.0f} of_ceiling={tps / ceiling:.3f}"
    )


def use_loss(name: str) -> None:
    """Make the model's loss (``trainer.model.lm_loss``) ``name`` for this process."""
    import trainer.model

    def plain(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy((h @ w.t()).float(), t, ignore_index=-1)

    if name == "fused":
        trainer.model.lm_loss = trainer.model.head_cross_entropy
    elif name == "plain":
        trainer.model.lm_loss = plain


def profile(step, path: str) -> None:
    """Three steps under torch.profiler: the kernels by device time, and their sum per kind."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity

    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    kinds = {
        "matmul": ("gemm", "nvjet", "cutlass", "sm90_", "cublas"),
        "attention": ("flash", "fmha", "attention", "cudnn"),
        "adamw": ("adam",),
        "triton (fused elementwise, norms, loss)": ("triton",),
    }
    sums: dict[str, float] = {}
    for e in events:
        name = e.key.lower()
        kind = next((k for k, keys in kinds.items() if any(w in name for w in keys)), "other")
        sums[kind] = sums.get(kind, 0.0) + e.self_device_time_total / 3 / 1000
    total = sum(sums.values())
    lines = [f"device time per step: {total:.1f} ms"]
    lines += [
        f"  {k}: {v:.1f} ms ({v / total:.0%})"
        for k, v in sorted(sums.items(), key=lambda kv: -kv[1])
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n\n")
        f.write(prof.key_averages().table(sort_by="self_device_time_total", row_limit=40))
    print("profile: " + " | ".join(lines))


def attention_kernel(name: str) -> contextlib.AbstractContextManager:
    """Put one ``scaled_dot_product_attention`` backend first (the others remain fallbacks)."""
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }
    first = backends.pop(name)
    return sdpa_kernel([first, *backends.values()], set_priority=True)


def matmul_flops(device: torch.device, dtype: torch.dtype, tokens: int, cfg: GPTConfig) -> float:
    """FLOP/s of the (tokens x n_embd) @ (n_embd x vocab) product, as measured here: a
    machine's real matmul rate, against which a quoted tokens/s can be checked."""
    a = torch.randn(tokens, cfg.n_embd, device=device, dtype=dtype)
    w = torch.randn(cfg.vocab_size, cfg.n_embd, device=device, dtype=dtype)
    for _ in range(2):
        a @ w.T
    if device.type == "cuda":
        torch.cuda.synchronize()
    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        out = a @ w.T
    out.sum().item()
    return reps * 2 * tokens * cfg.n_embd * cfg.vocab_size / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()

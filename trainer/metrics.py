"""Training metrics: ``metrics.jsonl``, the loss-curve image, and model FLOPs utilisation (MFU).

MFU is the share of the device's peak throughput that the model's own arithmetic uses, as in
PaLM (Chowdhery et al. 2022, appendix B) and nanoGPT: a training token costs
``6 N + 12 L H Q T`` FLOPs, with N the parameters less the position table (the tied output
projection is the token embedding, counted once), L layers, H heads, Q head size, T context.
6N is forward (2N) plus backward (4N) through the weights; the second term is attention's
QK^T and AV products. MFU = tokens/s x FLOPs/token / peak.

Peak FLOP/s per device (dense, no sparsity), from the vendors' data sheets:

============================  =========  =========================================
device                        dtype      peak
============================  =========  =========================================
NVIDIA H100 SXM / H200        bf16/fp16  989 TFLOP/s
NVIDIA H100 PCIe              bf16/fp16  756 TFLOP/s
NVIDIA A100                   bf16/fp16  312 TFLOP/s (fp32 via TF32: 156)
NVIDIA L4 / A10G / V100       bf16/fp16  121 / 125 / 125 TFLOP/s
CPU (x86-64 with AVX2+FMA)    fp32       threads x GHz x 32 (two 8-wide FMA units)
============================  =========  =========================================

The CPU figure is an estimate: the clock is /proc/cpuinfo's "cpu MHz" (2.5 GHz when unknown),
which in a VM is often the base clock, so a core boosting above it can show an MFU above what
is possible; AVX-512 machines can reach twice the figure. CPU MFU compares runs on one
machine, not machines.
An unknown GPU reports MFU against the A100's figure, and says so in the log.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GPU_PEAK_BF16 = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10G": 125e12,
    "V100": 125e12,
}
A100_TF32 = 156e12


def flops_per_token(n_params: int, n_layer: int, n_head: int, head_size: int, ctx: int) -> int:
    """Training FLOPs per token: 6N + 12·L·H·Q·T (forward and backward)."""
    return 6 * n_params + 12 * n_layer * n_head * head_size * ctx


def _cpu_ghz() -> float:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 2.5
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    return max(mhz) / 1000 if mhz else 2.5


def peak_flops(device_type: str, dtype: str, threads: int | None = None) -> float:
    """Peak FLOP/s of one device for ``dtype`` (see the table in the module docstring)."""
    if device_type == "cuda":
        import torch

        name = torch.cuda.get_device_name()
        for key, value in GPU_PEAK_BF16.items():
            if key in name:
                peak = value
                break
        else:
            log.warning("peak FLOP/s of %r unknown: MFU is against an A100 (312 TFLOP/s)", name)
            peak = GPU_PEAK_BF16["A100"]
        return peak if dtype in ("bfloat16", "float16") else peak * A100_TF32 / 312e12
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return threads * _cpu_ghz() * 1e9 * 32


def mfu(tokens_per_s: float, flops_token: int, peak: float) -> float:
    return tokens_per_s * flops_token / peak


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (flushed, so a kill loses little)."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        else:  # drop what a killed run logged after the checkpoint we resume from
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not JSON ({e})") from e
    return out


def plot_loss(metrics_path: str | Path, image_path: str | Path) -> Path:
    """Training and validation loss against step, as a PNG (matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r and math.isfinite(r["loss"])]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation", marker="o", linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    image_path = Path(image_path)
    tmp = image_path.with_name(f".{image_path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, image_path)
    return image_path

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
CPU                           any        the higher of derived and measured (below)
============================  =========  =========================================

A CPU's peak is derived from what /proc/cpuinfo says it has: threads (at most the cores) x clock
("cpu MHz") x FLOPs per cycle from its vector flags (fp32: ``avx512f`` 64, two 16-wide FMA
units; ``avx2`` + ``fma`` 32; else 8. bf16: ``amx_bf16`` 1024 per core, ``avx512_bf16`` 128,
else as fp32). In a VM "cpu MHz" is often the base clock, so the derived figure can be low;
the peak is therefore also measured once per process (a short timed square matmul, the best of
a few) and the higher figure is used, named in the output (``derived: ...`` or
``measured: ...``). A measurement on a loaded machine is low, which is why it never replaces a
higher derived figure. If a run's own arithmetic ever goes faster than the peak, the peak was
wrong: it is raised to that rate, with a warning, so MFU is never above 1.
An unknown GPU reports MFU against the A100's figure, and says so in the log.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
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


@dataclass
class Peak:
    """A device's peak FLOP/s and where the figure comes from (shown beside every MFU)."""

    flops: float
    kind: str
    """How the figure was found: ``derived``, ``measured``, ``data-sheet`` or ``raised``."""
    detail: str

    def mfu(self, tokens_per_s: float, flops_token: int) -> float:
        """Share of the peak used; a rate above the peak proves the peak wrong, so it is raised
        to that rate (MFU 1) rather than reporting more than 100%."""
        achieved = tokens_per_s * flops_token
        if achieved > self.flops:
            log.warning(
                "%.3g FLOP/s reached, above the peak of %s: peak raised to the rate reached",
                achieved,
                self.describe(),
            )
            self.detail = f"a training rate reached, above the {self.kind} {self.flops:.3g}"
            self.flops, self.kind = achieved, "raised"
        return achieved / self.flops

    def describe(self) -> str:
        return f"{self.flops / 1e12:.3f} TFLOP/s ({self.kind}: {self.detail})"


def _cpuinfo() -> tuple[float, set[str], int]:
    """Clock in GHz (2.5 when unknown), vector flags and cores, from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 2.5, set(), os.cpu_count() or 1
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    flags = re.search(r"^flags\s*:(.*)$", text, re.M)
    cores = len(re.findall(r"^processor\s*:", text, re.M)) or os.cpu_count() or 1
    return (max(mhz) / 1000 if mhz else 2.5), set(flags.group(1).split()) if flags else set(), cores


def flops_per_cycle(flags: set[str], dtype: str) -> tuple[int, str]:
    """FLOPs per cycle per core for ``dtype`` from the CPU's flags, and the flag it rests on."""
    if dtype == "bfloat16":
        for flag, n in (("amx_bf16", 1024), ("avx512_bf16", 128)):
            if flag in flags:
                return n, flag
    if "avx512f" in flags:
        return 64, "avx512f"
    if "avx2" in flags and "fma" in flags:
        return 32, "avx2+fma"
    return 8, "sse"


def derived_cpu_peak(dtype: str, threads: int) -> Peak:
    ghz, flags, cores = _cpuinfo()
    per_cycle, flag = flops_per_cycle(flags, dtype)
    used = min(threads, cores)
    return Peak(
        used * ghz * 1e9 * per_cycle,
        "derived",
        f"{used} threads x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({flag})",
    )


@functools.cache
def measured_cpu_peak(dtype: str, threads: int, n: int = 1024, reps: int = 5) -> Peak:
    """The best of ``reps`` timed ``n`` x ``n`` matmuls in ``dtype`` on ``threads`` threads
    (about 0.1 s at 100 GFLOP/s), once per process."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, dtype=getattr(torch, dtype))
        b = torch.randn(n, n, dtype=getattr(torch, dtype))
        a @ b  # warm-up: allocator, kernel selection
        best = math.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return Peak(2 * n**3 / best, "measured", f"{n}x{n} {dtype} matmul on {threads} threads")


def peak_flops(device_type: str, dtype: str, threads: int | None = None) -> Peak:
    """Peak FLOP/s of one device for ``dtype`` (see the module docstring)."""
    if device_type == "cuda":
        import torch

        name = torch.cuda.get_device_name()
        for key, value in GPU_PEAK_BF16.items():
            if key in name:
                peak = value
                break
        else:
            log.warning("peak FLOP/s of %r unknown: MFU is against an A100 (312 TFLOP/s)", name)
            name, peak = "A100 (assumed)", GPU_PEAK_BF16["A100"]
        if dtype in ("bfloat16", "float16"):
            return Peak(peak, "data-sheet", f"{name} {dtype}")
        return Peak(peak * A100_TF32 / 312e12, "data-sheet", f"{name} TF32")
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    derived = derived_cpu_peak(dtype, threads)
    measured = measured_cpu_peak(dtype, threads)
    return max(derived, measured, key=lambda p: p.flops)


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

"""The compute dtype of a run, and the autocast context that applies it.

Training and evaluation name their precision the same way (``auto``, ``float32``, ``bfloat16``,
``float16``) and must agree on what ``auto`` means: a model trained in bfloat16 on a GPU is
scored in bfloat16 there, and both run in float32 on a CPU, where autocast to bfloat16 is slower
than float32 on most parts.
"""

from __future__ import annotations

import contextlib

import torch


def compute_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA and float32 elsewhere; any other name is that dtype."""
    if name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return getattr(torch, name)


def autocast(device: torch.device | str, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``; float32 needs none (and CPU autocast would cast
    matmuls to bfloat16)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)

"""What ``auto`` precision means, for training and evaluation alike."""

import torch

from trainer.precision import autocast, compute_dtype


def test_auto_is_bfloat16_on_cuda_and_float32_elsewhere():
    assert compute_dtype("auto", "cuda") == torch.bfloat16
    assert compute_dtype("auto", torch.device("cuda", 1)) == torch.bfloat16
    assert compute_dtype("auto", "cpu") == torch.float32
    assert compute_dtype("float16", "cpu") == torch.float16
    assert compute_dtype("float32", "cuda") == torch.float32


def test_autocast_casts_matmuls_only_below_float32():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast("cpu", torch.float32):
        assert (a @ b).dtype == torch.float32
    with autocast("cpu", torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16

"""The GPU paths: bf16 autocast training, fused AdamW, torch.compile, flash attention, the KV
cache, Hugging Face parity and bf16 evaluation on CUDA. Skipped where no GPU is present (CI);
run on a GPU machine with ``pytest tests/test_cuda.py``."""

from __future__ import annotations

import math

import pytest
import torch

from tests.train_factory import job, random_export, token_dir
from trainer.evaluate import lm_requests, score
from trainer.metrics import read_metrics
from trainer.model import GPT, GPTConfig
from trainer.sample import load_model
from trainer.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CFG = GPTConfig(block_size=64, vocab_size=320, n_layer=2, n_head=2, n_embd=128)


@pytest.fixture
def tokens(tmp_path):
    return str(token_dir(tmp_path / "tokens"))


@pytest.fixture
def exact_fp32():
    """Full float32 matmuls (no TF32) for parity checks, restored afterwards."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


def test_bf16_training_lowers_loss_resumes_and_loads_on_cpu(tmp_path, tokens):
    cfg = job(device="cuda", max_steps=12, eval_interval=6, checkpoint_interval=6)
    assert cfg.train.dtype == "auto"  # bfloat16 autocast on CUDA
    straight = train(cfg, tokens, str(tmp_path / "a"), progress=False)
    assert straight.losses[1] == pytest.approx(math.log(256), abs=0.2)
    assert straight.losses[12] < straight.losses[1] - 0.2
    records = [r for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "loss" in r]
    assert all(0 < r["mfu"] < 1 for r in records)

    train(cfg, tokens, str(tmp_path / "b"), progress=False, max_steps=6)
    rest = train(cfg, tokens, str(tmp_path / "b"), progress=False, resume=True)
    for step in range(7, 13):  # GPU reductions are not bit-reproducible; bf16 rounding
        assert rest.losses[step] == pytest.approx(straight.losses[step], abs=2e-2), step

    model, _ = load_model(tmp_path / "a", device="cpu")  # a GPU checkpoint serves on CPU
    out = model.generate(torch.zeros((1, 1), dtype=torch.long), 5, temperature=0)
    assert out.shape == (1, 6)


def test_compiled_training_matches_eager_and_saves_plain_weights(tmp_path, tokens):
    eager = train(job(device="cuda", max_steps=3), tokens, str(tmp_path / "e"), progress=False)
    compiled = train(
        job(device="cuda", max_steps=3, compile=True), tokens, str(tmp_path / "c"), progress=False
    )
    for step in (1, 2, 3):
        assert compiled.losses[step] == pytest.approx(eager.losses[step], abs=2e-2), step
    model, _ = load_model(tmp_path / "c", device="cuda")  # no "_orig_mod." prefixes
    assert isinstance(model, GPT)


def test_adamw_is_fused_on_cuda():
    model = GPT(CFG).cuda()
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cuda")
    assert opt.defaults["fused"] is True


def test_flash_attention_serves_bf16_training_shapes():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = GPT(GPTConfig(block_size=128, vocab_size=320, n_layer=2, n_head=2, n_embd=128))
    model.cuda()
    x = torch.randint(0, 320, (4, 128), device="cuda")
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.autocast("cuda", dtype=torch.bfloat16):
        _, loss = model(x, x)  # raises if flash cannot take these shapes
    loss.backward()
    assert torch.isfinite(loss)


def test_cached_greedy_generation_equals_uncached_on_cuda():
    torch.manual_seed(0)
    model = GPT(CFG).cuda().double().eval()  # float64: no argmax ties from rounding
    prompt = torch.randint(0, CFG.vocab_size, (3, 5), device="cuda")
    cached = model.generate(prompt, 80, temperature=0)  # runs past block_size=64
    plain = model.generate(prompt, 80, temperature=0, use_cache=False)
    assert torch.equal(cached, plain)


def test_transformers_logits_match_on_cuda(tmp_path, exact_fp32):
    transformers = pytest.importorskip("transformers")
    model, out, _ = random_export(tmp_path, ["Grüße aus Köln, naïve café. " * 40], CFG)
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(out)).cuda().eval()
    model = model.cuda()
    x = torch.randint(0, CFG.vocab_size, (2, CFG.block_size), device="cuda")
    with torch.no_grad():
        ours, _ = model(x)
        theirs = hf(x).logits
    assert (ours - theirs).abs().max().item() < 1e-4


def test_bf16_evaluation_scores_close_to_float32_on_cuda(exact_fp32):
    torch.manual_seed(0)
    model = GPT(CFG).cuda().eval()
    ids = torch.randint(1, CFG.vocab_size, (500,)).tolist()
    reqs = lm_requests(ids, 0, CFG.block_size, 32)
    f32 = sum(s.nll.sum() for s in score(model, reqs, dtype="float32"))
    bf16 = sum(s.nll.sum() for s in score(model, reqs, dtype="bfloat16"))
    assert f32 == pytest.approx(len(ids) * math.log(CFG.vocab_size), rel=0.1)
    assert bf16 == pytest.approx(f32, rel=0.02)


def test_a_training_step_does_not_wait_for_the_gpu(tmp_path, tokens):
    """The loop reads losses once per log interval: the step itself, the batch's copy from
    pinned memory included, must queue its work without a host synchronisation."""
    from trainer.train import DistInfo, setup, train_step, wrap_model

    run = setup(job(device="cuda"), tokens, tmp_path / "t", DistInfo(), gate={})
    wrap_model(run)
    train_step(run)  # the first step creates the optimiser's state and the libraries' handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        figures = [train_step(run) for _ in range(2)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    losses = torch.stack([f.loss for f in figures]).tolist()
    assert all(math.isfinite(v) for v in losses)
    assert all(f.timer.seconds() > 0 for f in figures)

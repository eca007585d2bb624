"""The training loop's pieces called alone: setup, one optimiser step, evaluation, checkpoint
and restore (``trainer.train``'s functions, without ``train()`` around them)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.train_factory import job, token_dir
from trainer.checkpoint import latest_checkpoint
from trainer.metrics import Peak, flops_per_cycle, read_metrics
from trainer.train import (
    DistInfo,
    Progress,
    TrainingDiverged,
    flush,
    restore,
    setup,
    train_step,
    validate,
    wrap_model,
)
from trainer.train import checkpoint as save

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tokens(tmp_path):
    return str(token_dir(tmp_path / "tokens"))


def _run(tokens, out, **train):
    run = setup(job(**train), tokens, out, DistInfo(), gate={"ok": True})
    wrap_model(run)
    return run


def _weights(run):
    return {k: v.detach().clone() for k, v in run.raw.state_dict().items()}


def test_setup_builds_a_fresh_run_at_step_zero(tmp_path, tokens):
    run = _run(tokens, tmp_path / "t", batch_size=4, batch_tokens=8 * 32)
    assert run.step == 0 and run.accum == 2 and run.tokens_per_step == 8 * 32
    assert run.device.type == "cpu" and run.model is run.raw and run.val_data is not None
    assert run.fpt > 0 and run.peak.flops > 0 and run.peak.kind in ("derived", "measured")
    assert not (tmp_path / "t").exists()  # nothing written before the first checkpoint


def test_one_step_changes_the_weights_and_returns_a_finite_loss(tmp_path, tokens):
    run = _run(tokens, tmp_path / "t")
    before = _weights(run)
    figures = train_step(run)
    loss = figures.loss.item()  # a device tensor: the step itself does not wait for the GPU
    assert math.isfinite(loss) and loss == pytest.approx(math.log(256), abs=0.15)
    assert figures.grad_norm is not None and figures.grad_norm.item() > 0
    assert figures.step == 1 and figures.lr == pytest.approx(3e-3 / 2)  # warmup_steps=2
    assert figures.timer.seconds() > 0
    assert run.step == 1 and run.train_data.cursor == 4
    after = _weights(run)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "lm_head.weight" in changed and len(changed) == len(before)


def test_validation_loss_alone_is_near_ln_vocab_at_init(tmp_path, tokens):
    run = _run(tokens, tmp_path / "t")
    assert validate(run, metrics=None) == pytest.approx(math.log(256), abs=0.15)
    assert run.raw.training  # evaluation puts the model back in training mode


def test_checkpoint_then_restore_gives_the_same_state_and_next_step(tmp_path, tokens):
    a = _run(tokens, tmp_path / "t")
    for _ in range(2):
        train_step(a)
    path = save(a, val_loss=1.5)
    assert path == latest_checkpoint(tmp_path / "t")

    b = setup(job(), tokens, tmp_path / "t", DistInfo(), gate={"ok": True})
    assert restore(b) == path
    wrap_model(b)
    assert b.step == 2 and b.train_data.cursor == a.train_data.cursor
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    moments = zip(a.optimizer.state.values(), b.optimizer.state.values(), strict=True)
    assert all(torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"]) for sa, sb in moments)
    assert train_step(b).loss.item() == pytest.approx(train_step(a).loss.item(), abs=1e-6)


def test_restore_without_a_checkpoint_leaves_step_zero(tmp_path, tokens):
    run = setup(job(), tokens, tmp_path / "empty", DistInfo(), gate={})
    assert restore(run) is None and run.step == 0


def test_flush_reports_pending_steps_and_returns_their_losses(tmp_path, tokens):
    run = _run(tokens, tmp_path / "t")
    report = Progress(run, bar=False)
    pending = [train_step(run) for _ in range(3)]
    losses = flush(run, pending, report)
    assert pending == [] and sorted(losses) == [1, 2, 3]
    records = read_metrics(tmp_path / "t" / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert [r["loss"] for r in records] == [losses[s] for s in (1, 2, 3)]
    assert all(r["tokens_per_s"] > 0 and r["grad_norm"] > 0 for r in records)


def test_flush_stops_at_the_first_nan_and_reports_only_the_steps_before(tmp_path, tokens):
    run = _run(tokens, tmp_path / "t")
    report = Progress(run, bar=False)
    pending = [train_step(run) for _ in range(3)]
    pending[1].loss = torch.tensor(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 2 .*stopped at step 3"):
        flush(run, pending, report)
    assert pending == []
    assert [r["step"] for r in read_metrics(tmp_path / "t" / "metrics.jsonl")] == [1]


def test_cpu_peak_follows_the_vector_units_the_flags_name():
    assert flops_per_cycle({"avx512f", "avx2", "fma"}, "float32") == (64, "avx512f")
    assert flops_per_cycle({"avx2", "fma"}, "float32") == (32, "avx2+fma")
    assert flops_per_cycle({"avx512f", "amx_bf16"}, "bfloat16") == (1024, "amx_bf16")
    assert flops_per_cycle({"avx512f"}, "bfloat16") == (64, "avx512f")


def test_mfu_is_never_above_one_the_peak_is_raised_and_says_so():
    peak = Peak(100.0, "derived", "a figure too low")
    assert peak.mfu(2.0, 25) == 0.5
    assert peak.mfu(10.0, 25) == 1.0  # 250 FLOP/s reached: the peak was wrong
    assert peak.flops == 250.0 and peak.kind == "raised" and "derived" in peak.describe()
    assert peak.mfu(2.0, 25) == 0.2  # later steps are measured against the raised peak

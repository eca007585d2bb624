"""The training loop: schedule, resume equivalence, accumulation, divergence, the gate, metrics."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from contamination.gate import ContaminationGateError
from foundation.config import ConfigError, TrainConfig
from foundation.shards import Manifest
from tests.train_factory import job, token_dir
from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.metrics import read_metrics
from trainer.train import TrainingDiverged, get_lr, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tokens(tmp_path):
    return str(token_dir(tmp_path / "tokens"))


def test_lr_warms_up_linearly_then_decays_by_cosine_to_min_lr():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert get_lr(0, cfg) == pytest.approx(0.1)
    assert get_lr(4, cfg) == pytest.approx(0.5)
    assert get_lr(9, cfg) == pytest.approx(1.0)
    assert get_lr(10, cfg) == pytest.approx(1.0)
    assert get_lr(60, cfg) == pytest.approx(0.55)  # half way: midpoint of lr and min_lr
    assert get_lr(110, cfg) == pytest.approx(0.1)
    assert get_lr(500, cfg) == pytest.approx(0.1)
    lrs = [get_lr(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    assert get_lr(0, TrainConfig(warmup_steps=0, max_steps=10)) == pytest.approx(6e-4)


def test_training_lowers_loss_and_writes_metrics_curve_and_checkpoint(tmp_path, tokens):
    result = train(job(max_steps=12, eval_interval=6), tokens, str(tmp_path / "t"), progress=False)
    assert result.step == 12
    first, last = result.losses[1], result.losses[12]
    assert first == pytest.approx(math.log(256), abs=0.15)  # untrained: ln(vocab)
    assert last < first - 0.2
    records = read_metrics(tmp_path / "t" / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13))
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [6, 12]
    assert evals[-1]["val_ppl"] == pytest.approx(math.exp(evals[-1]["val_loss"]))
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 for r in records if "loss" in r)
    assert (tmp_path / "t" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = load_checkpoint(tmp_path / "t")
    assert ckpt["step"] == 12 and ckpt["data"]["cursor"] == 12 * 4
    assert ckpt["config"]["train"]["max_steps"] == 12
    assert set(ckpt["rng"][0]) >= {"python", "numpy", "torch"}


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path, tokens):
    cfg = job(max_steps=6)
    straight = train(cfg, tokens, str(tmp_path / "a"), progress=False)
    first = train(cfg, tokens, str(tmp_path / "b"), progress=False, max_steps=3)
    assert first.step == 3 and latest_checkpoint(tmp_path / "b").name == "ckpt-0000003.pt"
    rest = train(cfg, tokens, str(tmp_path / "b"), progress=False, resume=True)
    resumed = {**first.losses, **rest.losses}
    assert sorted(resumed) == list(range(1, 7))
    for step, loss in straight.losses.items():
        assert resumed[step] == pytest.approx(loss, abs=1e-6), step
    assert rest.val_loss == pytest.approx(straight.val_loss, abs=1e-6)
    steps = [r["step"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 7))


def test_resume_restores_dropout_rng(tmp_path, tokens):
    from dataclasses import replace

    cfg = job(max_steps=4, checkpoint_interval=2)
    cfg = replace(cfg, model=replace(cfg.model, dropout=0.2))
    straight = train(cfg, tokens, str(tmp_path / "a"), progress=False)
    train(cfg, tokens, str(tmp_path / "b"), progress=False, max_steps=2)
    rest = train(cfg, tokens, str(tmp_path / "b"), progress=False, resume=True)
    for step in (3, 4):
        assert rest.losses[step] == pytest.approx(straight.losses[step], abs=1e-6)


def test_gradient_accumulation_reaches_the_target_batch(tmp_path, tokens):
    big = train(job(max_steps=2, batch_size=8), tokens, str(tmp_path / "a"), progress=False)
    accum = train(
        job(max_steps=2, batch_size=4, batch_tokens=8 * 32),
        tokens,
        str(tmp_path / "b"),
        progress=False,
    )
    # 2 micro-batches of 4 windows = the same 8 windows as one batch of 8
    for step in (1, 2):
        assert accum.losses[step] == pytest.approx(big.losses[step], abs=1e-5)
    with pytest.raises(ConfigError, match="batch_tokens=100"):
        train(job(batch_tokens=100), tokens, str(tmp_path / "c"), progress=False)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tokens):
    out = tmp_path / "t"
    train(job(max_steps=20, checkpoint_interval=1), tokens, str(out), progress=False, max_steps=2)
    good = latest_checkpoint(out)
    cfg = job(max_steps=20, checkpoint_interval=1, lr=1e12, min_lr=1e11, warmup_steps=0)
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf).*ckpt-000000\d\.pt"):
        train(cfg, tokens, str(out), progress=False, resume=True)
    last = load_checkpoint(out)
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    assert last["step"] >= 2 and latest_checkpoint(out).name >= good.name


def _text_shards_with_report(tmp_path, overlap_pct, checksum=None):
    shards = tmp_path / "run" / "shards"
    Manifest(kind="text", format="parquet").save(str(shards))
    report = {
        "manifest_checksum": checksum or Manifest.load(str(shards)).checksum,
        "test_sets": {"lambada": {"overlap_pct": overlap_pct}, "wikitext": {"overlap_pct": 0.1}},
    }
    (tmp_path / "run" / "contamination").mkdir(parents=True)
    (tmp_path / "run" / "contamination" / "report.json").write_text(json.dumps(report))
    return str(shards)


@pytest.mark.parametrize(
    ("overlap", "checksum", "match"),
    [
        (None, None, "no contamination report"),
        (12.5, None, "'lambada' overlaps the shards by 12.50%"),
        (0.5, "0" * 64, "stale report"),
    ],
)
def test_gate_refuses_missing_stale_or_contaminated_shards(tmp_path, overlap, checksum, match):
    shards = _text_shards_with_report(tmp_path, overlap or 0.0, checksum)
    if overlap is None:
        (tmp_path / "run" / "contamination" / "report.json").unlink()
    tokens = token_dir(tmp_path / "tokens", extra={"source": shards})
    strict = job(allow_contaminated=False, max_overlap_pct=5.0, max_steps=1)
    with pytest.raises(ContaminationGateError, match=match):
        train(strict, str(tokens), str(tmp_path / "t"), progress=False)
    assert not (tmp_path / "t").exists()
    allowed = job(allow_contaminated=True, max_overlap_pct=5.0, max_steps=1)
    train(allowed, str(tokens), str(tmp_path / "t"), progress=False)
    gate = load_checkpoint(tmp_path / "t")["gate"]
    assert gate["ok"] is False and gate["allowed"] is True


def test_gate_passes_clean_shards_and_checkpoint_records_the_report(tmp_path):
    shards = _text_shards_with_report(tmp_path, 0.5)
    tokens = token_dir(tmp_path / "tokens", extra={"source": shards})
    cfg = job(allow_contaminated=False, max_overlap_pct=1.0, max_steps=1)
    train(cfg, str(tokens), str(tmp_path / "t"), progress=False)
    gate = load_checkpoint(tmp_path / "t")["gate"]
    assert gate["ok"] is True and gate["worst_test_set"] == "lambada"
    assert gate["report_path"].endswith("contamination/report.json")
    assert len(gate["report_checksum"]) == 64


def test_tokens_without_a_recorded_source_need_allowing(tmp_path, tokens):
    with pytest.raises(ContaminationGateError, match="records no source"):
        train(job(allow_contaminated=False), tokens, str(tmp_path / "t"), progress=False)


def test_too_little_data_for_a_batch_is_a_clear_error(tmp_path):
    from trainer.tokens import TokenShardError

    tokens = token_dir(tmp_path / "tokens", n_train=100, n_val=100)
    with pytest.raises(TokenShardError, match="fewer than one batch"):
        train(job(batch_size=8), str(tokens), str(tmp_path / "t"), progress=False)

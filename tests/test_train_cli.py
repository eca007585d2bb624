"""``webtext train`` as users run it: torchrun with 2 processes, SIGTERM and --resume, then
``webtext export`` and ``webtext sample`` on the result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train_factory import job, token_dir
from trainer.checkpoint import load_checkpoint
from trainer.metrics import read_metrics
from trainer.tokenizer import train_tokenizer
from trainer.train import train
from webtext.cli import main

VENV_BIN = Path(sys.executable).parent
FLAGS = [
    "--model-name=tiny",
    "--model-block-size=32",
    "--model-vocab-size=256",
    "--train-batch-size=4",
    "--train-warmup-steps=2",
    "--train-lr=3e-3",
    "--train-min-lr=3e-4",
    "--train-eval-interval=3",
    "--train-eval-steps=2",
    "--train-device=cpu",
    "--no-progress",
    "--allow-contaminated",
]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_accumulating_the_same_batch(tmp_path):
    tokens = token_dir(tmp_path / "tokens")
    cmd = [
        str(VENV_BIN / "torchrun"),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "webtext.cli",
        "train",
        str(tmp_path / "run"),
        f"--tokens={tokens}",
        f"--out={tmp_path / 'ddp'}",
        "--train-max-steps=3",
        *FLAGS,
    ]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "ddp" / "metrics.jsonl")
           if "loss" in r}  # fmt: skip
    # One process with 2 micro-batches of 4 sees the windows the 2 ranks saw together.
    single = train(
        job(max_steps=3, batch_tokens=2 * 4 * 32), str(tokens), str(tmp_path / "one"),
        progress=False,
    )  # fmt: skip
    assert sorted(ddp) == [1, 2, 3]
    for step, loss in single.losses.items():
        assert ddp[step] == pytest.approx(loss, abs=1e-5), step
    ckpt = load_checkpoint(tmp_path / "ddp")
    assert ckpt["world"] == 2 and len(ckpt["rng"]) == 2
    assert ckpt["data"]["cursor"] == 3 * 2 * 4


@pytest.mark.slow
def test_sigterm_checkpoints_then_resume_export_and_sample(tmp_path):
    tokens = token_dir(tmp_path / "tokens")
    tok = train_tokenizer(["plain words for a tiny vocabulary " * 50], vocab_size=300)
    tok.save(str(tokens / "tokenizer.json"))
    out = tmp_path / "train"
    cmd = [
        str(VENV_BIN / "webtext"),
        "train",
        str(tmp_path / "run"),
        f"--tokens={tokens}",
        f"--out={out}",
        "--train-max-steps=100000",
        "--train-checkpoint-interval=100000",
        *FLAGS,
        "--model-vocab-size=320",  # room for the 300-id tokenizer sampling uses
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and len(read_metrics(metrics) if metrics.exists() else []) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert b"interrupted at step" in stdout
    stopped = load_checkpoint(out)["step"]
    assert stopped >= 2

    assert main(["train", str(tmp_path / "run"), f"--tokens={tokens}", f"--out={out}",
                 f"--train-max-steps={stopped + 2}", "--resume", *FLAGS,
                 "--model-vocab-size=320"]) == 0  # fmt: skip
    assert load_checkpoint(out)["step"] == stopped + 2
    steps = [r["step"] for r in read_metrics(metrics) if "loss" in r]
    assert steps == list(range(1, stopped + 3))

    export = tmp_path / "export"
    assert main(["export", str(out), str(export)]) == 0
    assert (export / "model.safetensors").exists() and (export / "tokenizer.json").exists()
    for source in (out, export):
        assert main(["sample", str(source), "--prompt", "plain", "--max-new-tokens", "5",
                     "--temperature", "0"]) == 0  # fmt: skip


def test_train_refuses_uncleared_shards_with_exit_1(tmp_path, capsys):
    tokens = token_dir(tmp_path / "tokens")
    flags = [f for f in FLAGS if f != "--allow-contaminated"]
    assert main(["train", str(tmp_path / "run"), f"--tokens={tokens}", *flags]) == 1
    assert "records no source text shards" in capsys.readouterr().err


def test_sample_refuses_a_damaged_checkpoint(tmp_path, capsys):
    bad = tmp_path / "ckpt-0000001.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["sample", str(bad)]) == 1
    assert "not a readable checkpoint" in capsys.readouterr().err

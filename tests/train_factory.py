"""Small token directories and job configs for the trainer's tests (real files, no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foundation.config import JobConfig, ModelConfig, TrainConfig
from foundation.shards import Manifest
from trainer.tokens import write_token_file

VOCAB = 256
EOT = 0


def token_dir(
    path: Path,
    n_train: int = 20_000,
    n_val: int = 4_000,
    seed: int = 0,
    files: int = 2,
    extra: dict | None = None,
) -> Path:
    """A token directory of learnable text: repeated random 'words' of ids 1..255, each
    document preceded by EOT, split over ``files`` train files and one val file."""
    rng = np.random.default_rng(seed)
    words = [rng.integers(1, VOCAB, size=rng.integers(2, 6)) for _ in range(40)]

    def stream(n: int) -> np.ndarray:
        out: list[int] = []
        while len(out) < n:
            out.append(EOT)
            for _ in range(int(rng.integers(5, 30))):
                out.extend(words[int(rng.integers(len(words)))].tolist())
        return np.asarray(out[:n])

    path.mkdir(parents=True, exist_ok=True)
    entries = []
    train = stream(n_train)
    for i, part in enumerate(np.array_split(train, files)):
        entries.append(write_token_file(str(path / f"train-{i:05d}.bin"), part, VOCAB, EOT))
    entries.append(write_token_file(str(path / "val-00000.bin"), stream(n_val), VOCAB, EOT))
    Manifest(
        kind="tokens",
        format="bin",
        files=entries,
        extra={"vocab_size": VOCAB, "eot_id": EOT, "tokenizer": "tokenizer.json", **(extra or {})},
    ).save(str(path))
    return path


def job(**train: object) -> JobConfig:
    """A tiny model (2 layers, 32 wide, context 32) on CPU, contamination gate allowed."""
    settings = {
        "batch_size": 4,
        "max_steps": 6,
        "warmup_steps": 2,
        "lr": 3e-3,
        "min_lr": 3e-4,
        "eval_interval": 3,
        "eval_steps": 2,
        "checkpoint_interval": 3,
        "device": "cpu",
        "allow_contaminated": True,
        **train,
    }
    return JobConfig(
        model=ModelConfig(name="tiny", block_size=32, vocab_size=VOCAB),
        train=TrainConfig(**settings),
    )


def random_export(directory: Path, texts: list[str], cfg=None):
    """(model, HF export dir, tokenizer): a seeded small GPT with its biases and LayerNorm
    gains randomised too (so a transposed or misnamed one shows), exported with a BPE trained
    on ``texts``."""
    import torch

    from trainer.hf import export_hf
    from trainer.model import GPT, GPTConfig
    from trainer.tokenizer import train_tokenizer

    cfg = cfg or GPTConfig(block_size=32, vocab_size=320, n_layer=2, n_head=4, n_embd=64)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.normal_(0, 0.1 if name.endswith("bias") else 1.0)
    tok = train_tokenizer(texts, vocab_size=300, min_frequency=1)
    tok.save(str(directory / "tokenizer.json"))
    return model, export_hf(model, directory / "export", directory / "tokenizer.json"), tok

"""Text from a trained model: load a checkpoint or a Hugging Face export, generate with the KV
cache, decode. Used by ``webtext sample`` and at the end of the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainer.checkpoint import load_checkpoint, tokenizer_path
from trainer.hf import import_hf
from trainer.model import GPT, GPTConfig


def load_model(path: str | Path, device: str = "cpu") -> tuple[GPT, str | None]:
    """The model in a checkpoint (file or directory) or an export directory, in eval mode,
    and the tokenizer path that goes with it (None when none is recorded; it may be missing).

    A checkpoint's recorded tokenizer is found relative to the checkpoint, so this works from
    any working directory and after the run has moved."""
    p = Path(path)
    if p.is_dir() and (p / "config.json").exists():
        model = import_hf(p)
        tok = p / "tokenizer.json"
        tokenizer = str(tok) if tok.exists() else None
    else:
        ckpt = load_checkpoint(p, map_location="cpu")
        model = GPT(GPTConfig.from_dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        tokenizer = tokenizer_path(p, ckpt.get("tokenizer"))
    return model.to(device).eval(), tokenizer


def sample(
    model: GPT,
    tokenizer: Any,
    prompt: str,
    max_new_tokens: int = 100,
    temperature: float = 0.8,
    top_k: int | None = 200,
    seed: int = 0,
    num_samples: int = 1,
) -> list[str]:
    """``num_samples`` continuations of ``prompt`` (an empty prompt starts a new document)."""
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} ids, the model only "
            f"{model.config.vocab_size}: not the tokenizer this model was trained with"
        )
    device = model.transformer.wte.weight.device
    ids = tokenizer.encode(prompt) if prompt else [tokenizer.eot_id]
    ids = ids[-model.config.block_size :]
    idx = torch.tensor([ids] * num_samples, dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(idx, max_new_tokens, temperature, top_k, generator=generator)
    return [tokenizer.decode(row[len(ids) :].tolist()) for row in out]

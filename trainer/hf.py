"""Export to and import from the Hugging Face ``GPT2LMHeadModel`` layout.

An export directory holds ``config.json`` (a ``GPT2Config``), ``model.safetensors`` and the
tokenizer (``tokenizer.json``, ``tokenizer_config.json``, and GPT-2's ``vocab.json`` +
``merges.txt`` when the tokenizer has that shape), so ``GPT2LMHeadModel.from_pretrained(DIR)``
and ``AutoTokenizer.from_pretrained(DIR)`` load it as they are.

Our parameter names are Hugging Face's; the one difference is that GPT-2's attention and MLP
matrices are ``Conv1D`` modules storing (in, out) where ``nn.Linear`` stores (out, in), so those
four matrices per block are transposed. ``lm_head.weight`` is not written: it is tied to
``transformer.wte.weight`` (safetensors refuses shared tensors, and transformers re-ties it).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from foundation.errors import WebtextError
from trainer.model import GPT, GPTConfig

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_SKIP = ("lm_head.weight", ".attn.bias", ".attn.masked_bias")  # tied, or old mask buffers


class ExportError(WebtextError, ValueError):
    """An export directory is missing a file or holds a model of another shape."""


def hf_config(cfg: GPTConfig, eot_id: int | None) -> dict[str, Any]:
    """``GPT2Config`` fields for ``cfg`` (GELU tanh is ``gelu_new`` there)."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size,
        "n_ctx": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": cfg.layer_norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "torch_dtype": "float32",
    }


def export_hf(model: GPT, out_dir: str | Path, tokenizer_path: str | Path | None = None) -> Path:
    """Write ``model`` (and the tokenizer, when given) as a Hugging Face GPT-2 directory.

    Raises ExportError, before writing anything, when ``tokenizer_path`` names no tokenizer:
    an export without one looks complete but transformers cannot load it.
    """
    from safetensors.torch import save_file

    tokenizer = None if tokenizer_path is None else _tokenizer_file(Path(tokenizer_path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        t = t.detach().to("cpu", torch.float32)
        tensors[name] = (t.t() if name.endswith(_CONV1D) else t).contiguous()
    tmp = out / f".{WEIGHTS}.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / WEIGHTS)

    eot_id = None
    if tokenizer is not None:
        eot_id = _export_tokenizer(tokenizer, out, model.config.block_size)
    text = json.dumps(hf_config(model.config, eot_id), indent=2) + "\n"
    (out / "config.json.tmp").write_text(text)
    (out / "config.json.tmp").replace(out / "config.json")
    return out


def _tokenizer_file(path: Path) -> Path:
    """``path``, or the tokenizer.json in the directory ``path``; ExportError when missing."""
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ExportError(
            f"{file}: tokenizer file is missing; the export needs it for transformers to load "
            "(pass --tokenizer)"
        )
    return file


def _export_tokenizer(path: Path, out: Path, block_size: int) -> int:
    from trainer.tokenizer import EOT, load_tokenizer

    tok = load_tokenizer(str(path))
    shutil.copyfile(path, out / "tokenizer.json")
    try:
        tok.save_gpt2_files(str(out))
    except (ValueError, KeyError) as e:  # not GPT-2-shaped: tokenizer.json alone still loads
        log.info("%s: no vocab.json/merges.txt written (%s)", path, e)
    settings = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "model_max_length": block_size,
        "add_prefix_space": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    return tok.eot_id


def import_hf(directory: str | Path) -> GPT:
    """Load a ``GPT2LMHeadModel`` directory (ours or another GPT-2's) into our model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(directory)
    try:
        spec = json.loads((d / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{d / 'config.json'}: not a readable GPT-2 config ({e})") from e
    if spec.get("model_type") != "gpt2":
        raise ExportError(f"{d / 'config.json'}: model_type {spec.get('model_type')!r}, not gpt2")
    if spec.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ExportError(
            f"{d / 'config.json'}: activation {spec['activation_function']!r}; "
            "this GPT-2 uses the tanh GELU"
        )
    if spec.get("n_inner") not in (None, 4 * spec["n_embd"]):
        raise ExportError(f"{d / 'config.json'}: n_inner={spec['n_inner']} is not 4 x n_embd")
    cfg = GPTConfig(
        block_size=spec["n_positions"],
        vocab_size=spec["vocab_size"],
        n_layer=spec["n_layer"],
        n_head=spec["n_head"],
        n_embd=spec["n_embd"],
        layer_norm_eps=spec.get("layer_norm_epsilon", 1e-5),
    )
    try:
        tensors = load_file(str(d / WEIGHTS))
    except (OSError, SafetensorError) as e:
        raise ExportError(f"{d / WEIGHTS}: not readable safetensors ({e})") from e
    state = {}
    for name, t in tensors.items():
        if name.endswith(_SKIP):
            continue
        key = name if name.startswith("transformer.") else f"transformer.{name}"
        state[key] = t.t() if key.endswith(_CONV1D) else t
    model = GPT(cfg)
    state["lm_head.weight"] = state["transformer.wte.weight"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExportError(f"{d}: weights do not fit a GPT-2 of {cfg}: {e}") from e
    return model

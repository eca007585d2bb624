"""Training checkpoints: written so a kill never leaves a half file that looks whole, loaded with
``weights_only=True`` so a checkpoint from elsewhere cannot run code.

A checkpoint directory (``RUN/train/``) holds ``ckpt-0000100.pt`` files and ``latest.json``,
``{"file": ..., "step": ..., "sha256": ...}``. Saving writes the ``.pt`` under a temporary name,
fsyncs and ``os.replace``s it, then replaces ``latest.json`` the same way: the pointer is the
commit, so a crash at any moment leaves ``latest.json`` naming a complete file. Older files
beyond ``keep`` are removed afterwards. Loading checks the sha256 the pointer recorded, so a
truncated or corrupted file is refused with :class:`CheckpointError` instead of half-loading.

A checkpoint is a dict of plain types and tensors: ``model`` (state dict), ``optimizer``,
``step``, ``schedule`` (the lr at that step and the schedule settings), ``data`` (batch cursor),
``rng`` (python/numpy/torch/cuda states), ``model_config``, ``config`` (the job config),
``gate`` (the contamination gate result it trained under), ``tokens_dir`` and ``tokenizer``.

Paths in a checkpoint are relative to its directory, so a run can be moved or copied: training
copies the token shards' tokenizer in as ``tokenizer.json`` and records that name
(:func:`copy_tokenizer`, :func:`recorded_tokenizer`); :func:`tokenizer_path` finds it again, and
the cwd-relative or absolute paths older checkpoints recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foundation import storage
from foundation.errors import WebtextError
from foundation.layout import resolve_recorded
from foundation.shards import MANIFEST, Manifest

log = logging.getLogger(__name__)

FORMAT = "webtext-checkpoint"
VERSION = 1
POINTER = "latest.json"
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
REQUIRED = ("model", "model_config", "step")
TOKENIZER = "tokenizer.json"


class CheckpointError(WebtextError, RuntimeError):
    """A checkpoint is missing, truncated, corrupt or not a webtext checkpoint."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _replace_durably(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(directory: str | Path, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` as ``ckpt-STEP.pt`` and point ``latest.json`` at it; returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    step = int(state["step"])
    path = directory / f"ckpt-{step:07d}.pt"
    payload = {"format": FORMAT, "version": VERSION, **state}
    tmp = directory / f".{path.name}.tmp-{os.getpid()}"
    try:
        torch.save(payload, tmp)
        _replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    pointer = {"file": path.name, "step": step, "sha256": _sha256(path)}
    tmp = directory / f".{POINTER}.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(pointer, indent=2) + "\n")
        _replace_durably(tmp, directory / POINTER)
    finally:
        tmp.unlink(missing_ok=True)
    old = sorted(p for p in directory.iterdir() if _NAME.match(p.name) and p != path)
    for p in old[: max(0, len(old) - (keep - 1))]:
        p.unlink(missing_ok=True)
    return path


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The file ``latest.json`` names, or None when the directory has no checkpoint yet."""
    data = _pointer(directory)
    return None if data is None else Path(directory) / data["file"]


def latest_step(directory: str | Path) -> int | None:
    """The step of the latest checkpoint (from ``latest.json``), or None when there is none."""
    data = _pointer(directory)
    return None if data is None else int(data.get("step", 0))


def _pointer(directory: str | Path) -> dict[str, Any] | None:
    pointer = Path(directory) / POINTER
    return _read_pointer(pointer) if pointer.exists() else None


def _read_pointer(pointer: Path) -> dict[str, Any]:
    try:
        data = json.loads(pointer.read_text())
        if not isinstance(data, dict) or not _NAME.match(str(data["file"])):
            raise ValueError(f"unexpected content {data!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{pointer}: not a readable checkpoint pointer ({e})") from e
    return data


def _other(directory: Path) -> str:
    """What a directory without a checkpoint holds instead, when it is another stage's output."""
    if not (directory / MANIFEST).exists():
        return ""
    return f"; it holds shards ({MANIFEST}), not checkpoints, which `webtext train` writes"


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint file, or the latest one of a checkpoint directory.

    The file's sha256 is checked when ``latest.json`` beside it names it. Raises
    CheckpointError naming the file for a missing, truncated, corrupt or foreign file.
    """
    path = Path(path)
    expected = None
    if path.is_dir():
        pointer = path / POINTER
        if not pointer.exists():
            raise CheckpointError(f"{path}: no checkpoint ({POINTER} is missing){_other(path)}")
        data = _read_pointer(pointer)
        path, expected = path / data["file"], data.get("sha256")
    elif (path.parent / POINTER).exists():
        data = _read_pointer(path.parent / POINTER)
        if data["file"] == path.name:
            expected = data.get("sha256")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file is missing")
    if expected is not None and _sha256(path) != expected:
        raise CheckpointError(
            f"{path}: sha256 differs from the one recorded when it was written "
            f"({path.parent / POINTER}): the file is truncated or corrupt"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError...
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, corrupt or not saved by webtext): {e}"
        ) from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a webtext checkpoint (no format={FORMAT!r} marker)")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state.get('version')!r}; this webtext reads {VERSION}"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return state


def copy_tokenizer(tokens_dir: str, directory: str | Path) -> Path | None:
    """Copy the tokenizer of ``tokens_dir`` into the checkpoint directory as ``tokenizer.json``.

    The checkpoints then carry their tokenizer wherever the directory goes; a path into the
    token directory breaks when the run moves. Returns the copy, or None (with a warning) when
    the token directory has no tokenizer.
    """
    name = Manifest.load(tokens_dir).extra.get("tokenizer", TOKENIZER)
    source = storage.join(tokens_dir, name)
    if not storage.exists(source):
        log.warning("%s is missing: checkpoints record no tokenizer; pass --tokenizer", source)
        return None
    target = Path(directory) / TOKENIZER
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{TOKENIZER}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(storage.read_bytes(source))
        _replace_durably(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def recorded_tokenizer(directory: str | Path) -> str | None:
    """What a checkpoint in ``directory`` records as its tokenizer: the copy's name, if any."""
    return TOKENIZER if (Path(directory) / TOKENIZER).is_file() else None


def tokenizer_path(checkpoint: str | Path, recorded: str | None) -> str | None:
    """The tokenizer file a checkpoint (file or directory) records, found from any working
    directory; None when it records none. The path may not exist: callers name it."""
    if recorded is None:
        return None
    path = Path(checkpoint)
    return resolve_recorded(recorded, str(path if path.is_dir() else path.parent))


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as weights_only-loadable values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where CUDA is present).

    The states may arrive on a GPU (a checkpoint loaded with ``map_location="cuda"``); every
    setter wants host tensors."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` wants tuples; a round trip through some loaders gives lists."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuple(v) for v in value)
    return value

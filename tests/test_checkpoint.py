"""Checkpoints: atomic commit through latest.json, weights_only loads, damaged files refused."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from trainer.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _state(step: int) -> dict:
    torch.manual_seed(step)
    return {
        "model": {"w": torch.randn(64, 64), "b": torch.zeros(64)},
        "model_config": {"n_layer": 2},
        "step": step,
        "data": {"cursor": step * 8},
        "rng": [rng_state()],
        "gate": {"ok": True, "reason": "fine"},
    }


def test_save_load_round_trip_and_pointer(tmp_path):
    path = save_checkpoint(tmp_path, _state(3))
    assert path.name == "ckpt-0000003.pt"
    pointer = json.loads((tmp_path / "latest.json").read_text())
    assert pointer["file"] == path.name and pointer["step"] == 3
    loaded = load_checkpoint(tmp_path)
    assert torch.equal(loaded["model"]["w"], _state(3)["model"]["w"])
    assert loaded["data"] == {"cursor": 24} and loaded["gate"]["ok"] is True
    assert load_checkpoint(path)["step"] == 3
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_keeps_the_newest_files_only(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, _state(step), keep=2)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.pt")) == [
        "ckpt-0000003.pt",
        "ckpt-0000004.pt",
    ]
    assert latest_checkpoint(tmp_path).name == "ckpt-0000004.pt"


@pytest.mark.parametrize("how", ["truncate", "flip", "empty"])
def test_damaged_checkpoint_is_refused_naming_it(tmp_path, how):
    path = save_checkpoint(tmp_path, _state(5))
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ckpt-0000005\.pt.*(truncated or corrupt)"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"ckpt-0000005\.pt"):
        load_checkpoint(path)


def test_truncated_file_without_pointer_is_refused(tmp_path):
    path = save_checkpoint(tmp_path, _state(5))
    (tmp_path / "latest.json").unlink()
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_foreign_and_unsafe_files_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"step": 1}, plain)
    with pytest.raises(CheckpointError, match="not a webtext checkpoint"):
        load_checkpoint(plain)

    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "webtext-checkpoint", "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(evil)  # weights_only=True refuses arbitrary objects
    with pytest.raises(CheckpointError, match=r"latest\.json is missing"):
        load_checkpoint(tmp_path)


def test_crash_before_the_pointer_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, _state(1))
    # A half-written newer file (as a kill during torch.save leaves under its temp name, or a
    # copy gone wrong) is never what latest.json names.
    (tmp_path / "ckpt-0000002.pt").write_bytes(b"PK\x03\x04 half a zip")
    assert load_checkpoint(tmp_path)["step"] == 1


def test_rng_state_round_trip():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a

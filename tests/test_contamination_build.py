"""Building the filter in parts: the same filter bytes and report as one part, every way of
reading training text, and a killed build rerun to the same result."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from contamination.api import run_check
from contamination.build import MERGE_RUNS
from contamination.parts import plan_parts
from contamination.sources import ContaminationInputError, ReadOptions, train_side
from foundation.config import ContaminationConfig

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["the", "of", "and", "a", "to", "in", "is", "was", "Café", "ÉTÉ", "Straße", "ΟΔΟΣ",
         "naïve", "x1", "2019", "don't", "it's", "—", "snake_case", "kebab-case", "“quoted”",
         "word"]  # fmt: skip
SEPARATORS = [" "] * 12 + ["  ", "\t", ", ", ". ", "\n", "\r\n", "\n\n", "\n\n\n", " \n \n"]


def synthetic_text(words: int, seed: int) -> str:
    """Words, punctuation, non-ASCII letters, CRLF, blank lines and runs of newlines."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, len(WORDS), words)
    s = rng.integers(0, len(SEPARATORS), words)
    return "".join(WORDS[i] + SEPARATORS[j] for i, j in zip(w, s, strict=True))


def check_files(out: Path) -> tuple[bytes, dict]:
    report = json.loads((out / "report.json").read_text())
    report.pop("created")
    return (out / "bloom.bin").read_bytes(), report


def run(train: Path, test: Path, out: Path, cfg: ContaminationConfig) -> tuple[bytes, dict]:
    run_check(str(train), {"t": str(test)}, str(out), cfg)
    assert not any(p.name.startswith(".") for p in out.iterdir())  # scratch cleaned up
    return check_files(out)


@pytest.mark.parametrize(
    ("suffix", "text_docs"),
    [(".txt", "line"), (".txt", "paragraph"), (".txt", "file"), (".jsonl", "line")],
)
def test_parts_give_the_same_filter_and_report_as_one_part(
    tmp_path: Path, suffix: str, text_docs: str
) -> None:
    text = synthetic_text(12_000, seed=1)
    train = tmp_path / f"train{suffix}"
    if suffix == ".jsonl":
        lines = [line for line in text.splitlines() if line.strip()]
        train.write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))
    else:
        train.write_text(text)
    test = tmp_path / "test.txt"
    test.write_text(text[5000:9000] + synthetic_text(2000, seed=2))
    cfg = ContaminationConfig(workers=1, n=5, text_docs=text_docs)  # type: ignore[arg-type]
    small = dataclasses.replace(cfg, chunk_mb=5000 / 2**20)
    parts = plan_parts(train_side([str(train)], ReadOptions(text_docs=text_docs)).sources, 5000)
    assert len(parts) > 10
    assert parts[0].start == 0 and parts[-1].end == train.stat().st_size
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    whole = run(train, test, tmp_path / "whole", cfg)
    cut = run(train, test, tmp_path / "cut", small)
    assert cut == whole
    assert whole[1]["test_sets"]["t"]["hits"] > 0


def test_more_parts_than_a_merge_takes_give_the_same_filter(tmp_path: Path) -> None:
    """Past MERGE_RUNS parts, the ranges' hashes are sorted rather than merged: same bytes."""
    text = synthetic_text(16_000, seed=4)
    (tmp_path / "train.txt").write_text(text)
    (tmp_path / "test.txt").write_text(text[:3000] + synthetic_text(2000, seed=5))
    cfg = ContaminationConfig(workers=1, n=5, text_docs="line")
    chunk = len(text.encode()) // (2 * MERGE_RUNS)
    parts = plan_parts(train_side([str(tmp_path / "train.txt")], ReadOptions("line")).sources,
                       chunk)  # fmt: skip
    assert len(parts) > MERGE_RUNS
    whole = run(tmp_path / "train.txt", tmp_path / "test.txt", tmp_path / "whole", cfg)
    small = dataclasses.replace(cfg, chunk_mb=chunk / 2**20)
    cut = run(tmp_path / "train.txt", tmp_path / "test.txt", tmp_path / "cut", small)
    assert cut == whole
    assert whole[1]["test_sets"]["t"]["hits"] > 0


def test_two_workers_share_one_file(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(synthetic_text(20_000, seed=3))
    (tmp_path / "test.txt").write_text(synthetic_text(3000, seed=3))
    cfg = ContaminationConfig(workers=1, text_docs="line", chunk_mb=20_000 / 2**20)
    one = run(tmp_path / "train.txt", tmp_path / "test.txt", tmp_path / "one", cfg)
    two = run(
        tmp_path / "train.txt",
        tmp_path / "test.txt",
        tmp_path / "two",
        dataclasses.replace(cfg, workers=2),
    )
    assert two == one


def test_empty_and_bad_training_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "test.txt").write_text("a b c d e f g h i j")
    (tmp_path / "blank.txt").write_text("\n \n" * 5000)
    cfg = ContaminationConfig(workers=1, text_docs="line", chunk_mb=1000 / 2**20)
    with pytest.raises(ContaminationInputError, match=r"blank\.txt: empty file, no documents"):
        run_check(str(tmp_path / "blank.txt"), {"t": str(tmp_path / "test.txt")},
                  str(tmp_path / "o1"), cfg)  # fmt: skip
    lines = [json.dumps({"text": f"doc {i} words here"}) for i in range(400)]
    lines[300] = '{"body": "no text field"}'
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ContaminationInputError, match=r"bad\.jsonl:301: no field 'text'"):
        run_check(str(tmp_path / "bad.jsonl"), {"t": str(tmp_path / "test.txt")},
                  str(tmp_path / "o2"), cfg)  # fmt: skip


BUILD = """
import sys
from contamination.api import run_check
from contamination.build import MERGE_RUNS
from foundation.config import ContaminationConfig
cfg = ContaminationConfig(workers=1, text_docs="line", chunk_mb=float(sys.argv[3]) / 2**20)
run_check(sys.argv[1], {"t": sys.argv[2]}, sys.argv[4], cfg)
"""


def kill_when(argv: list[str], ready) -> bool:
    """Run ``argv``; SIGKILL it as soon as ``ready()``. True if it was killed mid-build."""
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        while proc.poll() is None:
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("stage", ["part", "fill"])
def test_killed_build_reruns_to_the_same_filter(tmp_path: Path, stage: str) -> None:
    """Killed while hashing parts or while filling ranges, then rerun: the same bytes and
    counts as a build that was never interrupted (nothing counted twice, no bit lost)."""
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text(synthetic_text(150_000, seed=4))
    test.write_text(synthetic_text(3000, seed=4))
    chunk = 20_000
    cfg = ContaminationConfig(workers=1, text_docs="line", chunk_mb=chunk / 2**20)
    reference = run(train, test, tmp_path / "ref", cfg)
    out = tmp_path / "out"
    work = out / ".bloom.bin.work"

    def ready() -> bool:
        if stage == "fill":  # the filter file exists, bits are being set
            return (out / ".bloom.bin.partial").exists()
        return len(list(work.glob("part-*.json"))) >= 3

    argv = [sys.executable, "-c", BUILD, str(train), str(test), str(chunk), str(out)]
    assert kill_when(argv, ready), "the build finished before it could be killed"
    assert not (out / "bloom.bin").exists()
    (work / "part-000099.npy.tmp").write_bytes(b"half a file")  # a write cut short
    assert run(train, test, out, cfg) == reference

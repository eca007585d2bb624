"""A finished run keeps working after it is moved: trained from one working directory with
cwd-relative paths, moved, then evaluated, sampled, exported and resumed from another.

Paths recorded inside a run (the checkpoint's tokenizer, the token manifest's text shards, the
gate's report) are relative to where they are recorded; older absolute or cwd-relative records
still resolve while their files exist.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from foundation.layout import record_path, resolve_recorded
from foundation.shards import Manifest
from tests.train_factory import token_dir
from trainer.checkpoint import load_checkpoint, tokenizer_path
from trainer.hf import ExportError, export_hf
from trainer.sample import load_model
from trainer.tokenizer import train_tokenizer
from webtext.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "plain words for a tiny vocabulary, said the model to the moved run. " * 40
FLAGS = [
    "--model-name=tiny",
    "--model-block-size=32",
    "--model-vocab-size=320",  # room for the 300-id tokenizer
    "--train-batch-size=4",
    "--train-warmup-steps=2",
    "--train-eval-interval=3",
    "--train-eval-steps=2",
    "--train-device=cpu",
    "--no-progress",
]


def _run_with_cleared_shards(run: Path) -> None:
    """RUN/shards with a passing contamination report, RUN/tokens recording them (as
    tokenize does) and the tokenizer: what the gate needs to let training start."""
    shards = run / "shards"
    Manifest(kind="text", format="parquet").save(str(shards))
    report = {
        "manifest_checksum": Manifest.load(str(shards)).checksum,
        "test_sets": {"wikitext": {"overlap_pct": 0.1}},
    }
    (run / "contamination").mkdir(parents=True)
    (run / "contamination" / "report.json").write_text(json.dumps(report))
    tokens = token_dir(
        run / "tokens", extra={"source": record_path(str(shards), str(run / "tokens"))}
    )
    train_tokenizer([TEXT], vocab_size=300).save(str(tokens / "tokenizer.json"))


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> Path:
    """A run trained for 3 steps as ``runs/demo`` from its parent, then moved elsewhere."""
    base = tmp_path_factory.mktemp("movable")
    (base / "first").mkdir()
    cwd = os.getcwd()
    os.chdir(base / "first")
    try:
        _run_with_cleared_shards(Path("runs/demo"))
        assert main(["train", "runs/demo", "--train-max-steps=3", *FLAGS]) == 0
    finally:
        os.chdir(cwd)
    target = base / "elsewhere" / "demo"
    target.parent.mkdir()
    shutil.move(str(base / "first" / "runs" / "demo"), target)
    shutil.rmtree(base / "first")
    return target


@pytest.fixture
def unrelated_cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_checkpoint_records_paths_relative_to_itself(moved):
    ckpt = load_checkpoint(moved / "train")
    assert ckpt["tokenizer"] == "tokenizer.json"
    assert (moved / "train" / "tokenizer.json").is_file()
    assert ckpt["tokens_dir"] == "../tokens"
    assert ckpt["gate"]["ok"] and ckpt["gate"]["report_path"] == "../contamination/report.json"
    assert Manifest.load(str(moved / "tokens")).extra["source"] == "../shards"


def test_moved_run_evaluates_samples_and_exports_from_elsewhere(moved, unrelated_cwd, capsys):
    test_set = unrelated_cwd / "test.txt"
    test_set.write_text(TEXT[:400] + "\n")
    report = unrelated_cwd / "eval"
    model = str(moved / "train")
    assert main(["eval", "--model", model, "--lm", str(test_set), "--out", str(report),
                 "--no-progress"]) == 0  # fmt: skip
    assert (report / "eval.json").is_file()
    capsys.readouterr()
    assert main(["sample", model, "--prompt", "plain", "--max-new-tokens", "5",
                 "--temperature", "0"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("plain")
    export = unrelated_cwd / "export"
    assert main(["export", model, str(export)]) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (export / name).is_file(), name
    assert json.loads((export / "config.json").read_text())["eos_token_id"] is not None


def test_moved_run_resumes_through_the_gate(moved, unrelated_cwd, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(moved, run)
    assert main(["train", str(run), "--resume", "--train-max-steps=4", *FLAGS]) == 0
    assert load_checkpoint(run / "train")["step"] == 4


def test_export_without_a_tokenizer_fails_naming_the_file(moved, unrelated_cwd):
    model, _ = load_model(moved / "train")
    missing = unrelated_cwd / "gone" / "tokenizer.json"
    with pytest.raises(ExportError, match=f"{missing}: tokenizer file is missing"):
        export_hf(model, unrelated_cwd / "export", missing)
    assert not (unrelated_cwd / "export").exists()


def test_export_command_refuses_a_checkpoint_whose_tokenizer_is_gone(moved, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(moved / "train", run)
    (run / "tokenizer.json").unlink()
    assert main(["export", str(run), str(tmp_path / "export")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("webtext export:") and "tokenizer" in err and "Traceback" not in err
    assert not (tmp_path / "export" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("path", "start", "expected"),
    [
        ("run/shards", "run/tokens", "../shards"),
        ("run/tokens/tokenizer.json", "run/train", "../tokens/tokenizer.json"),
        ("/data/shards", "run/tokens", "/data/shards"),  # outside the run: absolute
        ("s3://b/run/shards", "s3://b/run/tokens", "s3://b/run/shards"),
    ],
)
def test_record_path(path, start, expected, unrelated_cwd):
    assert record_path(path, start) == expected


def test_older_cwd_relative_and_absolute_records_still_resolve(unrelated_cwd):
    tok = unrelated_cwd / "runs" / "demo" / "tokens" / "tokenizer.json"
    tok.parent.mkdir(parents=True)
    tok.write_text("{}")
    train = unrelated_cwd / "runs" / "demo" / "train"
    train.mkdir()
    old = "runs/demo/tokens/tokenizer.json"  # what checkpoints recorded before
    assert tokenizer_path(train / "ckpt-0000003.pt", old) == old
    assert tokenizer_path(train, str(tok)) == str(tok)
    assert resolve_recorded("../tokens/tokenizer.json", str(train)) == str(tok)
    assert tokenizer_path(train, "tokenizer.json") == str(train / "tokenizer.json")  # missing
    assert tokenizer_path(train, None) is None


def test_contamination_report_records_paths_relative_to_itself(tmp_path, unrelated_cwd):
    from contamination.api import run_check
    from foundation.config import ContaminationConfig

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.txt").write_text(TEXT)
    (tmp_path / "test.txt").write_text(TEXT[:300])
    out = tmp_path / "run" / "contamination"
    cfg = ContaminationConfig(workers=1, text_docs="paragraph")
    run_check("run/train.txt", {"ts": "test.txt"}, str(out), cfg)
    data = json.loads((out / "report.json").read_text())
    assert data["filter"]["path"] == "bloom.bin"
    assert data["filter"]["train_paths"] == ["../train.txt"]
    assert data["test_sets"]["ts"]["path"] == str(tmp_path / "test.txt")  # outside the run

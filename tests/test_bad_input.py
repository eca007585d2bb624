"""Every command against every kind of bad input ends in one line, never a traceback.

Each case runs ``webtext.cli.main`` in-process on a path that is missing, an empty folder, a
truncated shard or checkpoint, another stage's output or a bad TOML file, and asserts what a
user sees: a non-zero exit and exactly one line on stderr, ``webtext COMMAND: ...``, that names
the path. None of these inputs may start a Beam pipeline or a training step (the one that must
read a dump to know it is bad is marked slow).
"""

from __future__ import annotations

import re
import shutil
import zlib
from pathlib import Path

import pytest

from foundation.shards import Manifest
from tests.shard_factory import make_text_shards
from tests.train_factory import token_dir
from webtext.cli import main


def _truncate(path: Path) -> None:
    """Rewrite ``path`` with the first half of its bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _checkpoint(directory: Path) -> Path:
    """A real checkpoint of a tiny GPT (and its latest.json) in ``directory``; the file."""
    from trainer.checkpoint import save_checkpoint
    from trainer.model import GPT, GPTConfig

    cfg = GPTConfig(block_size=16, vocab_size=320, n_layer=1, n_head=2, n_embd=16)
    state = {"model": GPT(cfg).state_dict(), "model_config": cfg.to_dict(), "step": 1}
    return save_checkpoint(directory, state)


def _dump(path: Path, lines: int) -> Path:
    """A gzip NDJSON dump of ``lines`` submissions, cut off in its last line (slow case)."""
    rows = "".join(
        f'{{"id": "s{i}", "url": "https://example.org/{i}", "score": 5, "created_utc": 1}}\n'
        for i in range(lines)
    )
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    data = packer.compress(rows.encode()) + packer.flush()
    path.write_bytes(data[: len(data) - 20])
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Placeholder -> path of every bad (and the few good) inputs the cases use."""
    from trainer.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("bad_input")
    texts = [f"document {i} " + "some words of text " * 30 for i in range(12)]
    make_text_shards(root / "shards", texts, shard_docs=6)
    shutil.copytree(root / "shards", root / "truncated_shards")
    _truncate(root / "truncated_shards" / "part-00000.parquet")
    token_dir(root / "tokens", n_train=2000, n_val=500)
    shutil.copytree(root / "tokens", root / "truncated_tokens")
    _truncate(root / "truncated_tokens" / "train-00000.bin")
    ckpt = _checkpoint(root / "ckpt")
    shutil.copytree(root / "ckpt", root / "truncated_ckpt")
    _truncate(root / "truncated_ckpt" / ckpt.name)
    (root / "lone").mkdir()  # no latest.json: the load itself meets the truncated bytes
    shutil.copy(root / "truncated_ckpt" / ckpt.name, root / "lone" / ckpt.name)
    train_tokenizer(texts, vocab_size=300, min_frequency=1).save(str(root / "tokenizer.json"))
    (root / "bad.toml").write_text("[train]\nlr = = 3e-4\n")
    (root / "test.txt").write_text("some words of text " * 20)
    _dump(root / "RS_cut.gz", lines=3)
    job = f'[source]\ndumps = ["{root}/no/such/RS_2020-01.zst"]\n[output]\nrun_dir = "{root}/run"\n'
    (root / "job.toml").write_text(job)
    return {
        "shards": str(root / "shards"),
        "truncated_shards": str(root / "truncated_shards"),
        "truncated_shard": str(root / "truncated_shards" / "part-00000.parquet"),
        "tokens": str(root / "tokens"),
        "truncated_tokens": str(root / "truncated_tokens"),
        "truncated_token_file": str(root / "truncated_tokens" / "train-00000.bin"),
        "ckpt": str(root / "ckpt"),
        "truncated_ckpt": str(root / "truncated_ckpt"),
        "truncated_ckpt_file": str(root / "lone" / ckpt.name),
        "tokenizer": str(root / "tokenizer.json"),
        "bad_toml": str(root / "bad.toml"),
        "missing_toml": str(root / "no" / "such" / "job.toml"),
        "test": str(root / "test.txt"),
        "cut_dump": str(root / "RS_cut.gz"),
        "job": str(root / "job.toml"),
        "job_dumps": f"{root}/no/such/RS_2020-01.zst",
    }


def ph(name: str) -> str:
    """The placeholder of an input in a case's argv."""
    return f"{{{name}}}"


TOML = ("bad_toml", "missing_toml")
OUT = ["--out", "{out}", "--no-progress"]
EVAL = ["--lm", "{test}", "--tokenizer", "{tokenizer}", *OUT]
CHECK = ["contamination", "check", "--test", "t={test}", "--out", "{out}", "--train"]

# (argv with {placeholders}, the placeholder the message must name). {out}, {missing} and
# {empty} are new for each case: a failed command may leave a run directory behind.
CASES = [
    # ingest: dumps -> run directory
    (["ingest", "{missing}", "--run-dir", "{out}"], "missing"),
    (["ingest", "{empty}", "--run-dir", "{out}"], "empty"),
    (["ingest", "{shards}", "--run-dir", "{out}"], "shards"),
    (["ingest", "{tokens}", "--run-dir", "{out}"], "tokens"),
    (["ingest", "{cut_dump}", "--warc", "{missing}", "--run-dir", "{out}"], "missing"),
    (["ingest", "{cut_dump}", "--run-dir", "{test}"], "test"),
    *((["ingest", "{shards}", "--run-dir", "{out}", "--config", ph(t)], t) for t in TOML),
    pytest.param(
        ["ingest", "{cut_dump}", "--run-dir", "{out}"], "cut_dump", marks=pytest.mark.slow
    ),
    # dedup: text shards -> text shards
    (["dedup", "{missing}", "--out", "{out}"], "missing"),
    (["dedup", "{empty}", "--out", "{out}"], "empty"),
    (["dedup", "{truncated_shards}", "--out", "{out}"], "truncated_shard"),
    (["dedup", "{tokens}", "--out", "{out}"], "tokens"),
    (["dedup", "{ckpt}", "--out", "{out}"], "ckpt"),
    *((["dedup", "{shards}", "--out", "{out}", "--config", ph(t)], t) for t in TOML),
    # contamination check: training data and test sets -> report
    ([*CHECK, "{missing}"], "missing"),
    ([*CHECK, "{empty}"], "empty"),
    ([*CHECK, "{truncated_shards}"], "truncated_shard"),
    ([*CHECK, "{tokens}"], "tokens"),
    (["contamination", "check", "--train", "{shards}", "--test", "t={missing}"], "missing"),
    *(([*CHECK, "{shards}", "--config", ph(t)], t) for t in TOML),
    # tokenize: text shards -> token shards
    (["tokenize", "{missing}", "--out", "{out}"], "missing"),
    (["tokenize", "{empty}", "--out", "{out}"], "empty"),
    (["tokenize", "{truncated_shards}", "--out", "{out}"], "truncated_shard"),
    (["tokenize", "{tokens}", "--out", "{out}"], "tokens"),
    (["tokenize", "{ckpt}", "--out", "{out}"], "ckpt"),
    (["tokenize", "{shards}", "--out", "{out}", "--tokenizer", "{missing}"], "missing"),
    *((["tokenize", "{shards}", "--out", "{out}", "--config", ph(t)], t) for t in TOML),
    # train: token shards -> checkpoints
    (["train", "{missing}", "--allow-contaminated"], "missing"),
    (["train", "{empty}", "--allow-contaminated"], "empty"),
    (["train", "{test}", "--allow-contaminated"], "test"),
    (["train", "{out}", "--tokens", "{shards}", "--allow-contaminated"], "shards"),
    (["train", "{out}", "--tokens", "{ckpt}", "--allow-contaminated"], "ckpt"),
    (
        ["train", "{out}", "--tokens", "{truncated_tokens}", "--allow-contaminated"],
        "truncated_token_file",
    ),
    *((["train", "{out}", "--tokens", "{tokens}", "--config", ph(t)], t) for t in TOML),
    # sample and export: a checkpoint
    *(
        ([cmd, ph(bad), *rest], named)
        for cmd, rest in (("sample", []), ("export", ["{out}"]))
        for bad, named in (
            ("missing", "missing"),
            ("empty", "empty"),
            ("truncated_ckpt", "truncated_ckpt"),
            ("truncated_ckpt_file", "truncated_ckpt_file"),
            ("shards", "shards"),
            ("tokens", "tokens"),
        )
    ),
    # eval: a checkpoint and task files -> report
    (["eval", "--model", "{missing}", *EVAL], "missing"),
    (["eval", "--model", "{empty}", *EVAL], "empty"),
    (["eval", "--model", "{truncated_ckpt}", *EVAL], "truncated_ckpt"),
    (["eval", "--model", "{truncated_ckpt_file}", *EVAL], "truncated_ckpt_file"),
    (["eval", "--model", "{shards}", *EVAL], "shards"),
    (
        ["eval", "--model", "{ckpt}", "--tokenizer", "{tokenizer}", "--lm", "{missing}", *OUT],
        "missing",
    ),
    (["eval", "--model", "{ckpt}", "--tokenizer", "{tokenizer}", "--lm", "{empty}", *OUT], "empty"),
    (["eval", "--model", "{ckpt}", "--tokenizer", "{missing}", *EVAL[:2], *OUT], "missing"),
    (["eval", "--model", "{ckpt}", *EVAL, "--contamination", "{missing}"], "missing"),
    *((["eval", "--model", "{ckpt}", *EVAL, "--config", ph(t)], t) for t in TOML),
    # status: a run directory
    (["explain", "{missing}", "http://example.com/"], "missing"),
    (["explain", "{empty}", "http://example.com/"], "empty"),
    (["explain", "{shards}", "http://example.com/"], "shards"),
    (["status", "{missing}"], "missing"),
    (["status", "{truncated_shard}"], "truncated_shard"),
    # run: a job config
    *((["run", ph(t)], t) for t in TOML),
    (["run", "--config", "{bad_toml}"], "bad_toml"),
    (["run", "{empty}"], "empty"),
    (["run", "{job}"], "job_dumps"),
]


def _case_id(case) -> str:
    """``COMMAND[-FLAG]-INPUT``: the flag that takes the bad input, if it is not positional."""
    argv, named = case.values if hasattr(case, "values") else case
    at = next((i for i, a in enumerate(argv) if "{" + named in a), 0)
    flag = argv[at - 1].lstrip("-") if at and argv[at - 1].startswith("--") else ""
    return "-".join(filter(None, [argv[0], flag, named]))


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_one_line(argv, named, inputs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    paths = {
        **inputs,
        "out": str(tmp_path / "out"),
        "missing": str(tmp_path / "no" / "such" / "path"),
        "empty": str(tmp_path / "empty"),
    }
    code = main([a.format(**paths) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code != 0, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    command = argv[0] + (f"( {argv[1]})?" if argv[0] == "contamination" else "")
    assert re.match(rf"webtext {command}: ", lines[0]), lines[0]
    assert paths[named] in lines[0], lines[0]
    if named == "bad_toml":
        assert "line 2" in lines[0], lines[0]


def test_cases_cover_every_command_that_takes_a_path():
    """A new command with a path argument needs rows here (plan takes numbers; demo makes its
    own inputs)."""
    from webtext.cli import COMMANDS

    covered = {(c.values if hasattr(c, "values") else c)[0][0] for c in CASES}
    assert set(COMMANDS) - covered == {"plan", "demo"}


def test_the_fixtures_are_what_they_claim(inputs):
    """The good inputs beside the bad ones are real stage outputs (else a case proves nothing)."""
    assert Manifest.load(inputs["shards"], "text").rows == 12
    assert Manifest.load(inputs["tokens"], "tokens").kind == "tokens"
    assert (Path(inputs["ckpt"]) / "latest.json").exists()

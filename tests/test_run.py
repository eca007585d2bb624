"""``webtext run``: the whole job on the demo data, a failed stage, reruns that redo only what
changed, and ``webtext status`` on the result."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from foundation.config import with_overrides
from webtext.cli import main
from webtext.commands.demo import ARCHIVE_NAME, demo_archive, demo_config, recorded_archive
from webtext.run import RunError, run_job
from webtext.status import DONE, MISSING, format_status, run_status

SMALL = {
    "model.n_embd": 32,
    "model.n_layer": 2,
    "model.n_head": 2,
    "model.block_size": 32,
    "train.max_steps": 6,
    "train.warmup_steps": 2,
    "train.eval_interval": 3,
    "train.eval_steps": 2,
    "train.checkpoint_interval": 3,
    "tokenize.vocab_size": 512,
}


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The demo job, made small, whose first run fails at contamination (a missing test set);
    its web archive (pywb) serves while the module runs."""
    from webtext.archive_server import PywbMissing, pywb_executable

    try:
        pywb_executable("wayback")
    except PywbMissing as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("run")
    with demo_archive(str(root)) as archive:
        cfg = with_overrides(demo_config(str(root), archive=archive), SMALL)
        broken = with_overrides(
            cfg, {"contamination.test_sets": (f"lost={root}/no-such-file.txt",)}
        )
        with pytest.raises(RunError, match=r"contamination.*no-such-file\.txt"):
            run_job(broken, progress=False)
        yield cfg


def test_links_dead_in_the_warc_are_recovered_from_the_demo_archive(job):
    from foundation.shards import Manifest, read_shards

    run = Path(job.output.run_dir)
    truth = json.loads((run.parent / "input" / "truth.json").read_text())
    archived = truth["cases"]["archived"]
    counts = Manifest.load(str(run / "shards")).counts
    assert counts[f"fetched.{ARCHIVE_NAME}"] == len(archived) == 6
    docs = {d["url"]: d for d in read_shards(str(run / "shards")).to_pylist()}
    for url in archived:
        assert docs[url]["source"] == ARCHIVE_NAME and docs[url]["record"].endswith(url)
    assert sum(d["source"] == "warc" for d in docs.values()) == len(docs) - len(archived)
    assert counts["archive.no_capture"] == len(truth["cases"]["not_found"]) + len(
        truth["cases"]["missing_from_warc"]
    )
    assert f"{ARCHIVE_NAME} 6" in format_status(str(run), run_status(str(run)))
    assert recorded_archive(str(run.parent)) == job.archive.sources[0]


def test_a_failed_stage_keeps_what_finished_and_a_rerun_resumes_after_it(job):
    cfg = job
    run = Path(cfg.output.run_dir)
    state = json.loads((run / "run.json").read_text())["stages"]
    assert state["ingest"]["finished"] and state["contamination"]["finished"] is None
    shards_manifest = run / "shards" / "_manifest.json"
    before = _mtime(shards_manifest)

    result = run_job(cfg, progress=False)

    assert result.skipped == ["ingest"]
    assert result.ran == ["contamination", "tokenize", "train", "sample", "eval"]
    assert _mtime(shards_manifest) == before  # the shards were not rewritten
    assert (run / "contamination" / "report.html").exists()
    assert json.loads((run / "train" / "latest.json").read_text())["step"] == 6
    assert (run / "sample.txt").read_text().strip()
    tasks = json.loads((run / "eval" / "eval.json").read_text())["tasks"]
    overlap, clean = tasks["overlap"]["subsets"], tasks["clean"]["subsets"]
    # The demo's overlap set copies paragraphs of kept pages: those examples are flagged dirty.
    assert overlap["dirty"]["examples"] >= 1 and overlap["clean"]["examples"] >= 1
    assert clean["dirty"]["examples"] == 0 and clean["all"]["ppl_token"] > 1


def test_changing_training_settings_reruns_only_training(job):
    cfg = job
    run = Path(cfg.output.run_dir)
    tokens_manifest = run / "tokens" / "_manifest.json"
    before = _mtime(tokens_manifest)

    again = run_job(cfg, progress=False)
    assert again.ran == [] and again.skipped == [
        "ingest",
        "contamination",
        "tokenize",
        "train",
        "sample",
        "eval",
    ]

    changed = with_overrides(cfg, {"train.lr": 1e-3})
    result = run_job(changed, progress=False)
    assert result.ran == ["train", "sample", "eval"]
    assert _mtime(tokens_manifest) == before
    aside = [p for p in run.iterdir() if p.name.startswith("train.")]
    assert len(aside) == 1 and (aside[0] / "latest.json").exists()  # the old run is kept


def test_other_ingest_settings_are_refused_not_silently_refetched(job):
    cfg = job
    changed = with_overrides(cfg, {"quality.min_words": 50})
    with pytest.raises(RunError, match=r"quality\.min_words"):
        run_job(changed, progress=False)


def test_run_command_and_status(job, capsys, tmp_path):
    cfg = job
    run = cfg.output.run_dir
    config_json = os.path.join(run, "config", "train.json")  # the resolved config of the run
    assert main(["run", config_json, "--train-lr", "0.001", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Ran: nothing." in out and "contamination report" in out and "Sample:" in out

    stages = {s.name: s for s in run_status(run)}
    assert all(stages[n].state == DONE for n in ("urls", "shards", "tokens", "train", "sample"))
    assert "evaluation report" in out
    assert "documents" in stages["shards"].detail and "step 6" in stages["train"].detail
    assert "overlap" in stages["contamination"].detail
    assert stages["eval"].state == DONE and "clean" in stages["eval"].detail
    assert main(["status", run]) == 0
    table = capsys.readouterr().out
    assert "shards" in table and "done" in table

    fresh = run_status(str(tmp_path / "empty"))
    assert all(s.state == MISSING for s in fresh)

"""Zero-shot evaluation: windows, parity with transformers, a memorised text, flags, bad inputs."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from contamination.api import build_filter
from foundation.config import EvalConfig
from tests.train_factory import random_export
from trainer.checkpoint import save_checkpoint
from trainer.eval_flags import ContaminationSourceError, dirty_flags, load_filter
from trainer.eval_report import build_report, write_reports
from trainer.eval_tasks import (
    EvalInputError,
    read_cbt,
    read_lambada,
    read_lm,
)
from trainer.evaluate import (
    Request,
    cloze_ids,
    cloze_logprobs,
    lambada_requests,
    lm_requests,
    score,
    score_cloze,
    score_lambada,
    score_lm,
    summarise,
    windows,
)
from trainer.model import GPT, GPTConfig
from trainer.sample import load_model
from trainer.tokenizer import train_tokenizer
from webtext.cli import main

MEMO = (
    "The lighthouse keeper counted seventeen gulls on the northern rocks every morning, "
    "wrote the number in a green ledger, and then walked down to the harbour for bread. "
    "One winter the gulls did not come back, and the keeper kept writing zero until spring."
)
OTHER = (
    "Quantum chromodynamics describes how quarks bind through gluons inside protons, "
    "a theory whose calculations need enormous supercomputers and careful lattice methods."
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "block", "stride"), [(1, 8, 8), (7, 8, 8), (8, 8, 8), (9, 8, 8), (50, 8, 3), (50, 8, 1)]
)
def test_windows_score_every_target_once_with_enough_context(n, block, stride):
    ws = windows(n, block, stride)
    scored = [t for _, end, first in ws for t in range(first, end + 1)]
    assert scored == list(range(1, n + 1))  # each target once, in order
    for k, (start, end, first) in enumerate(ws):
        assert 0 < end - start <= block
        assert start < first  # the first target scored is predicted inside the window
        if k:
            assert first - 1 - start >= block - stride  # context of the first new target


def test_stride_equal_to_block_gives_non_overlapping_chunks():
    assert windows(20, 8, 8) == [(0, 8, 1), (8, 16, 9), (16, 20, 17)]
    reqs = lm_requests(list(range(1, 21)), 0, 8, 8)
    assert [list(r.ids) for r in reqs] == [
        list(range(0, 9)),
        list(range(8, 17)),
        list(range(16, 21)),
    ]
    assert [r.n for r in reqs] == [8, 8, 4]


def test_windows_reject_a_stride_outside_the_block():
    with pytest.raises(ValueError, match="stride=9"):
        windows(10, 8, 9)


# --- parity with transformers -----------------------------------------------------------------

CFG = GPTConfig(block_size=32, vocab_size=320, n_layer=2, n_head=4, n_embd=64)
CORPUS = [MEMO * 3, OTHER * 3, "Grüße aus Köln, naïve café. " * 10]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    _, out, tok = random_export(tmp_path_factory.mktemp("hf"), CORPUS, CFG)
    return out, tok


def _hf_window_nll(hf, requests):
    """Plain transformers loop: one request at a time, unscored labels -100, summed NLL."""
    total, greedy = [], []
    for r in requests:
        x = torch.tensor([r.ids[:-1]])
        labels = torch.full_like(x, -100)
        labels[0, -r.n :] = torch.tensor(r.ids[-r.n :])
        with torch.no_grad():
            logits = hf(x).logits[0]
        logp = torch.log_softmax(logits.float(), -1)
        y = torch.tensor(r.ids[1:])
        nll = -logp.gather(1, y[:, None])[-r.n :, 0]
        total.append(float(nll.sum()))
        greedy.append(bool((logits.argmax(-1)[-r.n :] == y[-r.n :]).all()))
    return total, greedy


@pytest.mark.parametrize("stride", [32, 11])
def test_perplexity_equals_transformers_on_the_same_weights(exported, tmp_path, stride):
    transformers = pytest.importorskip("transformers")
    out, tok = exported
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(out)).eval()
    model, tok_path = load_model(out)
    assert tok_path is not None
    path = tmp_path / "test.txt"
    path.write_text(MEMO + "\n\n" + OTHER + "\n\nGrüße aus Köln.\n")
    docs = read_lm(path)
    ours = score_lm(model, tok, docs, stride, batch_size=3)
    ids = tok.encode(docs[0].text)
    theirs, _ = _hf_window_nll(hf, lm_requests(ids, tok.eot_id, CFG.block_size, stride))
    n_tokens = sum(e.values["tokens"] for e in ours)
    assert n_tokens == len(ids)
    our_loss = sum(e.values["nll"] for e in ours) / n_tokens
    their_loss = sum(theirs) / len(ids)
    assert our_loss == pytest.approx(their_loss, rel=1e-4)
    assert [e.values["words"] for e in ours] == [len(MEMO.split()), len(OTHER.split()), 3]


def test_lambada_equals_transformers_on_the_same_weights(exported, tmp_path):
    transformers = pytest.importorskip("transformers")
    out, tok = exported
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(out)).eval()
    model, _ = load_model(out)
    path = _write_jsonl(tmp_path / "l.jsonl", [{"text": MEMO}, {"text": OTHER}, {"text": "a b"}])
    examples = read_lambada(path)
    ours = score_lambada(model, tok, examples, batch_size=2)
    nll, greedy = _hf_window_nll(hf, lambada_requests(tok, examples, CFG.block_size))
    for e, n, g in zip(ours, nll, greedy, strict=True):
        assert e.values["nll"] == pytest.approx(n, rel=1e-4)
        assert e.values["correct"] == float(g)


def test_batched_scores_equal_one_at_a_time(exported):
    out, _ = exported
    model, _ = load_model(out)
    rng = np.random.default_rng(0)
    reqs = [
        Request(rng.integers(0, CFG.vocab_size, size=int(k)).tolist(), int(min(k - 1, 5)))
        for k in rng.integers(2, 33, size=9)
    ]
    batched = score(model, reqs, batch_size=4)
    for r, b in zip(reqs, batched, strict=True):
        (one,) = score(model, [r], batch_size=1)
        np.testing.assert_allclose(b.nll, one.nll, rtol=1e-5, atol=1e-6)


def test_cloze_with_the_prefix_cache_equals_scoring_each_candidate_whole(exported, tmp_path):
    out, tok = exported
    model, _ = load_model(out)
    row = {
        "context": [MEMO[:80], MEMO[80:160]],
        "question": "One winter the XXXXX did not come back.",
        "candidates": ["gulls", "keeper", "bread"],
        "answer": "gulls",
    }
    (ex,) = read_cbt(_write_jsonl(tmp_path / "c.jsonl", [row]))
    assert ex.suffixes[0] == " gulls did not come back."
    prefix, suffixes = cloze_ids(tok, ex, CFG.block_size)
    cached = cloze_logprobs(model, prefix, suffixes)
    whole = score(model, [Request(prefix + s, len(s)) for s in suffixes])
    np.testing.assert_allclose(cached, [-w.nll.sum() for w in whole], rtol=1e-4)


# --- a model that memorised a text ------------------------------------------------------------


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    """A tiny model trained on MEMO alone (300 steps, a few seconds on one core)."""
    d = tmp_path_factory.mktemp("memo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the per-test one-thread fixture
    tok = train_tokenizer([MEMO, OTHER], vocab_size=400, min_frequency=1)
    tok.save(str(d / "tokenizer.json"))
    cfg = GPTConfig(block_size=64, vocab_size=448, n_layer=2, n_head=2, n_embd=64)
    torch.manual_seed(0)
    model = GPT(cfg)
    ids = torch.tensor([tok.eot_id, *tok.encode(MEMO)])
    starts = list(range(0, len(ids) - 1, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(300):
        s = starts[step % len(starts)]
        chunk = ids[s : s + cfg.block_size + 1]
        _, loss = model(chunk[None, :-1], chunk[None, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.set_num_threads(threads)
    ckpt = save_checkpoint(
        d / "train",
        {
            "model": model.state_dict(),
            "model_config": cfg.to_dict(),
            "step": 300,
            "tokenizer": str(d / "tokenizer.json"),
        },
    )
    (d / "train.txt").write_text(MEMO + "\n")
    return model, tok, ckpt, d


def test_memorised_text_scores_near_perfect_and_is_flagged_dirty(memorised, tmp_path):
    model, tok, _, d = memorised
    lm = tmp_path / "lm.txt"
    lm.write_text(MEMO + "\n\n" + OTHER + "\n")
    lam = _write_jsonl(tmp_path / "lambada.jsonl", [{"text": MEMO}, {"text": OTHER}])
    bloom, info = load_filter(d / "train.txt")
    assert info["built"] and info["n"] == 8
    report = build_report(
        model,
        tok,
        {"lm": ("lm", str(lm)), "lambada": ("lambada", str(lam))},
        EvalConfig(stride=32),
        bloom,
        info,
        progress=False,
    )
    lm_task = report["tasks"]["lm"]
    flags = [e["dirty"] for e in lm_task["examples"]]
    assert flags == [True, False]
    memo = lm_task["examples"][0]
    assert math.exp(memo["nll"] / memo["tokens"]) < 1.5  # near-perfect on what it memorised
    subsets = lm_task["subsets"]
    assert subsets["dirty"]["examples"] == 1 and subsets["clean"]["examples"] == 1
    assert subsets["dirty"]["ppl_token"] < 1.5 < subsets["clean"]["ppl_token"]
    assert subsets["all"]["tokens"] == subsets["clean"]["tokens"] + subsets["dirty"]["tokens"]
    assert lm_task["relative_difference_pct"]["ppl_token"] > 0  # clean is worse than all
    lam_task = report["tasks"]["lambada"]
    assert [e["correct"] for e in lam_task["examples"]] == [1.0, 0.0]
    assert [e["dirty"] for e in lam_task["examples"]] == [True, False]
    assert lam_task["subsets"]["dirty"]["accuracy"] == 1.0
    paths = write_reports(report, str(tmp_path / "out"))
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["tasks"]["lm"]
    assert "| ppl_token |" in (tmp_path / "out" / "eval.md").read_text()
    assert "<table>" in (tmp_path / "out" / "eval.html").read_text() and paths


def test_cli_end_to_end_on_a_checkpoint_with_a_saved_filter(memorised, tmp_path, capsys):
    _, _, ckpt, d = memorised
    run = tmp_path / "run"
    bloom = build_filter(str(d / "train.txt"))
    bloom.save(str(run / "contamination" / "bloom.bin"))
    lm = tmp_path / "lm.jsonl"
    _write_jsonl(lm, [{"text": MEMO}, {"text": OTHER}])
    cbt = _write_jsonl(
        tmp_path / "cbt.jsonl",
        [
            {
                "context": MEMO[:90],
                "question": "and then walked down to the XXXXX for bread.",
                "candidates": ["harbour", "rocks", "ledger"],
                "answer": "harbour",
            }
        ],
    )
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(ckpt.parent), "--lm", str(lm), "--cbt", str(cbt)]
    argv += ["--contamination", str(run), "--stride", "16", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["settings"]["stride"] == 16
    assert report["contamination"]["filter"].endswith("bloom.bin")
    assert [e["dirty"] for e in report["tasks"]["lm"]["examples"]] == [True, False]
    assert report["tasks"]["cbt"]["subsets"]["all"]["accuracy"] == 1.0
    assert "ppl_token" in capsys.readouterr().out
    # Asking for another n than the saved filter holds, with no shards to rebuild from.
    assert main([*argv[:-3], "--n", "5", "--out", str(out), "--no-progress"]) == 1
    assert "holds 8-grams" in capsys.readouterr().err


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "at least one of" in capsys.readouterr().err
    missing = ["eval", "--model", str(tmp_path / "nope"), "--lm", "x.txt", "--out", "o"]
    assert main(missing) == 1
    assert "nope" in capsys.readouterr().err


# --- inputs -----------------------------------------------------------------------------------


def test_plain_text_examples_are_paragraphs_covering_the_text(tmp_path):
    path = tmp_path / "wiki.txt"
    text = "\n = Title = \n \n First para @-@ here .\n \n\n Second , para .\n"
    path.write_text(text)
    (doc,) = read_lm(path, detokenize="wikitext")
    assert "First para-here." in doc.text and "Second, para." in doc.text
    assert doc.spans[0][0] == 0 and doc.spans[-1][1] == len(doc.text)
    assert all(a[1] == b[0] for a, b in zip(doc.spans, doc.spans[1:], strict=False))
    assert len(doc.spans) == 3
    assert doc.words == (3, 5, 4)  # words of the original (tokenised) text
    assert doc.example_ids[1] == f"{path}:4"
    (whole,) = read_lm(path, unit="file")
    assert len(whole.spans) == 1 and whole.text == text
    for unit in ("line", "file"):  # the unit changes the attribution, never the text scored
        assert read_lm(path, unit=unit, detokenize="wikitext")[0].text == doc.text


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("wikitext", "the well @-@ known 1 @,@ 000 @.@ 5 m", "the well-known 1,000.5 m"),
        (
            "wikitext",
            "he said , ( quietly ) that it 's fine .",
            "he said, (quietly) that it's fine.",
        ),
        ("wikitext", " = = Early life = = \n", "== Early life ==\n"),
        ("ptb", "the N companies do n't have <unk> plans .", "the 1 companies don't have ? plans."),
        ("ptb", "costs $ N million", "costs $1 million"),
    ],
)
def test_detokenizers(name, raw, expected, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(raw)
    (doc,) = read_lm(path, unit="file", detokenize=name)
    assert doc.text == expected


@pytest.mark.parametrize(
    ("reader", "line", "message"),
    [
        (read_lambada, "{not json", r"l\.jsonl:2: not valid JSON"),
        (read_lambada, '{"txt": "a b"}', r"l\.jsonl:2: missing field 'text'"),
        (read_lambada, '{"text": "   "}', r"l\.jsonl:2: empty text"),
        (read_lambada, '{"text": "oneword"}', r"l\.jsonl:2: no context"),
        (read_lambada, '["a b"]', r"l\.jsonl:2: expected a JSON object"),
        (read_lm, '{"text": 3}', r"l\.jsonl:2: field 'text' must be a str"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, reader, line, message):
    path = tmp_path / "l.jsonl"
    path.write_text('{"text": "a fine example"}\n' + line + "\n")
    with pytest.raises(EvalInputError, match=message):
        reader(path)


GOOD_CBT = {"context": "Once.", "question": "The XXXXX sat.", "candidates": ["cat", "dog"],
            "answer": "cat"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"answer": "cow"}, "answer 'cow' is not among the candidates"),
        ({"question": "No blank here."}, "placeholder 'XXXXX' once"),
        ({"candidates": []}, "candidates must be non-empty"),
        ({"context": " "}, "empty context or question"),
        ({"context": None}, "field 'context' must be a str"),
    ],
)
def test_bad_cloze_examples_are_refused(tmp_path, change, message):
    row = {**GOOD_CBT, **change}
    path = _write_jsonl(tmp_path / "c.jsonl", [GOOD_CBT, row])
    with pytest.raises(EvalInputError, match=rf"c\.jsonl:2: .*{re.escape(message)}"):
        read_cbt(path)
    row = {k: v for k, v in GOOD_CBT.items() if k != "answer"}
    with pytest.raises(EvalInputError, match=r"d\.jsonl:1: missing field 'answer'"):
        read_cbt(_write_jsonl(tmp_path / "d.jsonl", [row]))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(EvalInputError, match="no such file"):
        read_lm(tmp_path / "none.txt")
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(EvalInputError, match=r"e\.txt: empty text"):
        read_lm(tmp_path / "e.txt")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(EvalInputError, match="no examples"):
        read_lambada(tmp_path / "e.jsonl")


def test_contamination_source_errors(tmp_path):
    with pytest.raises(ContaminationSourceError, match="no such filter"):
        load_filter(tmp_path / "missing")
    assert dirty_flags(None, ["a", "b"]) == [{"dirty": False, "ngrams": None, "hits": None}] * 2


def test_summary_counts_and_relative_difference():
    from trainer.evaluate import ExampleScore

    ex = [ExampleScore(str(i), "", {"correct": c, "nll": 1.0}) for i, c in enumerate([1, 1, 0, 0])]
    s = summarise("lambada", ex, [True, False, False, False])
    assert s["subsets"]["all"]["examples"] == 4 and s["subsets"]["dirty"]["examples"] == 1
    assert s["subsets"]["all"]["accuracy"] == 0.5
    assert s["subsets"]["clean"]["accuracy"] == pytest.approx(1 / 3)
    assert s["relative_difference_pct"]["accuracy"] == pytest.approx(100 * (1 / 3 - 0.5) / 0.5)
    empty = summarise("cbt", ex[:1], [False])
    assert math.isnan(empty["subsets"]["dirty"]["accuracy"])
    assert score_cloze is not None


def test_cloze_placeholder_in_the_context_is_left_alone(tmp_path):
    row = {**GOOD_CBT, "context": "They wrote XXXXX on the box."}
    (ex,) = read_cbt(_write_jsonl(tmp_path / "c.jsonl", [row]))
    assert ex.prefix == "They wrote XXXXX on the box. The"
    assert ex.suffixes == (" cat sat.", " dog sat.")
    assert ex.text == "They wrote XXXXX on the box. The cat sat."


def test_bf16_autocast_scores_close_to_float32(exported):
    """The GPU path (bf16 autocast, a bf16 key/value cache), exercised on CPU."""
    out, tok = exported
    model, _ = load_model(out)
    ids = tok.encode(MEMO)
    reqs = lm_requests(ids, tok.eot_id, CFG.block_size, 16)
    f32 = sum(s.nll.sum() for s in score(model, reqs, dtype="float32"))
    bf16 = sum(s.nll.sum() for s in score(model, reqs, dtype="bfloat16"))
    assert bf16 == pytest.approx(f32, rel=0.05)
    prefix, suffixes = tok.encode(MEMO[:25]), [tok.encode(" gulls"), tok.encode(" rocks here")]
    a = cloze_logprobs(model, [tok.eot_id, *prefix], suffixes, "float32")
    b = cloze_logprobs(model, [tok.eot_id, *prefix], suffixes, "bfloat16")
    np.testing.assert_allclose(a, b, rtol=0.05)


def test_a_run_filter_of_another_n_is_rebuilt_from_the_run_shards(tmp_path):
    from tests.shard_factory import make_text_shards

    run = tmp_path / "run"
    make_text_shards(run / "shards", [MEMO, "an unrelated short page about nothing much"])
    build_filter(str(run / "shards")).save(str(run / "contamination" / "bloom.bin"))
    saved, info = load_filter(run)
    assert saved.n == 8 and not info["built"]
    rebuilt, info = load_filter(run, n=13)
    assert rebuilt.n == 13 and info["built"] and info["train"].endswith("shards")
    words = MEMO.split()
    assert [f["dirty"] for f in dirty_flags(rebuilt, [" ".join(words[5:18]), OTHER])] == [
        True,
        False,
    ]
    # 12 words of the training text hold no 13-gram: clean at n=13, dirty at n=8.
    twelve = " ".join(words[5:17])
    assert not dirty_flags(rebuilt, [twelve])[0]["dirty"]
    assert dirty_flags(saved, [twelve])[0]["dirty"]


def test_every_eval_flag_reaches_the_resolved_config():
    from webtext.cli import parse_args
    from webtext.commands.eval import overrides
    from webtext.commands.options import resolve_config

    argv = ["eval", "--model", "m", "--lm", "a.txt", "--out", "o", "--stride", "5"]
    argv += ["--batch-size", "3", "--detokenize", "ptb", "--n", "13", "--device", "cpu"]
    argv += ["--eval-lm-unit", "line", "--eval-placeholder", "@blank@", "--eval-dtype", "float32"]
    args = parse_args(argv)
    assert resolve_config(args, **overrides(args)).eval == EvalConfig(
        stride=5, batch_size=3, n=13, detokenize="ptb", lm_unit="line",
        placeholder="@blank@", device="cpu", dtype="float32",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [("stride", -1), ("batch_size", 0), ("n", 0), ("detokenize", "moses"), ("device", "tpu")],
)
def test_eval_config_refuses_bad_values(field, value):
    from foundation.config import ConfigError

    with pytest.raises(ConfigError, match=f"eval.{field}="):
        EvalConfig(**{field: value})


def test_cli_on_an_hf_directory_with_only_gpt2_vocab_and_merges(exported, tmp_path):
    import shutil

    out, _ = exported
    hf_dir = tmp_path / "gpt2"
    shutil.copytree(out, hf_dir)
    (hf_dir / "tokenizer.json").unlink()
    assert (hf_dir / "vocab.json").is_file() and (hf_dir / "merges.txt").is_file()
    lm = _write_jsonl(tmp_path / "lm.jsonl", [{"text": MEMO}, {"text": "too short"}])
    (tmp_path / "train.txt").write_text(OTHER)
    reports = []
    for model in (out, hf_dir):
        dest = tmp_path / f"eval-{model.name}"
        argv = ["eval", "--model", str(model), "--lm", str(lm), "--out", str(dest)]
        assert main([*argv, "--contamination", str(tmp_path / "train.txt"), "--no-progress"]) == 0
        reports.append(json.loads((dest / "eval.json").read_text())["tasks"]["lm"])
    assert reports[0]["subsets"] == reports[1]["subsets"]  # the same ids either way
    assert reports[1]["too_short_to_flag"] == 1
    assert [e["dirty"] for e in reports[1]["examples"]] == [False, False]

"""``webtext tokenize``: text shards -> token shards that decode back to the documents."""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import numpy as np
import pytest

from foundation.config import TokenizeConfig
from foundation.shards import Manifest, ShardError
from tests.shard_factory import make_text_shards, shakespeare_docs
from trainer.tokenize import split_of, tokenize_shards
from trainer.tokenizer import EOT, load_tokenizer
from trainer.tokens import TokenShards
from webtext.cli import main

WORDS = [
    "the",
    "of",
    "and",
    "web",
    "text",
    "Reddit",
    "karma",
    "page",
    "Straße",
    "Köln",
    "日本語",
    "テキスト",
    "русский",
    "текст",
    "العربية",
    "🙂",
    "data",
    "model",
    "token",
    "42",
    "3.14",
    "it's",
    "we'll",
]


def _docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 80))) for _ in range(n)]
    docs[3] = f"a page that quotes {EOT} literally"
    docs[7] = ""  # an empty extraction: skipped and counted
    return docs


CFG = TokenizeConfig(vocab_size=300, val_fraction=0.2, workers=1, shard_tokens=700)


@pytest.fixture
def shards(tmp_path):
    docs = _docs(120)
    make_text_shards(tmp_path / "shards", docs, shard_docs=25)
    return tmp_path / "shards", docs


def _split_docs(directory, split: str) -> list[str]:
    """Decode a split's token stream back into documents (EOT before each)."""
    ts = TokenShards(str(directory), split, checksums=True)
    tok = load_tokenizer(ts.tokenizer_path)
    stream = np.concatenate(ts.memmaps) if ts.memmaps else np.empty(0, np.uint16)
    assert stream.size == 0 or stream[0] == ts.eot_id
    cuts = np.flatnonzero(stream == ts.eot_id)
    ends = [*cuts[1:], stream.size]
    return [tok.decode(stream[a + 1 : b].tolist()) for a, b in zip(cuts, ends, strict=True)]


def test_split_is_stable_salted_and_near_the_fraction():
    ids = [f"{i:032x}" for i in range(20_000)]
    val = [split_of(i, 0.1, 0) for i in ids].count("val")
    assert 1_800 < val < 2_200
    assert [split_of(i, 0.1, 0) for i in ids[:500]] == [split_of(i, 0.1, 0) for i in ids[:500]]
    assert [split_of(i, 0.1, 1) for i in ids] != [split_of(i, 0.1, 0) for i in ids]
    assert {split_of(i, 0.0) for i in ids} == {"train"}


def test_token_shards_decode_back_to_the_documents(shards, tmp_path):
    src, docs = shards
    out = tmp_path / "tokens"
    m = tokenize_shards(str(src), str(out), CFG, progress=False)
    rows = Manifest.load(str(src))
    ids = [r["id"] for p in rows.paths(str(src)) for r in _read_ids(p)]
    expected = {"train": [], "val": []}
    for doc_id, text in zip(ids, docs, strict=True):
        if text:
            expected[split_of(doc_id, 0.2, 0)].append(text)
    assert expected["val"] and expected["train"]
    assert _split_docs(out, "train") == expected["train"]
    assert _split_docs(out, "val") == expected["val"]
    c = m.counts
    assert (c["docs_train"], c["docs_val"], c["empty_docs"]) == (
        len(expected["train"]),
        len(expected["val"]),
        1,
    )
    assert c["tokens_train"] == TokenShards(str(out), "train").n_tokens
    assert m.extra["splits"]["val"]["tokens"] == c["tokens_val"]
    assert (m.extra["vocab_size"], m.extra["eot_id"], m.extra["dtype"]) == (300, 299, "uint16")
    assert m.extra["tokenizer"] == "tokenizer.json" and (out / "tokenizer.json").exists()
    assert m.extra["source_checksum"] == rows.checksum
    # cut into shard_tokens-sized files; only the last of a split is shorter
    train = TokenShards(str(out), "train")
    assert [f.n_tokens for f in train.files[:-1]] == [700] * (len(train) - 1)
    assert 0 < train.files[-1].n_tokens <= 700
    assert not (out / "pieces").exists()


def _read_ids(path):
    from foundation.shards import read_table

    return read_table(path, ["id"]).to_pylist()


def test_rerun_is_a_no_op_and_a_changed_config_reencodes(shards, tmp_path, caplog):
    src, _ = shards
    out = tmp_path / "tokens"
    first = tokenize_shards(str(src), str(out), CFG, progress=False)
    caplog.set_level(logging.INFO, logger="trainer.tokenize")
    again = tokenize_shards(str(src), str(out), CFG, progress=False)
    assert again.checksum == first.checksum
    assert "up to date" in caplog.text
    bigger = tokenize_shards(str(src), str(out), replace(CFG, shard_tokens=100_000), progress=False)
    assert len(bigger.files) == 2  # one train, one val file
    assert sorted(p.name for p in out.glob("*.bin")) == ["train-00000.bin", "val-00000.bin"]
    assert bigger.counts["tokens_train"] == first.counts["tokens_train"]


def test_killed_run_resumes_without_reencoding_finished_shards(shards, tmp_path, caplog):
    src, _ = shards
    clean = tokenize_shards(str(src), str(tmp_path / "clean"), CFG, progress=False)
    cfg = replace(CFG, tokenizer=str(tmp_path / "clean" / "tokenizer.json"))
    out = tmp_path / "tokens"
    victim = src / "part-00003.parquet"
    good = victim.read_bytes()
    victim.write_bytes(b"\0" * len(good))  # same size: only reading it fails
    with pytest.raises(ShardError, match=r"part-00003\.parquet"):
        tokenize_shards(str(src), str(out), cfg, progress=False)
    assert not (out / "_manifest.json").exists()
    done = sorted(p.name for p in (out / "pieces").glob("*.json"))
    assert done == ["part-00000.json", "part-00001.json", "part-00002.json"]
    victim.write_bytes(good)
    caplog.set_level(logging.INFO, logger="trainer.tokenize")
    resumed = tokenize_shards(str(src), str(out), cfg, progress=False)
    assert "3 of 5 text shards already encoded" in caplog.text
    assert resumed.checksum == clean.checksum


def test_two_workers_give_the_same_shards(shards, tmp_path):
    src, _ = shards
    one = tokenize_shards(str(src), str(tmp_path / "one"), CFG, progress=False)
    two = tokenize_shards(str(src), str(tmp_path / "two"), replace(CFG, workers=2), progress=False)
    assert two.checksum == one.checksum


def test_given_tokenizer_is_used_and_copied(shards, tmp_path):
    src, _ = shards
    first = tokenize_shards(str(src), str(tmp_path / "a"), CFG, progress=False)
    tok = load_tokenizer(str(tmp_path / "a" / "tokenizer.json"))
    vocab, merges = tok.save_gpt2_files(str(tmp_path / "gpt2"))
    for out, cfg in [
        ("b", replace(CFG, tokenizer=str(tmp_path / "a" / "tokenizer.json"))),
        ("c", replace(CFG, vocab=vocab, merges=merges)),
    ]:
        m = tokenize_shards(str(src), str(tmp_path / out), cfg, progress=False)
        assert m.checksum == first.checksum
        assert load_tokenizer(str(tmp_path / out)).sha256 == tok.sha256


def test_text_manifest_is_required(tmp_path):
    Manifest(kind="tokens", format="bin").save(str(tmp_path / "x"))
    with pytest.raises(ShardError, match="expected text shards"):
        tokenize_shards(str(tmp_path / "x"), str(tmp_path / "out"), CFG, progress=False)


def test_cli_tokenize(shards, tmp_path, capsys):
    src, _ = shards
    out = tmp_path / "tokens"
    argv = ["tokenize", str(src), "--out", str(out), "--vocab-size", "280", "--workers", "1"]
    flags = ["--tokenize-val-fraction", "0.5", "--tokenize-shard-tokens", "500", "--no-progress"]
    assert main(argv + flags) == 0
    m = Manifest.load(str(out))
    assert m.config["val_fraction"] == 0.5 and m.config["shard_tokens"] == 500
    assert m.extra["vocab_size"] == 280
    assert "tokenized 119 documents" in capsys.readouterr().out
    assert main(["tokenize", str(src), "--out", str(out), "--vocab", "v.json"]) == 2
    assert main(["tokenize", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert main([*argv, "--tokenize-val-fraction", "1.5"]) == 2


def test_real_text_round_trips(corpus, tmp_path):
    docs = shakespeare_docs(corpus, 100)
    make_text_shards(tmp_path / "shards", docs, shard_docs=40)
    cfg = replace(CFG, vocab_size=1000, val_fraction=0.0, shard_tokens=5_000)
    m = tokenize_shards(str(tmp_path / "shards"), str(tmp_path / "tokens"), cfg, progress=False)
    assert _split_docs(tmp_path / "tokens", "train") == docs
    assert m.counts["docs_val"] == 0 and not TokenShards(str(tmp_path / "tokens"), "val").files


def test_cli_tokenize_of_shards_without_documents_is_one_clear_error(tmp_path, capsys):
    src = tmp_path / "empty-shards"
    Manifest(kind="text", format="parquet").save(str(src))
    assert main(["tokenize", str(src), "--out", str(tmp_path / "tokens"), "--no-progress"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"webtext tokenize: the text shards in {src} hold no documents to tokenize"


def test_cli_tokenize_of_documents_without_text_is_one_clear_error(tmp_path, capsys):
    """Shards whose documents are all empty: the token shards are written (their counts say
    why) and the command fails instead of handing the trainer nothing."""
    src, out = tmp_path / "shards", tmp_path / "tokens"
    make_text_shards(src, ["", ""], shard_docs=2)
    argv = ["tokenize", str(src), "--out", str(out), "--vocab-size", "280", "--no-progress"]
    assert main(argv) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("webtext tokenize: no tokens: tokenized 0 documents (0.0 MB)"), last
    assert Manifest.load(str(out)).counts["empty_docs"] == 2

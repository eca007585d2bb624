"""The byte-level BPE: exact round trips, GPT-2's layout, and GPT-2's encoding algorithm.

The equivalence tests compare four encoders on real multilingual text: a plain merge loop
written here from GPT-2's description (the reference), Hugging Face's BPE on our
tokenizer.json, tiktoken built offline from GPT-2-layout vocab.json/merges.txt files, and our
``Tokenizer.encode`` (which runs tiktoken). GPT-2's real files are not available offline, so the
vocabulary is one trained here and saved in GPT-2's layout.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import regex
import tiktoken
from tokenizers import Tokenizer as HFTokenizer

from tests.shard_factory import page_texts, shakespeare_docs
from trainer.tokenizer import (
    EOT,
    bytes_to_unicode,
    from_gpt2_files,
    gpt2_ranks,
    load_tokenizer,
    train_tokenizer,
)

# GPT-2's pre-tokenisation pattern as its paper's code states it (written out independently of
# trainer.tokenizer, so a typo there cannot hide here).
GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

SAMPLES = [
    "Hello, world! It's 2024; they'll say we've done it.",
    "Grüße aus Köln – Straße, Maß, Übermaß. «Ça va?» dit-il. ¿Qué tal? Zażółć gęślą jaźń.",
    "日本語のテキスト、中文文本，한국어 텍스트. Ελληνικά, русский текст, עברית, العربية.",
    "Emoji 🙂👍🏽 and ZWJ 👨‍👩‍👧; combining e\u0301 vs é; NBSP\u00a0here, soft\u00adhyphen.",
    "  leading spaces\n\n\ttabs\r\nCRLF   trailing   \n",
    "code: def f(x):\n    return x ** 2  # 100% sure? <html>&amp;</html>",
    "numbers 3.14159 1,000,000 0x1F 12345678901234567890",
]


def _synthetic_corpus() -> list[str]:
    rng = random.Random(5)
    words = " ".join(SAMPLES).split()
    return [" ".join(rng.choice(words) for _ in range(200)) for _ in range(60)] + SAMPLES


@pytest.fixture(scope="module")
def small():
    """A tokenizer trained on built-in multilingual text: no corpus needed."""
    return train_tokenizer(_synthetic_corpus(), vocab_size=600, min_frequency=2)


@pytest.fixture(scope="module")
def real_text(corpus):
    return shakespeare_docs(corpus, 60) + page_texts(corpus, 30)


@pytest.fixture(scope="module")
def trained(real_text):
    return train_tokenizer(real_text, vocab_size=3000)


def _random_strings(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.randrange(3)
        if kind == 0:  # any code point but surrogates, from every plane
            cps = [rng.randrange(0x110000) for _ in range(rng.randrange(1, 60))]
            out.append("".join(chr(c) for c in cps if not 0xD800 <= c <= 0xDFFF))
        elif kind == 1:  # arbitrary bytes, as Latin-1 (every byte value is a character)
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).decode("l1"))
        else:  # arbitrary bytes as (lossy) UTF-8, which is what web pages turn into
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
            out.append(raw.decode("utf-8", errors="replace"))
    return out


def test_round_trip_on_arbitrary_strings(small):
    for text in [*_random_strings(1, 300), bytes(range(256)).decode("latin-1"), "", " ", "\n"]:
        ids = small.encode(text)
        assert small.decode(ids) == text
        assert small.decode_bytes(ids) == text.encode("utf-8")
        assert all(0 <= i < small.vocab_size and i != small.eot_id for i in ids)


def test_round_trip_on_multilingual_text(small, real_text):
    for text in [*SAMPLES, *real_text]:
        assert small.decode(small.encode(text)) == text


def test_every_byte_is_a_token_in_gpt2_order(small):
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert not any(c.isspace() for c in table.values())
    assert (table[ord(" ")], table[ord("\n")], table[ord("A")]) == ("Ġ", "Ċ", "A")
    # ids 0..255 are the bytes, in the order of the table's characters (GPT-2's vocab.json)
    assert [small.decode_bytes([i]) for i in range(256)] == [bytes([b]) for b in table]


def test_layout_is_gpt2s(small):
    assert small.vocab_size == 600
    assert small.eot_id == 599  # last, after the merges
    assert small.engine == "tiktoken"


def test_endoftext_inside_text_is_text_not_a_separator(small):
    ids = small.encode(f"a{EOT}b")
    assert small.eot_id not in ids
    assert small.decode(ids) == f"a{EOT}b"
    assert small.decode([small.eot_id]) == EOT


def test_iter_decode_holds_back_split_characters(small):
    text = "日本語 🙂 Grüße"
    ids = small.encode(text)
    assert "".join(small.iter_decode(ids)) == text
    assert "\ufffd" not in "".join(small.iter_decode(ids))


def _reference_bpe(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """GPT-2's algorithm: per regex piece, merge the best-ranked adjacent pair until none."""
    ranks = {pair: r for r, pair in enumerate(merges)}
    b2u = bytes_to_unicode()
    ids: list[int] = []
    for piece in regex.findall(GPT2_PAT, text):
        word = [b2u[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            best = min(itertools.pairwise(word), key=lambda p: ranks.get(p, 1 << 60))
            if best not in ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids += [vocab[s] for s in word]
    return ids


def _tiktoken_from_gpt2_files(vocab_path, merges_path) -> tiktoken.Encoding:
    """tiktoken built offline the way OpenAI's gpt2 encoding is: ranks through byte_decoder."""
    vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    ranks = {bytes(byte_decoder[c] for c in tok): i for tok, i in vocab.items() if tok != EOT}
    return tiktoken.Encoding(
        "gpt2-offline",
        pat_str=GPT2_PAT,
        mergeable_ranks=ranks,
        special_tokens={EOT: vocab[EOT]},
        explicit_n_vocab=len(vocab),
    )


def test_gpt2_merges_equivalence_on_multilingual_text(trained, real_text, tmp_path):
    vocab_path, merges_path = trained.save_gpt2_files(str(tmp_path))
    vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
    lines = Path(merges_path).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#version: 0.2"
    merges = [tuple(line.split(" ")) for line in lines[1:]]
    assert len(vocab) == 3000 and vocab[EOT] == 2999 and len(merges) == 3000 - 257

    reloaded = from_gpt2_files(vocab_path, merges_path)
    offline = _tiktoken_from_gpt2_files(vocab_path, merges_path)
    hf = HFTokenizer.from_str(trained.json)
    checked = 0
    for text in [*SAMPLES, *real_text]:
        expected = _reference_bpe(text, vocab, merges)
        assert trained.encode(text) == expected
        assert reloaded.encode(text) == expected
        assert offline.encode_ordinary(text) == expected
        assert hf.encode(text, add_special_tokens=False).ids == expected
        checked += len(expected)
    assert checked > 50_000
    # the pages are multilingual: characters well beyond ASCII were exercised
    assert sum(ord(c) > 0x24F for t in real_text for c in t) > 100


def test_tokenizer_json_loads_in_tokenizers_and_transformers(trained, real_text, tmp_path):
    from transformers import PreTrainedTokenizerFast

    path = tmp_path / "tokenizer.json"
    trained.save(str(path))
    text = real_text[-1]
    ours = trained.encode(text)
    assert HFTokenizer.from_file(str(path)).encode(text).ids == ours
    fast = PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token=EOT)
    assert fast(text)["input_ids"] == ours
    assert fast.eos_token_id == trained.eot_id
    assert fast.decode(ours) == text
    again = load_tokenizer(str(tmp_path))  # a directory holding tokenizer.json
    assert again.sha256 == trained.sha256 and again.encode(text) == ours


def test_gpt2_ranks_refuses_what_tiktoken_cannot_reproduce(small):
    spec = json.loads(small.json)
    assert gpt2_ranks(spec) is not None
    lowered = {**spec, "normalizer": {"type": "Lowercase"}}
    assert gpt2_ranks(lowered) is None
    prefixed = {**spec, "pre_tokenizer": {**spec["pre_tokenizer"], "add_prefix_space": True}}
    assert gpt2_ranks(prefixed) is None
    # ids out of merge order: tiktoken would merge in id order, GPT-2 in merges.txt order
    vocab = dict(spec["model"]["vocab"])
    first, second = (a + b for a, b in spec["model"]["merges"][:2])
    vocab[first], vocab[second] = vocab[second], vocab[first]
    assert gpt2_ranks({**spec, "model": {**spec["model"], "vocab": vocab}}) is None


def test_other_tokenizers_are_encoded_by_hugging_face(small, tmp_path):
    spec = json.loads(small.json)
    spec["normalizer"] = {"type": "Lowercase"}
    path = tmp_path / "lower.json"
    path.write_text(json.dumps(spec))
    tok = load_tokenizer(str(path))
    assert tok.engine == "tokenizers"
    assert tok.encode("HELLO World") == small.encode("hello world")
    assert tok.eot_id not in tok.encode(f"x{EOT}y")


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "not a tokenizer.json"), ('{"model": {}}', "not a tokenizer.json")],
)
def test_bad_tokenizer_file_is_named(tmp_path, content, match):
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as e:
        load_tokenizer(str(path))
    assert str(path) in str(e.value)


def test_malformed_merges_line_is_named(small, tmp_path):
    vocab_path, merges_path = small.save_gpt2_files(str(tmp_path))
    with open(merges_path, "a", encoding="utf-8") as f:
        f.write("one two three\n")
    with pytest.raises(ValueError, match=r"merges\.txt:\d+: expected two symbols"):
        from_gpt2_files(vocab_path, merges_path)


def test_training_needs_room_for_bytes_and_eot():
    with pytest.raises(ValueError, match="vocab_size=257"):
        train_tokenizer(["abc"], vocab_size=257)

"""GPT-2's byte-level BPE: trained on our shards, or GPT-2's own files, one wrapper for both.

The vocabulary is laid out as GPT-2's: ids 0..255 are the 256 bytes (as the printable
characters of GPT-2's byte-to-unicode table, in its order), then one id per merge in merge
order, then ``<|endoftext|>`` last (50256 at the default size). Pre-tokenisation is GPT-2's
regex (no merge crosses a letter/number/punctuation/space boundary), with no prefix space and
no normalisation, so any string (and any byte sequence) round-trips exactly.

The canonical form is a Hugging Face ``tokenizer.json`` (``tokenizers.Tokenizer.from_file`` and
``transformers.PreTrainedTokenizerFast(tokenizer_file=...)`` load it). Encoding uses tiktoken's
BPE built offline from the same vocabulary when the tokenizer has GPT-2's shape (ids in merge
order): it gives GPT-2's ids (tests/test_tokenizer.py compares it with a reference merge loop,
with Hugging Face's BPE and with tiktoken on multilingual text) and is several times faster.
Any other ``tokenizer.json`` is encoded by Hugging Face ``tokenizers`` itself.

``encode`` treats its text as text: a literal ``<|endoftext|>`` inside a web page is encoded as
ordinary characters, never as the separator (a page could otherwise forge document boundaries).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

from foundation import storage
from foundation.errors import WebtextError

log = logging.getLogger(__name__)

EOT = "<|endoftext|>"
GPT2_VOCAB_SIZE = 50257
# GPT-2's pre-tokenisation regex (contractions, letters, numbers, other, whitespace), the same
# one Hugging Face's ByteLevel pre-tokenizer applies with use_regex=True.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class TokenizerError(WebtextError, ValueError):
    """A tokenizer file (tokenizer.json, vocab.json, merges.txt) is missing or malformed."""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what vocab.json and merges.txt are written in).

    Printable Latin-1 bytes stand for themselves; the other 68 bytes (controls, space, NBSP,
    soft hyphen) are shifted to U+0100 onwards so that no token string contains whitespace.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in keep}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return dict(sorted(table.items(), key=lambda kv: ord(kv[1])))


def _build(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Any:
    """A GPT-2-shaped HF tokenizer from a byte-level vocab and merge list."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    tok = HFTokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOT])
    return tok


def _model_parts(hf: Any) -> tuple[dict[str, int], list[tuple[str, str]]]:
    model = json.loads(hf.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = GPT2_VOCAB_SIZE, min_frequency: int = 2
) -> Tokenizer:
    """Train a byte-level BPE of ``vocab_size`` ids (256 bytes + merges + ``<|endoftext|>``).

    Fewer ids result when the text has too few pairs occurring ``min_frequency`` times.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    if vocab_size <= 257:
        raise ValueError(f"vocab_size={vocab_size}: needs room for 256 bytes, merges and EOT")
    scratch = HFTokenizer(models.BPE())
    scratch.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # EOT is appended after the merges, as in GPT-2
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    scratch.train_from_iterator(texts, trainer=trainer)
    vocab, merges = _model_parts(scratch)
    tok = Tokenizer(_build(vocab, merges))
    log.info("trained a byte-level BPE: %d ids, %d merges", tok.vocab_size, len(merges))
    return tok


def _read_text(path: str) -> str:
    try:
        return storage.read_text(path)
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{path}: cannot read the tokenizer file ({e})") from e


def from_gpt2_files(vocab_path: str, merges_path: str) -> Tokenizer:
    """GPT-2's own ``vocab.json`` + ``merges.txt`` (or any in that layout)."""
    try:
        vocab = json.loads(_read_text(vocab_path))
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{vocab_path}: not a JSON vocabulary ({e})") from e
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerError(f"{vocab_path}: expected a JSON object of token -> id")
    merges = []
    for lineno, line in enumerate(_read_text(merges_path).splitlines(), 1):
        if not line.strip() or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise TokenizerError(f"{merges_path}:{lineno}: expected two symbols, got {line!r}")
        merges.append((parts[0], parts[1]))
    if vocab.get(EOT) == max(vocab.values()):
        del vocab[EOT]  # re-added as the special token, with the same (last) id
    return Tokenizer(_build(vocab, merges))


def load_tokenizer(
    path: str | None = None, *, vocab: str | None = None, merges: str | None = None
) -> Tokenizer:
    """Load a ``tokenizer.json`` (a file, or a directory holding one), or GPT-2's two files."""
    from tokenizers import Tokenizer as HFTokenizer

    if vocab is not None or merges is not None:
        if vocab is None or merges is None or path is not None:
            raise ValueError("give either a tokenizer.json, or vocab.json and merges.txt together")
        return from_gpt2_files(vocab, merges)
    if path is None:
        raise ValueError("no tokenizer given")
    if storage.exists(storage.join(path, "tokenizer.json")):
        path = storage.join(path, "tokenizer.json")
    if not storage.exists(path):
        raise TokenizerError(f"{path}: no such tokenizer file")
    try:
        hf = HFTokenizer.from_str(storage.read_text(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise TokenizerError(f"{path}: not a tokenizer.json ({e})") from e
    return Tokenizer(hf, source=path)


class Tokenizer:
    """Encode/decode with a byte-level BPE; ``eot_id`` separates documents."""

    def __init__(self, hf: Any, source: str = "<memory>") -> None:
        """Wrap (and own: it is set to encode special-token strings as text) ``hf``."""
        self.hf = hf
        self.hf.encode_special_tokens = True
        self.source = source
        eot = self.hf.token_to_id(EOT)
        if eot is None:
            raise TokenizerError(f"{source}: the tokenizer has no {EOT} token")
        self.eot_id: int = eot
        self.vocab_size: int = self.hf.get_vocab_size(with_added_tokens=True)
        self.engine = "tiktoken" if self._tiktoken is not None else "tokenizers"

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, eot_id={self.eot_id}, engine={self.engine})"
        )

    @cached_property
    def json(self) -> str:
        return self.hf.to_str()

    @cached_property
    def sha256(self) -> str:
        """Identity of the vocabulary and settings (what token shards were encoded with)."""
        return hashlib.sha256(self.json.encode()).hexdigest()

    @cached_property
    def _id_bytes(self) -> list[bytes]:
        """The bytes each id stands for (special tokens: their UTF-8 text)."""
        decoder = {c: b for b, c in bytes_to_unicode().items()}
        added = {t.content for t in self.hf.get_added_tokens_decoder().values()}
        out = [b""] * self.vocab_size
        for token, i in self.hf.get_vocab(with_added_tokens=True).items():
            if token not in added and all(c in decoder for c in token):
                out[i] = bytes(decoder[c] for c in token)
            else:
                out[i] = token.encode()
        return out

    @cached_property
    def _tiktoken(self) -> Any:
        """tiktoken's BPE over the same ranks, or None if this tokenizer is not GPT-2-shaped."""
        ranks = gpt2_ranks(json.loads(self.json))
        if ranks is None:
            log.info("%s: not GPT-2-shaped; encoding with Hugging Face tokenizers", self.source)
            return None
        import tiktoken

        return tiktoken.Encoding(
            name=f"webtext-{self.sha256[:12]}",
            pat_str=GPT2_PATTERN,
            mergeable_ranks=ranks,
            special_tokens={EOT: self.eot_id},
        )

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``; special-token strings in it are ordinary text."""
        if self._tiktoken is not None:
            return self._tiktoken.encode_ordinary(text)
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        if self._tiktoken is not None:
            return self._tiktoken.encode_ordinary_batch(texts, num_threads=num_threads)
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        table = self._id_bytes
        return b"".join(table[i] for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; a cut inside a multi-byte character decodes to U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def iter_decode(self, ids: Iterable[int]) -> Iterator[str]:
        """Decode a stream incrementally (for sampling), holding back incomplete characters."""
        import codecs

        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        table = self._id_bytes
        for i in ids:
            if piece := dec.decode(table[i]):
                yield piece
        if tail := dec.decode(b"", final=True):
            yield tail

    def save(self, path: str) -> None:
        """Write ``tokenizer.json`` atomically."""
        storage.write_text(path, self.hf.to_str(pretty=True))

    def save_gpt2_files(self, directory: str) -> tuple[str, str]:
        """Write GPT-2's layout: ``vocab.json`` (with EOT) and ``merges.txt``."""
        vocab, merges = _model_parts(self.hf)
        vocab[EOT] = self.eot_id
        vocab_path = storage.join(directory, "vocab.json")
        merges_path = storage.join(directory, "merges.txt")
        storage.write_text(vocab_path, json.dumps(vocab, ensure_ascii=False))
        lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
        storage.write_text(merges_path, "\n".join(lines) + "\n")
        return vocab_path, merges_path


def gpt2_ranks(spec: dict[str, Any]) -> dict[bytes, int] | None:
    """tiktoken ranks (token bytes -> id) for a GPT-2-shaped tokenizer.json, else None.

    tiktoken merges the adjacent pair whose concatenation has the lowest id; GPT-2 merges the
    pair listed first in merges.txt. They agree when ids grow with merge order, every id is a
    byte or a merge result, and the pipeline around the model is plain byte-level BPE.
    """
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    plain = (
        model.get("type") == "BPE"
        and not model.get("dropout")
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
        and not model.get("byte_fallback")
        and not model.get("ignore_merges")
        and spec.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
        and not pre.get("add_prefix_space", False)
        and all(t.get("special") for t in spec.get("added_tokens", []))
    )
    if not plain:
        return None
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    added = {t["content"] for t in spec.get("added_tokens", [])}
    vocab = {t: i for t, i in model["vocab"].items() if t not in added}
    if any(chr_ not in vocab for chr_ in decoder):
        return None
    last = max(vocab[c] for c in decoder)
    merged = set()
    for m in model["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        i = vocab.get(a + b)
        if i is None or i <= last:
            return None
        last = i
        merged.add(a + b)
    if len(merged) + len(decoder) != len(vocab):
        return None
    try:
        return {bytes(decoder[c] for c in token): i for token, i in vocab.items()}
    except KeyError:
        return None

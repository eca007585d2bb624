"""Text shards -> token shards: the tokenizer, a document-hash split, parallel encoding, packing.

Input: a text-shard directory (``_manifest.json`` of kind ``"text"``, columns ``id`` and
``text``). Output, in ``out_dir`` (the layout :mod:`trainer.tokens` documents):
``tokenizer.json``, ``train-NNNNN.bin`` / ``val-NNNNN.bin`` of ``shard_tokens`` tokens each,
and ``_manifest.json`` (kind ``"tokens"``), written last.

Steps, each resumable:

1. The tokenizer: the one given (``tokenizer.json`` or GPT-2's vocab+merges), else the
   ``tokenizer.json`` an earlier run left in ``out_dir``, else one trained on the first
   ``train_sample_bytes`` of training-split text. Saved as ``out_dir/tokenizer.json``.
2. Encoding, one task per text shard on a process pool: every document goes to ``val`` when a
   stable hash of its id (xxh64, salted by ``split_seed``) falls under ``val_fraction``, and is
   written as ``<|endoftext|>`` followed by its tokens. A task writes its two pieces under
   ``pieces/`` and then a small JSON record; a rerun skips shards whose record names the same
   input file, tokenizer and split.
3. Packing: the pieces of each split, in input order, are cut into files of ``shard_tokens``
   tokens (a document may continue into the next file; the trainer reads a stream). Then the
   manifest is written and the pieces are removed.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from functools import lru_cache
from typing import Any

import numpy as np
import xxhash

from foundation import storage
from foundation.config import TokenizeConfig
from foundation.layout import record_path
from foundation.shards import MANIFEST, Manifest, ShardError, ShardFile, read_table
from trainer.tokenizer import Tokenizer, load_tokenizer, train_tokenizer
from trainer.tokens import (
    FORMAT,
    KIND,
    SPLITS,
    TOKENIZER_FILE,
    dtype_for,
    open_token_file,
    token_file_name,
    write_token_file,
)

log = logging.getLogger(__name__)

PIECES = "pieces"


def split_of(doc_id: str, val_fraction: float, seed: int = 0) -> str:
    """``"val"`` for a stable ``val_fraction`` share of document ids, else ``"train"``."""
    h = xxhash.xxh64_intdigest(doc_id.encode("utf-8"), seed=seed)
    return "val" if h < val_fraction * 2.0**64 else "train"


def training_sample(shards_dir: str, cfg: TokenizeConfig) -> Iterator[str]:
    """Training-split texts in shard order, up to ``train_sample_bytes`` UTF-8 bytes."""
    manifest = Manifest.load(shards_dir)
    budget = cfg.train_sample_bytes
    for path in manifest.paths(shards_dir):
        table = read_table(path, ["id", "text"])
        for doc_id, text in zip(
            table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True
        ):
            if not text or split_of(doc_id, cfg.val_fraction, cfg.split_seed) != "train":
                continue
            yield text
            budget -= len(text.encode("utf-8"))
            if budget <= 0:
                return


def prepare_tokenizer(shards_dir: str, out_dir: str, cfg: TokenizeConfig) -> Tokenizer:
    """Step 1: load, reuse or train the tokenizer, and save it as ``out_dir/tokenizer.json``."""
    saved = storage.join(out_dir, TOKENIZER_FILE)
    if cfg.tokenizer is not None:
        tok = load_tokenizer(cfg.tokenizer)
    elif cfg.vocab is not None and cfg.merges is not None:
        tok = load_tokenizer(vocab=cfg.vocab, merges=cfg.merges)
    elif storage.exists(saved):
        tok = load_tokenizer(saved)
        log.info("reusing %s (%d ids) from an earlier run", saved, tok.vocab_size)
        return tok
    else:
        log.info("training a %d-id BPE on up to %d bytes", cfg.vocab_size, cfg.train_sample_bytes)
        tok = train_tokenizer(training_sample(shards_dir, cfg), cfg.vocab_size, cfg.min_frequency)
    if not storage.exists(saved) or storage.read_text(saved) != tok.hf.to_str(pretty=True):
        tok.save(saved)
    return tok


@lru_cache(maxsize=2)
def _worker_tokenizer(path: str, sha256: str) -> Tokenizer:
    """One tokenizer per worker process (built once, reused by every task it runs)."""
    tok = load_tokenizer(path)
    if tok.sha256 != sha256:
        raise ShardError(f"{path}: changed while tokenizing (sha256 {tok.sha256[:12]})")
    return tok


def _piece_key(source: ShardFile, tok: Tokenizer, cfg: TokenizeConfig) -> dict[str, Any]:
    return {
        "source": source.path,
        "source_sha256": source.sha256,
        "tokenizer_sha256": tok.sha256,
        "val_fraction": cfg.val_fraction,
        "split_seed": cfg.split_seed,
    }


def _piece_names(index: int) -> dict[str, str]:
    names = {split: f"part-{index:05d}.{split}.{FORMAT}" for split in SPLITS}
    names["record"] = f"part-{index:05d}.json"
    return names


def encode_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Step 2 for one text shard: its train and val pieces, then its record (the commit)."""
    tok = _worker_tokenizer(task["tokenizer"], task["key"]["tokenizer_sha256"])
    table = read_table(task["source"], ["id", "text"])
    dtype = dtype_for(tok.vocab_size)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    docs = dict.fromkeys(SPLITS, 0)
    eot = np.array([tok.eot_id], dtype=dtype)
    empty = text_bytes = 0
    for doc_id, text in zip(
        table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True
    ):
        if not text:
            empty += 1
            continue
        split = split_of(doc_id, task["key"]["val_fraction"], task["key"]["split_seed"])
        parts[split].append(eot)
        parts[split].append(np.array(tok.encode(text), dtype=dtype))
        docs[split] += 1
        text_bytes += len(text.encode("utf-8"))
    record = {**task["key"], "empty_docs": empty, "text_bytes": text_bytes}
    for split in SPLITS:
        tokens = np.concatenate(parts[split]) if parts[split] else np.empty(0, dtype)
        path = storage.join(task["pieces"], task["names"][split])
        write_token_file(path, tokens, tok.vocab_size, tok.eot_id)
        record[f"docs_{split}"] = docs[split]
        record[f"tokens_{split}"] = int(tokens.size)
    storage.write_text(
        storage.join(task["pieces"], task["names"]["record"]), json.dumps(record) + "\n"
    )
    return record


def _done(pieces: str, names: dict[str, str], key: dict[str, Any]) -> dict[str, Any] | None:
    path = storage.join(pieces, names["record"])
    if not storage.exists(path):
        return None
    try:
        record = json.loads(storage.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if any(record.get(k) != v for k, v in key.items()):
        return None
    if not all(storage.exists(storage.join(pieces, names[s])) for s in SPLITS):
        return None
    return record


def _pack(
    out_dir: str, split: str, pieces: list[str], shard_tokens: int, tok: Tokenizer
) -> list[ShardFile]:
    """Step 3 for one split: concatenate the pieces and cut into ``shard_tokens`` files."""
    files: list[ShardFile] = []
    buffer: list[np.ndarray] = []
    held = 0

    def flush(n: int) -> None:
        nonlocal buffer, held
        data = np.concatenate(buffer) if buffer else np.empty(0, dtype_for(tok.vocab_size))
        path = storage.join(out_dir, token_file_name(split, len(files)))
        files.append(write_token_file(path, data[:n], tok.vocab_size, tok.eot_id))
        rest = data[n:]
        buffer, held = ([rest] if rest.size else []), int(rest.size)

    for piece in pieces:
        tokens = np.asarray(open_token_file(piece).tokens)
        if tokens.size:
            buffer.append(tokens)
            held += int(tokens.size)
        while held >= shard_tokens:
            flush(shard_tokens)
    if held:
        flush(held)
    return files


def _remove_stale(out_dir: str, keep: set[str]) -> None:
    """Token files of an earlier, larger run that the new manifest does not list."""
    for name in storage.listdir(out_dir):
        if name.endswith(f".{FORMAT}") and name.split("-")[0] in SPLITS and name not in keep:
            storage.remove(storage.join(out_dir, name))


def _up_to_date(out_dir: str, source: Manifest, tok: Tokenizer, cfg: TokenizeConfig) -> bool:
    try:
        done = Manifest.load(out_dir)
    except ShardError:
        return False
    return (
        done.kind == KIND
        and done.extra.get("source_checksum") == source.checksum
        and done.extra.get("tokenizer_sha256") == tok.sha256
        and done.config == asdict(cfg)
    )


def tokenize_shards(
    shards_dir: str, out_dir: str, cfg: TokenizeConfig, progress: bool | None = None
) -> Manifest:
    """Tokenize every text shard of ``shards_dir`` into token shards in ``out_dir``.

    ``progress``: show a tqdm bar (``None``: only on a terminal).
    """
    from tqdm import tqdm

    source = Manifest.load(shards_dir, "text")
    source.verify(shards_dir, checksums=False)
    tok = prepare_tokenizer(shards_dir, out_dir, cfg)
    if _up_to_date(out_dir, source, tok, cfg):
        log.info("%s is up to date with %s", out_dir, shards_dir)
        return Manifest.load(out_dir)
    log.info("tokenizer: %r", tok)

    pieces = storage.join(out_dir, PIECES)
    records: dict[int, dict[str, Any]] = {}
    tasks = []
    for i, f in enumerate(source.files):
        names, key = _piece_names(i), _piece_key(f, tok, cfg)
        if (record := _done(pieces, names, key)) is not None:
            records[i] = record
            continue
        tasks.append(
            {
                "index": i,
                "source": storage.join(shards_dir, f.path),
                "tokenizer": storage.join(out_dir, TOKENIZER_FILE),
                "pieces": pieces,
                "names": names,
                "key": key,
            }
        )
    if records:
        log.info("%d of %d text shards already encoded", len(records), len(source.files))

    workers = min(cfg.workers or len(os.sched_getaffinity(0)), max(len(tasks), 1))
    bar = tqdm(
        total=len(source.files),
        initial=len(records),
        unit="shard",
        disable=None if progress is None else not progress,
    )
    bar.set_description("tokenize")
    mb = sum(r["text_bytes"] for r in records.values()) / 1e6
    if workers <= 1:
        _collect(((t, encode_shard(t)) for t in tasks), records, bar, mb)
    else:
        # spawn: no fork after pyarrow has started threads; a dead worker raises
        # BrokenProcessPool here instead of hanging the job.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = {pool.submit(encode_shard, t): t for t in tasks}
            _collect(((futures[f], f.result()) for f in as_completed(futures)), records, bar, mb)
    bar.close()

    storage.remove(storage.join(out_dir, MANIFEST))  # the old commit no longer holds
    files: list[ShardFile] = []
    for split in SPLITS:
        paths = [storage.join(pieces, _piece_names(i)[split]) for i in range(len(source.files))]
        files += _pack(out_dir, split, paths, cfg.shard_tokens, tok)
    _remove_stale(out_dir, {f.path for f in files})

    ordered = [records[i] for i in range(len(source.files))]
    counts = {
        "text_shards": len(source.files),
        "text_bytes": sum(r["text_bytes"] for r in ordered),
        "empty_docs": sum(r["empty_docs"] for r in ordered),
    }
    splits = {}
    for split in SPLITS:
        counts[f"docs_{split}"] = sum(r[f"docs_{split}"] for r in ordered)
        counts[f"tokens_{split}"] = sum(r[f"tokens_{split}"] for r in ordered)
        splits[split] = {
            "files": sum(f.path.startswith(f"{split}-") for f in files),
            "docs": counts[f"docs_{split}"],
            "tokens": counts[f"tokens_{split}"],
        }
    manifest = Manifest(
        kind=KIND,
        format=FORMAT,
        files=files,
        counts=counts,
        config=asdict(cfg),
        extra={
            "vocab_size": tok.vocab_size,
            "eot_id": tok.eot_id,
            "dtype": dtype_for(tok.vocab_size).name,
            "tokenizer": TOKENIZER_FILE,
            "tokenizer_sha256": tok.sha256,
            "engine": tok.engine,
            "layout": "<|endoftext|> before each document",
            "splits": splits,
            "source": record_path(shards_dir, out_dir),
            "source_checksum": source.checksum,
        },
    )
    manifest.save(out_dir)
    storage.remove(pieces)
    log.info(
        "tokenized %d docs (%.1f MB): %d train / %d val tokens in %d files",
        counts["docs_train"] + counts["docs_val"],
        counts["text_bytes"] / 1e6,
        counts["tokens_train"],
        counts["tokens_val"],
        len(files),
    )
    return manifest


def _collect(
    results: Iterator[tuple[dict[str, Any], dict[str, Any]]],
    records: dict[int, dict[str, Any]],
    bar: Any,
    mb: float,
) -> None:
    for task, record in results:
        records[task["index"]] = record
        mb += record["text_bytes"] / 1e6
        bar.set_postfix_str(f"{mb:.1f} MB")
        bar.update()

"""Token shards: flat, memory-mappable files of token ids, and the directory that lists them.

A token shard (``RUN/tokens/train-00000.bin``, ``val-00000.bin``, ...) is a 256-byte
little-endian header followed by ``n_tokens`` ids, so a trainer can ``np.memmap`` it and draw
batches without reading it into RAM:

====== ======= ===========================================================
offset type    field
====== ======= ===========================================================
0      8 bytes magic ``b"WTTOKENS"``
8      u32     format version (1)
12     u32     dtype code: 1 = uint16, 2 = uint32
16     u64     n_tokens
24     u32     vocab_size
28     u32     eot_id (``<|endoftext|>``)
32     ...     zero padding up to byte 256
256    n x     the tokens, little-endian
====== ======= ===========================================================

Ids are uint16 while the vocabulary fits (<= 65536 ids), else uint32. Documents are laid out as
GPT-2 and nanoGPT do: ``<|endoftext|>`` *before* each document, so every document is preceded
by the separator and a window that starts at an EOT starts at a document boundary.

The directory's ``_manifest.json`` (a :class:`foundation.shards.Manifest` of kind
``"tokens"``) is the commit record: it lists each file with ``rows`` = its token count, and
``extra`` holds ``vocab_size``, ``eot_id``, ``dtype``, ``tokenizer`` (the file name of the
saved tokenizer, ``tokenizer.json``) and per-split counts. Readers open files through
:class:`TokenShards`, which checks every file against the manifest and its own header before
handing out memmaps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import pyarrow.fs as pafs

from foundation import storage
from foundation.shards import MANIFEST, Manifest, ShardError, ShardFile

MAGIC = b"WTTOKENS"
VERSION = 1
HEADER_BYTES = 256
KIND = "tokens"
FORMAT = "bin"
TOKENIZER_FILE = "tokenizer.json"
SPLITS = ("train", "val")

_HEADER = struct.Struct("<8sIIQII")
_DTYPES: dict[int, np.dtype] = {1: np.dtype("<u2"), 2: np.dtype("<u4")}
_DTYPE_NAMES = {1: "uint16", 2: "uint32"}


class TokenShardError(ShardError):
    """A token shard is missing, truncated, corrupt or disagrees with its manifest."""


def dtype_code(vocab_size: int) -> int:
    """1 (uint16) while every id fits in 16 bits, else 2 (uint32)."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return 1 if vocab_size <= 1 << 16 else 2


def dtype_for(vocab_size: int) -> np.dtype:
    return _DTYPES[dtype_code(vocab_size)]


def token_file_name(split: str, index: int) -> str:
    """``train-00000.bin``: fixed names, so a rerun finds what an earlier run wrote."""
    return f"{split}-{index:05d}.{FORMAT}"


def _header(n_tokens: int, code: int, vocab_size: int, eot_id: int) -> bytes:
    head = _HEADER.pack(MAGIC, VERSION, code, n_tokens, vocab_size, eot_id)
    return head + b"\0" * (HEADER_BYTES - len(head))


def write_token_file(path: str, tokens: np.ndarray, vocab_size: int, eot_id: int) -> ShardFile:
    """Write ``tokens`` as one token shard, atomically; returns its manifest entry.

    The ids are checked against ``vocab_size`` (an id out of range would index past the
    embedding table at training time, far from its cause) and stored in the narrowest dtype.
    """
    if not 0 <= eot_id < vocab_size:
        raise ValueError(f"{path}: eot_id={eot_id} is outside the vocabulary [0, {vocab_size})")
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"{path}: tokens must be one-dimensional, got shape {tokens.shape}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(
            f"{path}: token ids span [{int(tokens.min())}, {int(tokens.max())}], "
            f"outside the vocabulary [0, {vocab_size})"
        )
    code = dtype_code(vocab_size)
    data = np.ascontiguousarray(tokens, dtype=_DTYPES[code])
    with storage.atomic_output(path) as out:
        out.write(_header(int(data.size), code, vocab_size, eot_id))
        out.write(memoryview(data).cast("B"))
    return ShardFile(
        path=path.rsplit("/", 1)[-1],
        rows=int(data.size),
        bytes=storage.size(path),
        sha256=storage.sha256_file(path),
    )


@dataclass(frozen=True)
class TokenFile:
    """One opened token shard; ``tokens`` is a read-only view past the header."""

    path: str
    tokens: np.ndarray  # np.memmap for local files
    vocab_size: int
    eot_id: int
    n_tokens: int

    @property
    def dtype(self) -> str:
        return str(self.tokens.dtype.name)


def read_header(path: str) -> tuple[int, int, int, int]:
    """(dtype code, n_tokens, vocab_size, eot_id) after checking magic, version and size."""
    fs, p = storage.resolve(path)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        raise TokenShardError(f"{path}: token shard is missing")
    if info.size < HEADER_BYTES:
        raise TokenShardError(
            f"{path}: {info.size} bytes, shorter than the {HEADER_BYTES}-byte header (truncated)"
        )
    with fs.open_input_file(p) as f:
        head = f.read(HEADER_BYTES)
    magic, version, code, n_tokens, vocab_size, eot_id = _HEADER.unpack_from(head)
    if magic != MAGIC:
        raise TokenShardError(f"{path}: not a token shard (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise TokenShardError(
            f"{path}: token shard format version {version}; this webtext reads {VERSION}"
        )
    if code not in _DTYPES:
        raise TokenShardError(f"{path}: unknown dtype code {code} (1=uint16, 2=uint32)")
    if vocab_size == 0 or eot_id >= vocab_size:
        raise TokenShardError(f"{path}: header has eot_id={eot_id} with vocab_size={vocab_size}")
    expected = HEADER_BYTES + n_tokens * _DTYPES[code].itemsize
    if info.size != expected:
        raise TokenShardError(
            f"{path}: {info.size} bytes, header says {n_tokens} tokens = {expected} bytes "
            f"({'truncated' if info.size < expected else 'trailing data'})"
        )
    return code, n_tokens, vocab_size, eot_id


def open_token_file(path: str) -> TokenFile:
    """Open a token shard read-only: memory-mapped when local, read into memory otherwise."""
    code, n_tokens, vocab_size, eot_id = read_header(path)
    dtype = _DTYPES[code]
    fs, p = storage.resolve(path)
    if isinstance(fs, pafs.LocalFileSystem):
        if n_tokens:
            tokens = np.memmap(p, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(n_tokens,))
        else:  # numpy cannot map zero bytes
            tokens = np.empty(0, dtype=dtype)
    else:
        data = storage.read_bytes(path)[HEADER_BYTES:]
        tokens = np.frombuffer(data, dtype=dtype)
    tokens.flags.writeable = False
    return TokenFile(path, tokens, vocab_size, eot_id, n_tokens)


@dataclass
class TokenShards:
    """The token files of one split of a token directory, checked against the manifest.

    Opening verifies every listed file of the split: present, the manifest's byte size, a valid
    header whose token count, vocabulary and EOT id agree with the manifest (and the sha256
    when ``checksums``). ``files`` are the opened shards in manifest order.
    """

    directory: str
    split: str = "train"
    checksums: bool = False
    manifest: Manifest = field(init=False)
    files: list[TokenFile] = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.manifest = Manifest.load(self.directory)
        except ShardError as e:
            raise TokenShardError(str(e)) from e
        where = storage.join(self.directory, MANIFEST)
        if self.manifest.kind != KIND:
            raise TokenShardError(
                f"{where}: a {self.manifest.kind!r} manifest, not a token directory; "
                "run `webtext tokenize` on text shards first"
            )
        extra = self.manifest.extra
        try:
            vocab_size, eot_id = int(extra["vocab_size"]), int(extra["eot_id"])
        except (KeyError, TypeError, ValueError) as e:
            raise TokenShardError(f"{where}: extra lacks vocab_size/eot_id ({e!r})") from e
        entries = [f for f in self.manifest.files if f.path.startswith(f"{self.split}-")]
        try:
            Manifest(KIND, FORMAT, files=entries).verify(self.directory, self.checksums)
        except ShardError as e:
            raise TokenShardError(str(e)) from e
        self.files = []
        for entry in entries:
            tf = open_token_file(storage.join(self.directory, entry.path))
            if (tf.n_tokens, tf.vocab_size, tf.eot_id) != (entry.rows, vocab_size, eot_id):
                raise TokenShardError(
                    f"{tf.path}: header (n_tokens={tf.n_tokens}, vocab_size={tf.vocab_size}, "
                    f"eot_id={tf.eot_id}) disagrees with the manifest (n_tokens={entry.rows}, "
                    f"vocab_size={vocab_size}, eot_id={eot_id})"
                )
            self.files.append(tf)

    @property
    def vocab_size(self) -> int:
        return int(self.manifest.extra["vocab_size"])

    @property
    def eot_id(self) -> int:
        return int(self.manifest.extra["eot_id"])

    @property
    def tokenizer_path(self) -> str:
        return storage.join(self.directory, self.manifest.extra.get("tokenizer", TOKENIZER_FILE))

    @property
    def memmaps(self) -> list[np.ndarray]:
        return [f.tokens for f in self.files]

    @property
    def n_tokens(self) -> int:
        return sum(f.n_tokens for f in self.files)

    def __len__(self) -> int:
        return len(self.files)

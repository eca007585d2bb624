"""Paths that may be local or on object storage, through pyarrow's filesystems.

A run directory may be ``runs/x`` or ``s3://bucket/runs/x``: every stage reads and writes
through these helpers, so no stage assumes a local disk. Writes go to a temporary name and are
renamed when complete, so a reader never sees a half-written file that looks whole.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import pyarrow.fs as pafs

from foundation.errors import WebtextError


class StorageError(WebtextError, OSError):
    """A directory cannot be made: a file is in the way, no permission, an unreachable bucket."""


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and in-filesystem path of a local path or a URI (``s3://``, ``gs://``)."""
    if "://" in path and not path.startswith("file://"):
        return pafs.FileSystem.from_uri(path)
    local = path.removeprefix("file://")
    return pafs.LocalFileSystem(), os.path.abspath(local)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def parent(path: str) -> str:
    """The directory holding ``path`` (``.`` for a bare name), local or URI alike."""
    head, sep, _ = path.rstrip("/").rpartition("/")
    return head if sep and head else ("/" if sep else ".")


def expand_files(spec: str, suffixes: tuple[str, ...]) -> list[str] | None:
    """The files ``spec`` names, sorted: itself, a directory's files ending in one of
    ``suffixes`` (recursively) or a glob's matches (``**`` recursive); None if it names
    nothing. URIs keep their scheme."""
    import fnmatch

    fs, p = resolve(spec)
    if any(ch in spec for ch in "*?["):
        base = p
        while any(ch in base for ch in "*?["):
            base = base.rsplit("/", 1)[0]
        infos = fs.get_file_info(pafs.FileSelector(base, recursive="**" in p))
        files = [i.path for i in infos if i.is_file and fnmatch.fnmatch(i.path, p)]
    elif fs.get_file_info(p).type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(p, recursive=True))
        files = [i.path for i in infos if i.is_file and i.path.endswith(suffixes)]
    elif fs.get_file_info(p).type == pafs.FileType.File:
        files = [p]
    else:
        return None
    prefix = (
        spec[: spec.index("://") + 3] if "://" in spec and not spec.startswith("file://") else ""
    )
    return sorted(prefix + f for f in files)


def exists(path: str) -> bool:
    fs, p = resolve(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def is_dir(path: str) -> bool:
    fs, p = resolve(path)
    return fs.get_file_info(p).type == pafs.FileType.Directory


def makedirs(path: str) -> None:
    fs, p = resolve(path)
    _create_dir(fs, p, path)


def _create_dir(fs: pafs.FileSystem, p: str, path: str) -> None:
    try:
        fs.create_dir(p, recursive=True)
    except OSError as e:
        raise StorageError(f"{path}: cannot create the directory ({e})") from e


def listdir(path: str) -> list[str]:
    """Base names of the entries of a directory, sorted; empty if it does not exist."""
    fs, p = resolve(path)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(p, recursive=False))
    return sorted(i.base_name for i in infos)


def size(path: str) -> int:
    fs, p = resolve(path)
    return fs.get_file_info(p).size


def remove(path: str) -> None:
    fs, p = resolve(path)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(p)
    elif info.type == pafs.FileType.File:
        fs.delete_file(p)


def read_bytes(path: str) -> bytes:
    """The file's bytes as stored (pyarrow would otherwise decompress ``.gz``/``.zst``)."""
    fs, p = resolve(path)
    with fs.open_input_stream(p, compression=None) as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


@contextmanager
def atomic_output(path: str) -> Iterator[IO[bytes]]:
    """Open ``path`` for writing under a temporary name; rename into place only on success."""
    fs, p = resolve(path)
    parent_p, _, name = p.rpartition("/")
    _create_dir(fs, parent_p, parent(path))
    # A dot name: readers of the directory (pyarrow.dataset, Spark, datasets) skip it, even
    # when a killed job leaves it behind.
    tmp = f"{parent_p}/.{name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(tmp) as f:
            yield f
        fs.move(tmp, p)
    except BaseException:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)
        raise


def write_bytes(path: str, data: bytes) -> None:
    with atomic_output(path) as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    fs, p = resolve(path)
    h = hashlib.sha256()
    with fs.open_input_stream(p, compression=None) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()

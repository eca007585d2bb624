"""Users' own text and JSON Lines files (test sets, evaluation tasks), read through
:mod:`foundation.storage` (local paths and URIs alike), with errors that name the file and line.

Each caller passes its own error class, so that a bad test set is a ContaminationInputError
and a bad task file an EvalInputError, with the same wording.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from foundation import storage


def read_utf8(path: str | os.PathLike, error: type[Exception]) -> str:
    """The whole file as text."""
    try:
        return storage.read_bytes(os.fspath(path)).decode("utf-8")
    except FileNotFoundError as e:
        raise error(f"{path}: no such file") from e
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text ({e})") from e
    except OSError as e:
        raise error(f"{path}: cannot read ({e})") from e


def json_objects(
    path: str | os.PathLike, error: type[Exception]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a line that is not a JSON object
    raises ``error`` naming the file and line."""
    return json_lines(read_utf8(path, error), path, error)


def json_lines(
    text: str, path: str | os.PathLike, error: type[Exception], first_line: int = 1
) -> Iterator[tuple[int, dict[str, Any]]]:
    """:func:`json_objects` over ``text``, a piece of ``path`` that starts at ``first_line``."""
    for lineno, line in enumerate(text.splitlines(), first_line):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise error(f"{path}:{lineno}: expected a JSON object per line, got {obj!r:.60}")
        yield lineno, obj

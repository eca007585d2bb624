"""Clean/dirty flags for evaluation examples, from the training run's contamination filter.

``--contamination`` names any of:

- a saved filter file (``bloom.bin``, what ``webtext contamination check`` writes);
- a report directory holding ``bloom.bin`` (``RUN/contamination``);
- a run directory (``RUN``): ``RUN/contamination/bloom.bin``, else one is built from
  ``RUN/shards``;
- a shard directory, or training files/folders: a filter is built from them.

An example is dirty when any of its normalised ``n``-grams is in the filter (GPT-3 Appendix C
counted an example dirty on any 13-gram; GPT-2's Table 6 used 8-grams, our default). A saved
filter holds one ``n``; asking for another rebuilds from the run's shards when they are there,
and fails otherwise (a filter of 8-grams cannot answer for 13-grams).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contamination.api import FILTER_FILE, build_filter, flag_examples
from contamination.bloom import MAGIC, BloomFilter
from foundation.config import ContaminationConfig
from foundation.errors import WebtextError
from foundation.shards import MANIFEST

log = logging.getLogger(__name__)


class ContaminationSourceError(WebtextError, ValueError):
    """``--contamination`` names nothing a filter can be loaded or built from."""


def _saved(path: Path) -> Path | None:
    """The saved filter ``path`` is or holds (a file starting with the filter's magic)."""
    for candidate in (path, path / FILTER_FILE, path / "contamination" / FILTER_FILE):
        if candidate.is_file():
            with open(candidate, "rb") as f:
                if f.read(len(MAGIC)) == MAGIC:
                    return candidate
    return None


def load_filter(source: str | Path, n: int | None = None) -> tuple[BloomFilter, dict[str, Any]]:
    """The filter ``source`` names (see the module docstring) and where it came from."""
    path = Path(source)
    if not path.exists():
        raise ContaminationSourceError(f"{path}: no such filter, run or training data")
    saved = _saved(path)
    shards = path / "shards" if (path / "shards" / MANIFEST).is_file() else None
    if saved is not None:
        bloom = BloomFilter.load(str(saved))
        if n is None or bloom.n == n:
            return bloom, {"filter": str(saved), "n": bloom.n, "built": False, **_meta(bloom)}
        if shards is None:
            raise ContaminationSourceError(
                f"{saved}: holds {bloom.n}-grams, {n}-grams were asked for; pass the run or its "
                f"shard directory to build a {n}-gram filter, or use n={bloom.n}"
            )
        log.info("%s holds %d-grams; building a %d-gram filter from %s", saved, bloom.n, n, shards)
    train = shards or path
    k = n or ContaminationConfig().n
    bloom = build_filter(str(train), ContaminationConfig(n=k))
    return bloom, {"filter": None, "train": str(train), "n": k, "built": True, **_meta(bloom)}


def _meta(bloom: BloomFilter) -> dict[str, Any]:
    return {
        "manifest_checksum": bloom.meta.get("manifest_checksum"),
        "items": bloom.meta.get("items"),
        "estimated_fp_rate": bloom.estimated_fp_rate(),
    }


def dirty_flags(bloom: BloomFilter | None, texts: Sequence[str]) -> list[dict[str, Any]]:
    """Per text: ``dirty``, n-grams and hits (all clean, no counts, without a filter)."""
    if bloom is None:
        return [{"dirty": False, "ngrams": None, "hits": None} for _ in texts]
    return [
        {"dirty": f.dirty, "ngrams": f.ngrams, "hits": f.hits} for f in flag_examples(bloom, texts)
    ]

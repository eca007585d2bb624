"""What near-dedup keeps of a document: its MinHash signature and shingle set, by id.

    dict (TEXT_SCHEMA row) -> Sketch        (documents without tokens have none)

A Sketch is small next to its document (4 bytes per distinct shingle and per permutation), so
candidate pairs are verified and clusters resolved on sketches, and the text travels once.
Sketches of a corpus persist in the index (``dedup/index.py``) with ``existing=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dedup.minhash import Banding, band_hashes, shingle_hashes, signatures
from foundation.config import DedupConfig


@dataclass(frozen=True)
class Sketch:
    id: str
    signature: bytes  # num_perm little-endian uint32
    shingles: bytes  # sorted distinct little-endian uint32 shingle hashes
    existing: bool = False  # from the persisted index of an earlier run
    bands: tuple[int, ...] = ()  # band hashes, when already known (read from the index)

    def signature_array(self) -> np.ndarray:
        return np.frombuffer(self.signature, dtype="<u4")

    def shingle_array(self) -> np.ndarray:
        return np.frombuffer(self.shingles, dtype="<u4")

    def band_keys(self, banding: Banding) -> list[int]:
        return list(self.bands) if self.bands else band_hashes(self.signature_array(), banding)


def sketch_batch(docs: Iterable[dict[str, Any]], cfg: DedupConfig) -> Iterator[Sketch]:
    """Sketches of a batch of documents: one vectorised signature computation for the batch."""
    docs = list(docs)
    shingles = [shingle_hashes(d["text"] or "", cfg.ngram) for d in docs]
    keep = [i for i, s in enumerate(shingles) if len(s)]
    sigs = signatures([shingles[i] for i in keep], cfg.num_perm, cfg.seed)
    for row, i in enumerate(keep):
        yield Sketch(
            id=docs[i]["id"],
            signature=sigs[row].astype("<u4").tobytes(),
            shingles=shingles[i].astype("<u4").tobytes(),
        )

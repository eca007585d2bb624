"""Which document of a duplicate cluster survives, and what it inherits.

One deterministic rule for exact and near duplicates alike: highest karma, then the earliest
submission, then the smallest id. The survivor carries every submission of its cluster (so its
subreddits and scores are not lost) and the cluster's aggregate karma stays its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def survivor_key(doc: dict[str, Any]) -> tuple[int, int, str]:
    """Sort key: the survivor sorts first."""
    return (-int(doc["karma"]), int(doc["created_utc"]), str(doc["id"]))


def merge_cluster(docs: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return (survivor with the cluster's submissions, the removed documents)."""
    ordered = sorted(docs, key=survivor_key)
    if not ordered:
        raise ValueError("merge_cluster needs at least one document")
    keep, removed = ordered[0], ordered[1:]
    if not removed:
        return keep, []
    seen: dict[str, dict[str, Any]] = {}
    for doc in ordered:
        for sub in doc["submissions"]:
            seen.setdefault(sub["id"], sub)
    submissions = sorted(seen.values(), key=lambda s: (s["created_utc"], s["id"]))
    return {**keep, "submissions": submissions}, removed

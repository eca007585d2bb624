"""Gathering a PCollection into one element and spreading elements by key, on any runner.

Side inputs (``AsSingleton``, ``AsList``, ``AsDict``) are the usual way to hand a total or a
list to a later step, but Beam's DaskRunner computes a side input inside *each* task that reads
it, so a partitioned job recomputes it once per partition and its task graph explodes. A
GroupByKey is a plain shuffle on every runner: :class:`Gather` brings small items (file names,
counts) together under one key, and :class:`Spread` deals keyed work back out (Beam's
``Reshuffle``, which Dask replaces by a no-op, would leave it in the gathering task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam

_ALL = "all"


def _under_one_key(item: Any) -> tuple[str, Any]:
    return _ALL, item


def _as_list(kv: tuple[str, Iterable[Any]]) -> list[Any]:
    return list(kv[1])


def _first(item: Any) -> Any:
    return item[0]


def _keyed(item: Any, key: Callable[[Any], Any]) -> tuple[Any, Any]:
    return key(item), item


def _values(kv: tuple[Any, Iterable[Any]]) -> Iterable[Any]:
    return kv[1]


class Gather(beam.PTransform):
    """PCollection[X] -> PCollection[list[X]]: one list of every element (none when empty)."""

    def expand(self, items):
        return (
            items
            | "One" >> beam.Map(_under_one_key)
            | "Group" >> beam.GroupByKey()
            | "List" >> beam.Map(_as_list)
        )


class Spread(beam.PTransform):
    """PCollection[X] -> the same elements, dealt out to workers by ``key(x)`` (by default
    ``x[0]``: the key of a pair)."""

    def __init__(self, key: Callable[[Any], Any] = _first):
        super().__init__()
        self.key = key

    def expand(self, items):
        return (
            items
            | "Key" >> beam.Map(_keyed, self.key)
            | "Group" >> beam.GroupByKey()
            | "Each" >> beam.FlatMap(_values)
        )

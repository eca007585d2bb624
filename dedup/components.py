"""Connected components of the duplicate graph, distributed: alternating large-star/small-star.

    PCollection[(str, str)] edges  ->  PCollection[(node, component label)]

The label of a component is its smallest node id, so labels do not depend on how the graph was
partitioned or in which order edges arrived: 1 or many workers give identical results. Every
round is one GroupByKey over the current edges (Kiveris et al., "Connected Components in
MapReduce and Beyond", SoCC 2014); no step holds more than one node's neighbourhood, never the
whole edge list. A Beam graph cannot loop, so ``rounds`` (large-star + small-star) are unrolled;
after them a check step confirms that the graph has become stars around each component's
minimum and fails the pipeline, naming ``dedup.cc_rounds``, if it has not. Rounds after
convergence change nothing and cost one shuffle of the (few) clustered nodes each.

Edges are kept as (larger, smaller) pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam

from foundation.errors import WebtextError


class ComponentsNotConverged(WebtextError, RuntimeError):
    """The unrolled rounds were too few for this graph."""


def _ordered(edge: tuple[str, str]) -> Iterator[tuple[str, str]]:
    a, b = edge
    if a != b:
        yield (a, b) if a > b else (b, a)


def _both_directions(edge: tuple[str, str]) -> Iterator[tuple[str, str]]:
    a, b = edge
    yield a, b
    yield b, a


def _large_star(node: str, neighbours: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Connect every larger neighbour of ``node`` to the smallest node of its neighbourhood."""
    nbrs = set(neighbours)
    low = min(nbrs | {node})
    for v in nbrs:
        if v > node:
            yield v, low


def _small_star(node: str, smaller: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Connect ``node`` and its smaller neighbours to the smallest of them."""
    nbrs = set(smaller) | {node}
    low = min(nbrs)
    for v in nbrs:
        if v != low:
            yield v, low


def _label(item: tuple[str, Iterable[str]], rounds: int) -> tuple[str, str]:
    """Converged: a node is a centre (no smaller neighbour) or a leaf with one smaller one."""
    node, neighbours = item
    nbrs = set(neighbours)
    smaller = [v for v in nbrs if v < node]
    if not smaller:
        return node, node
    if len(nbrs) != 1:
        raise ComponentsNotConverged(
            f"duplicate clusters did not converge in dedup.cc_rounds={rounds} rounds (node "
            f"{node} still has {len(nbrs)} neighbours); raise dedup.cc_rounds"
        )
    return node, smaller[0]


class ConnectedComponents(beam.PTransform):
    """PCollection[(a, b)] undirected edges -> PCollection[(node, smallest id in its component)]."""

    def __init__(self, rounds: int):
        super().__init__()
        if rounds <= 0:
            raise ValueError(f"rounds must be positive, got {rounds}")
        self.rounds = rounds

    def expand(self, edges):
        current = edges | "Order" >> beam.FlatMap(_ordered)
        for i in range(self.rounds):
            current = (
                current
                | f"LargeStarEmit{i}" >> beam.FlatMap(_both_directions)
                | f"LargeStarGroup{i}" >> beam.GroupByKey()
                | f"LargeStar{i}" >> beam.FlatMapTuple(_large_star)
                | f"SmallStarGroup{i}" >> beam.GroupByKey()
                | f"SmallStar{i}" >> beam.FlatMapTuple(_small_star)
            )
        return (
            current
            | "LabelEmit" >> beam.FlatMap(_both_directions)
            | "LabelGroup" >> beam.GroupByKey()
            | "Label" >> beam.Map(_label, self.rounds)
        )

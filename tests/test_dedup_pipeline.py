"""NearDedup and connected components in real Beam pipelines (in-process FnApiRunner)."""

from __future__ import annotations

import itertools
import json
import pickle
import random

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from dedup.components import ConnectedComponents
from dedup.minhash import jaccard, shingle_hashes
from foundation.config import DedupConfig
from foundation.records import Drop
from tests.dedup_docs import doc, edit, prose


def _options() -> PipelineOptions:
    return PipelineOptions(["--runner=FnApiRunner"])


def _dump(items: list, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(items, f)


def _collect(pcoll, path, label: str = "Collect") -> None:
    """Write a PCollection's elements to ``path`` (the runner pickles DoFns: no shared lists)."""
    _ = pcoll | f"{label}List" >> beam.combiners.ToList() | f"{label}Dump" >> beam.Map(_dump, path)


def _load(path) -> list:
    with open(path, "rb") as f:
        return pickle.load(f)


def _blocks(start: int, stop: int) -> str:
    return " ".join(prose(1000 + i, 50) for i in range(start, stop))


def _components_reference(edges):
    parent: dict[str, str] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def test_components_label_every_node_with_its_component_minimum():
    rng = random.Random(3)
    nodes = [f"n{i:04d}" for i in range(300)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(220)]
    path = [(f"p{i:03d}", f"p{i + 1:03d}") for i in range(100)]  # a long chain, shuffled ids
    shuffled = [f"q{x:03d}" for x in rng.sample(range(100), 100)]
    chain = list(itertools.pairwise(shuffled))
    all_edges = [e for e in edges + path + chain if e[0] != e[1]]
    expected = sorted(_components_reference(all_edges).items())
    with beam.Pipeline(options=_options()) as p:
        labels = p | beam.Create(all_edges) | ConnectedComponents(rounds=12)
        assert_that(labels, equal_to(expected))


def test_components_fail_loudly_when_rounds_are_too_few():
    path = [(f"p{i:03d}", f"p{i + 1:03d}") for i in range(200)]
    # Beam re-raises the DoFn's error wrapped in its own exception type.
    with (
        pytest.raises(Exception, match=r"dedup\.cc_rounds"),
        beam.Pipeline(options=_options()) as p,
    ):
        _ = p | beam.Create(path) | ConnectedComponents(rounds=1)


def _corpus() -> list[dict]:
    base = prose(1)
    cjk = "我们今天去公园玩了很久然后回家吃饭晚上看了一部很有意思的电影大家都很开心" * 3
    return [
        # exact duplicates (near dedup alone also removes them: Jaccard 1)
        doc("x1", prose(2), karma=4),
        doc("x2", prose(2), karma=4, created=900),  # earlier: survives the tie on karma
        # near duplicates: n2 has the higher karma
        doc("n1", base, karma=3, sub="s_n1"),
        doc("n2", edit(base, 0.02, 1), karma=9, sub="s_n2"),
        # a chain: A~B and B~C, but A and C are not similar enough
        doc("ca", _blocks(0, 10)),
        doc("cb", _blocks(1, 11)),
        doc("cc", _blocks(2, 12)),
        # distinct documents
        doc("d1", prose(3)),
        doc("d2", prose(4)),
        # empty and one-word documents
        doc("e1", ""),
        doc("e2", ""),
        doc("w1", "hello"),
        doc("w2", "Hello!"),
        doc("w3", "world"),
        # non-Latin near duplicates and a distinct one
        doc("z1", cjk),
        doc("z2", cjk.replace("电影", "电视", 1)),
        doc("z3", "完全不同的内容讲述了另外一个故事关于山川河流和城市的变化以及人们的生活" * 3),
    ]


def test_chain_fixture_is_transitive_only():
    a, b, c = (shingle_hashes(_blocks(i, i + 10), 5) for i in range(3))
    assert jaccard(a, b) >= 0.75 and jaccard(b, c) >= 0.75 and jaccard(a, c) < 0.7


def test_near_dedup_finds_exact_near_transitive_and_keeps_distinct(tmp_path):
    with beam.Pipeline(options=_options()) as p:
        near = p | beam.Create(_corpus()) | "NearDedup" >> DedupRun()
        _collect(near.documents, tmp_path / "out.pkl")
        _collect(near.report(str(tmp_path)), tmp_path / "report.pkl", "Report")
    out = _load(tmp_path / "out.pkl")
    (summary,) = _load(tmp_path / "report.pkl")
    assert summary[0] == "dedup_report" and summary[1]["documents_out"] == 11
    docs = {d["id"]: d for d in out if isinstance(d, dict) and "id" in d}
    drops = {d.where: d for d in out if isinstance(d, Drop)}
    assert set(docs) == {"x2", "n2", "ca", "d1", "d2", "e1", "e2", "w1", "w3", "z1", "z3"}
    assert set(drops) == {"x1", "n1", "cb", "cc", "w2", "z2"}
    assert {d.reason for d in drops.values()} == {"dedup.near"}
    assert drops["n1"].detail.startswith("kept=n2 jaccard=0.")
    assert drops["cc"].detail.startswith("kept=ca ")  # removed in favour of a non-neighbour
    # The survivor carries its cluster's submissions.
    assert {s["id"] for s in docs["n2"]["submissions"]} == {"s_n1", "s_n2"}
    assert docs["n2"]["text"] == edit(prose(1), 0.02, 1)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["documents_in"] == 17 and report["documents_out"] == 11
    assert report["removed"]["near"] == 6 and report["removed"]["identical_shingles"] == 2
    assert report["documents_without_tokens"] == 2
    assert report["cluster_sizes"] == {"2": 4, "3": 1}
    assert report["params"]["bands"] == 20 and report["params"]["rows"] == 6
    assert 1 <= len(report["examples"]) <= 10
    assert report["examples"][0]["jaccard"] <= report["examples"][-1]["jaccard"]
    assert "Jaccard" in (tmp_path / "report.md").read_text()


class DedupRun(beam.PTransform):
    """NearDedup with the default config, under one label."""

    def expand(self, docs):
        from dedup.transforms import NearDedup

        return docs | NearDedup(DedupConfig())


def test_estimate_verification_agrees_on_clear_cases(tmp_path):
    from dedup.transforms import NearDedup

    corpus = [d for d in _corpus() if d["id"] in {"n1", "n2", "d1", "d2"}]
    with beam.Pipeline(options=_options()) as p:
        near = p | beam.Create(corpus) | NearDedup(DedupConfig(verify="estimate"))
        _collect(near.documents, tmp_path / "out.pkl")
    out = _load(tmp_path / "out.pkl")
    assert sorted(d.where for d in out if isinstance(d, Drop)) == ["n1"]

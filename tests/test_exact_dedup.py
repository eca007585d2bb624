"""Exact dedup: what counts as the same text, the survivor, merged submissions, determinism."""

from __future__ import annotations

import random

import apache_beam as beam
import pytest
import xxhash
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from dedup.exact import EXACT, ExactDedup, resolve_group
from foundation.records import Drop
from pipeline.text import content_hash, count_words, normalize_for_hash

ARTICLE = "The committee met on Tuesday.\nIt approved the budget, 7 votes to 2."


@pytest.mark.parametrize(
    "variant",
    [
        ARTICLE,
        "  The committee met on Tuesday. It approved the budget, 7 votes to 2.  ",
        "THE COMMITTEE MET ON TUESDAY.\n\n\tIt approved the budget, 7 votes to 2.",
        "The committee met on Tuesday —\nit approved the budget: “7 votes to 2”!",
        "The committee met on Tuesday. It approved the budget, ７ votes to ２.",  # full width
        "The\u00a0committee met on Tuesday.\r\nIt approved the budget,\u20097 votes to 2.",
    ],
)
def test_layout_case_punctuation_and_width_do_not_count(variant):
    assert content_hash(variant) == content_hash(ARTICLE)


@pytest.mark.parametrize(
    "other",
    [
        "The committee met on Wednesday. It approved the budget, 7 votes to 2.",
        "The committee met on Tuesday. It approved the budget, 7 votes to 3.",
        "The committee met on Tuesday. It approved the budget 7 to 2.",
        "The committee met Tuesday. It approved the budget, 7 votes to 2.",
    ],
)
def test_any_changed_word_counts(other):
    assert content_hash(other) != content_hash(ARTICLE)


def test_normal_form_and_hash_are_stable():
    assert (
        normalize_for_hash("ＦＵＬＬ width ﬁne Straße, isn't it?")
        == "full width fine strasse isn t it"
    )
    # pinned: a change here changes every content hash in existing shards
    assert content_hash("Hello, World!") == "df8d09e93f874900a99b8775cc15b6c7"
    assert content_hash("Hello, World!") == xxhash.xxh3_128_hexdigest(b"hello world")
    assert count_words(" two\twords\n") == 2


def doc(id: str, text: str, karma: int, created: int, subs: list[tuple[str, int]]) -> dict:
    return {
        "id": id,
        "text": text,
        "karma": karma,
        "created_utc": created,
        "content_hash": content_hash(text),
        "submissions": [
            {"id": s, "subreddit": "news", "score": score, "created_utc": created + i}
            for i, (s, score) in enumerate(subs)
        ],
    }


DOCS = [
    doc("a", ARTICLE, karma=5, created=100, subs=[("s1", 5)]),
    doc("b", ARTICLE.upper(), karma=40, created=300, subs=[("s2", 40)]),
    doc(
        "c", "  " + ARTICLE.replace("\n", " "), karma=40, created=200, subs=[("s3", 30), ("s4", 10)]
    ),
    doc("d", "A different story altogether.", karma=3, created=50, subs=[("s5", 3)]),
    doc("e", "Tied karma and time break on the id.", karma=9, created=10, subs=[("s6", 9)]),
    doc("f", "tied karma and time break on the ID", karma=9, created=10, subs=[("s7", 9)]),
]


def test_survivor_inherits_the_cluster_submissions():
    out = list(resolve_group(("h", [DOCS[0], DOCS[1], DOCS[2]])))
    survivor, *drops = out
    # karma 40 ties between b and c; c was posted earlier
    assert survivor["id"] == "c" and survivor["karma"] == 40 and survivor["text"] == DOCS[2]["text"]
    assert [s["id"] for s in survivor["submissions"]] == ["s1", "s3", "s4", "s2"]
    assert drops == [
        Drop(EXACT, where=d, detail="c", id=d, url=DOCS[i].get("url", ""), kept="c")
        for i, d in ((1, "b"), (0, "a"))
    ]


def _summary(element: dict | Drop) -> tuple:
    if isinstance(element, Drop):
        return (element.reason, element.where, element.detail)
    return ("doc", element["id"], tuple(s["id"] for s in element["submissions"]))


EXPECTED = [
    ("doc", "c", ("s1", "s3", "s4", "s2")),
    (EXACT, "a", "c"),
    (EXACT, "b", "c"),
    ("doc", "d", ("s5",)),
    ("doc", "e", ("s6", "s7")),
    (EXACT, "f", "e"),
    ("extract.empty", "https://x.example/", ""),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_dedup_transform_is_order_independent(seed):
    inputs = [*DOCS, Drop("extract.empty", where="https://x.example/")]
    random.Random(seed).shuffle(inputs)
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(inputs) | ExactDedup() | beam.Map(_summary)
        assert_that(out, equal_to(EXPECTED))


@pytest.mark.slow
def test_exact_dedup_same_result_with_two_worker_processes():
    # Worker processes cannot import this test module: only Beam and pipeline code runs there,
    # and the expected elements are the in-process resolution of each content hash's group.
    groups: dict[str, list[dict]] = {}
    for d in DOCS:
        groups.setdefault(d["content_hash"], []).append(d)
    expected = [out for group in groups.items() for out in resolve_group(group)]
    assert sorted(map(_summary, expected)) == sorted(e for e in EXPECTED if e[0] != "extract.empty")
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    with TestPipeline(runner="FnApiRunner", options=options) as p:
        out = (
            p
            | beam.Create(DOCS[::-1])
            | beam.Reshuffle()  # spread the documents over both workers before grouping
            | ExactDedup()
        )
        assert_that(out, equal_to(expected))

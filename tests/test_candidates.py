"""From submissions to candidate URLs (pipeline/submissions.py, pipeline/candidates.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from dedup.urls import canonicalize, doc_id
from foundation.config import FilterConfig
from foundation.droplog import DropLog
from foundation.records import Candidate, Drop, Submission, SubmissionRef, candidate_from_row
from pipeline.candidates import fold
from pipeline.postings import SHARD_KEY, DedupUrls
from pipeline.sources import SplitDumps, expand_patterns, read_dump
from pipeline.submissions import Posting, prepare
from pipeline.url_filters import UrlRules
from pipeline.url_units import read_ipc


def sub(sub_id: str, url: str, score: int = 10, created: int = 100, **kw) -> Submission:
    return Submission(
        id=sub_id,
        subreddit=kw.pop("subreddit", "news"),
        url=url,
        score=score,
        created_utc=created,
        **kw,
    )


CFG = FilterConfig()
RULES = UrlRules.from_config(CFG)


@pytest.mark.parametrize(
    ("submission", "reason"),
    [
        (sub("a", "https://www.reddit.com/r/x/comments/a/", is_self=True), "submission.self"),
        (sub("b", "https://example.com/x", over_18=True), "submission.nsfw"),
        (sub("c", "ftp://example.com/x"), "url.not_http"),
        (sub("d", "not a url"), "url.malformed"),
        (sub("e", "https://en.wikipedia.org/wiki/X"), "url.wikipedia"),
        (sub("f", "https://i.redd.it/x.jpg"), "url.blocklist"),
        (sub("g", "https://example.com/x.png"), "url.media_extension"),
    ],
)
def test_prepare_drops_by_rule(submission, reason):
    out = prepare(submission, RULES, CFG)
    assert isinstance(out, Drop)
    assert (out.reason, out.where) == (reason, submission.url)
    assert submission.id in out.detail


def test_nsfw_kept_when_configured():
    cfg = FilterConfig(drop_nsfw=False)
    out = prepare(sub("b", "https://Example.com/x/", over_18=True), RULES, cfg)
    assert out == ("https://example.com/x", Posting(100, "b", "news", 10, "https://Example.com/x/"))


def postings(*specs: tuple[str, int, int]) -> list[Posting]:
    return [
        Posting(created, i, "news", score, f"http://example.com/{i}") for i, score, created in specs
    ]


def test_fold_keeps_every_submission_sorted_and_the_earliest_spelling():
    key = "http://example.com/p"
    out = list(fold(key, postings(("c", 5, 300), ("a", 2, 100), ("b", 1, 100)), CFG))
    cand = [x for x in out if isinstance(x, Candidate)]
    assert cand == [
        Candidate(
            doc_id=doc_id(key),
            canonical_url=key,
            url="http://example.com/a",
            domain="example.com",
            karma=5,
            created_utc=100,
            submissions=(
                SubmissionRef("a", "news", 2, 100),
                SubmissionRef("b", "news", 1, 100),
                SubmissionRef("c", "news", 5, 300),
            ),
        )
    ]
    assert sorted((d.reason, d.detail) for d in out if isinstance(d, Drop)) == [
        ("url.duplicate", "b"),
        ("url.duplicate", "c"),
    ]


@pytest.mark.parametrize(
    ("aggregate", "scores", "kept", "karma"),
    [
        ("max", [2, 2, 2], False, 2),
        ("sum", [2, 2, 2], True, 6),
        ("max", [1, 3], True, 3),
        ("sum", [5, -3], False, 2),
        ("max", [5, -3], True, 5),
    ],
)
def test_karma_max_vs_sum(aggregate, scores, kept, karma):
    cfg = FilterConfig(karma_aggregate=aggregate, min_karma=3)
    specs = [(f"s{i}", score, 100 + i) for i, score in enumerate(scores)]
    out = list(fold("http://example.com/p", postings(*specs), cfg))
    cands = [x for x in out if isinstance(x, Candidate)]
    low = [x for x in out if isinstance(x, Drop) and x.reason == "submission.low_karma"]
    if kept:
        assert [c.karma for c in cands] == [karma] and low == []
    else:
        assert cands == [] and len(low) == 1 and f"karma={karma}" in low[0].detail
    # every submission is accounted for exactly once
    assert len(out) == len(scores)


def test_same_submission_seen_twice_counts_once():
    twice = [
        Posting(100, "a", "news", 2, "http://example.com/p"),
        Posting(100, "a", "news", 4, "http://example.com/p"),  # a later snapshot
        Posting(200, "b", "news", 1, "http://example.com/p"),
    ]
    out = list(fold("http://example.com/p", twice, FilterConfig(karma_aggregate="sum")))
    (cand,) = [x for x in out if isinstance(x, Candidate)]
    assert cand.karma == 5
    assert [s.id for s in cand.submissions] == ["a", "b"]
    assert Counter(d.reason for d in out if isinstance(d, Drop)) == {
        "submission.repeated": 1,
        "url.duplicate": 1,
    }


def _candidates_in(item: tuple[str, int]) -> list[Candidate]:
    """A DedupUrls candidates file -> its Candidates."""
    path, _ = item
    return [candidate_from_row(r) for r in read_ipc(path).drop_columns([SHARD_KEY]).to_pylist()]


def _total(kv: tuple[str, list[int]]) -> tuple[str, int]:
    return kv[0], sum(kv[1])


def dedup_urls(batches, spill: Path):
    """Submission batches through DedupUrls -> (Candidates, (reason, n) totals)."""
    deduped = batches | DedupUrls(CFG, str(spill), DropLog(str(spill / "drops")))
    cands = deduped["candidates"] | "Read" >> beam.FlatMap(_candidates_in)
    counts = deduped["counts"] | "ByReason" >> beam.GroupByKey() | "Total" >> beam.Map(_total)
    return cands, counts


def test_dedup_urls_transform(tmp_path):
    subs = [
        sub("a1", "http://WWW.Example.com/story/?utm_source=rss", score=2, created=200),
        sub("a2", "https://example.com/other", score=1, created=150),
        sub("a3", "http://example.com/story#comments", score=4, created=300, subreddit="tech"),
        sub("a4", "HTTP://example.com:80/story/", score=1, created=100),
        sub("a1", "http://WWW.Example.com/story/?utm_source=rss", score=2, created=200),
        sub("b1", "https://en.m.wikipedia.org/wiki/X"),
        sub("b2", "https://www.reddit.com/r/x/comments/b2/", is_self=True),
        sub("b3", "https://example.org/nsfw", over_18=True),
        sub("b4", "https://i.imgur.com/a.jpg"),
    ]
    key = "http://example.com/story"
    expected_candidate = Candidate(
        doc_id=doc_id(key),
        canonical_url=key,
        url="HTTP://example.com:80/story/",
        domain="example.com",
        karma=4,
        created_utc=100,
        submissions=(
            SubmissionRef("a4", "news", 1, 100),
            SubmissionRef("a1", "news", 2, 200),
            SubmissionRef("a3", "tech", 4, 300),
        ),
    )
    upstream_drop = Drop("source.bad_json", "f.zst:3", "x")
    with TestPipeline(runner="FnApiRunner") as p:
        batches = p | beam.Create([[*subs, upstream_drop]])
        cands, reasons = dedup_urls(batches, tmp_path / "spill")
        assert_that(cands, equal_to([expected_candidate]), label="OneCandidate")
        assert_that(
            reasons,
            equal_to(
                [
                    ("source.submissions", 9),
                    ("source.bad_json", 1),
                    ("submission.low_karma", 1),
                    ("submission.repeated", 1),
                    ("url.duplicate", 2),
                    ("url.wikipedia", 1),
                    ("submission.self", 1),
                    ("submission.nsfw", 1),
                    ("url.blocklist", 1),
                ]
            ),
            label="DropCounts",
        )


def test_dedup_urls_rejects_other_configs(tmp_path):
    with pytest.raises(ValueError, match="FilterConfig"):
        DedupUrls({"min_karma": 3}, str(tmp_path), DropLog(str(tmp_path / "drops")))


def test_real_dumps_to_candidates(corpus: Path, tmp_path):
    """The corpus dumps end to end through SplitDumps | DedupUrls; counts add up."""
    reddit = corpus / "reddit"
    patterns = (str(reddit / "RS_v2_2005-06.xz"), str(reddit / "pushshift-importer"))
    local = [x for path in expand_patterns(patterns) for x in read_dump(path)]
    subs = [x for x in local if isinstance(x, Submission)]
    assert len(subs) == 134
    outcomes = Counter()
    expected_candidates = set()
    for s in subs:
        out = prepare(s, RULES, CFG)
        outcomes["prepared" if isinstance(out, tuple) else out.reason] += 1
        if isinstance(out, tuple) and s.score >= 3:
            expected_candidates.add(out[0])
    assert outcomes["submission.self"] == 12
    assert outcomes["submission.nsfw"] == 4  # 6 over_18, two of them also self posts
    with TestPipeline(runner="FnApiRunner") as p:
        chunks = p | SplitDumps(patterns, str(tmp_path / "chunks"), 1 << 20)
        cands, counts = dedup_urls(chunks, tmp_path / "spill")
        urls = cands | "Urls" >> beam.Map(lambda c: c.canonical_url)
        n_cands = cands | "CountCandidates" >> beam.combiners.Count.Globally()
        kinds = (
            n_cands | "AsKind" >> beam.Map(lambda n: ("candidate", n)),
            counts,
        ) | "Kinds" >> beam.Flatten()
        assert_that(urls, equal_to(sorted(expected_candidates)), label="Candidates")
        # 134 submissions in, each accounted for once. The newer file repeats five 2005
        # submissions (ids 87-91) of the old one: counted once, as "submission.repeated".
        assert_that(
            kinds,
            equal_to(
                [
                    ("source.submissions", 134),
                    ("candidate", 83),
                    ("submission.low_karma", 28),
                    ("submission.self", 12),
                    ("submission.repeated", 5),
                    ("submission.nsfw", 4),
                    ("url.blocklist", 2),
                ]
            ),
            label="EverySubmissionAccounted",
        )


def test_canonical_keys_of_real_urls_are_stable(corpus: Path):
    subs = [
        x
        for x in read_dump(str(corpus / "reddit" / "RS_v2_2005-06.xz"))
        if isinstance(x, Submission)
    ]
    keys = [canonicalize(s.url) for s in subs]
    assert keys[0] == "http://downingstreetmemo.com/"
    assert all(canonicalize(k) == k for k in keys)

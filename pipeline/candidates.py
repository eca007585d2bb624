"""PCollection[Submission] -> PCollection[Candidate | Drop]: filters, URL dedup and karma.

Every submission of the input ends as exactly one of these, so counts add up in the summary
table (submissions in = candidates + all drops below):

- a per-submission Drop (:mod:`pipeline.submissions`: self posts, NSFW, the URL rules);
- ``submission.repeated``: the same submission id seen again (in two dumps, or a dump and the
  live API): counted once; the record with the highest score is kept (scores only grow in
  later snapshots), ties broken by the rest of the record so the choice is deterministic;
- ``url.duplicate``: a further posting of a URL already posted (under any spelling of the same
  canonical URL): its id, subreddit and score are kept *in* the Candidate, and the Drop counts
  the fetch it saves;
- ``submission.low_karma``: the URL's aggregate karma (``filter.karma_aggregate``: max or sum
  of its submissions' scores) is under ``filter.min_karma``; one Drop per URL, and its further
  postings count as ``url.duplicate`` as above;
- or the Candidate of its URL (one per canonical URL), carrying every submission sorted by
  (created_utc, id), the earliest submission's spelling as ``url`` and time as ``created_utc``.

Drops already in the input pass through unchanged, so a source's output can be piped in as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from dedup.urls import doc_id, domain_of
from foundation.config import FilterConfig
from foundation.records import Candidate, Drop, Submission, is_drop
from pipeline.submissions import Posting, prepare
from pipeline.url_filters import UrlRules


def _best_record(postings: list[Posting]) -> Posting:
    return max(postings, key=lambda p: (p.score, p.created_utc, p.subreddit, p.url))


def fold(
    canonical: str, postings: Iterable[Posting], cfg: FilterConfig
) -> Iterator[Candidate | Drop]:
    """All postings of one canonical URL -> its Candidate (or low_karma Drop) + counted folds."""
    by_id: dict[str, list[Posting]] = {}
    for posting in postings:
        by_id.setdefault(posting.id, []).append(posting)
    kept = sorted(_best_record(group) for group in by_id.values())
    for sub_id, group in sorted(by_id.items()):
        for posting in group[1:]:
            yield Drop("submission.repeated", canonical, sub_id, id=sub_id, url=posting.url)
    for posting in kept[1:]:
        yield Drop("url.duplicate", canonical, posting.id, id=posting.id, url=posting.url)
    scores = [p.score for p in kept]
    karma = max(scores) if cfg.karma_aggregate == "max" else sum(scores)
    first = kept[0]
    if karma < cfg.min_karma:
        yield Drop(
            "submission.low_karma",
            first.url,
            f"karma={karma} ({cfg.karma_aggregate} of {len(kept)}) < {cfg.min_karma}",
            id=first.id,
            url=first.url,
        )
        return
    yield Candidate(
        doc_id=doc_id(canonical),
        canonical_url=canonical,
        url=first.url,
        domain=domain_of(canonical),
        karma=karma,
        created_utc=first.created_utc,
        submissions=tuple(p.ref() for p in kept),
    )


class _Prepare(beam.DoFn):
    """Submission -> (canonical, Posting) | Drop; the URL rules are loaded once per worker."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self.rules: UrlRules | None = None

    def setup(self) -> None:
        self.rules = UrlRules.from_config(self.cfg)

    def process(self, element: Submission | Drop):
        if isinstance(element, Drop):
            yield element
            return
        assert self.rules is not None
        out = prepare(element, self.rules, self.cfg)
        if isinstance(out, Drop):
            Metrics.counter("webtext.urls", out.reason).inc()
        yield out


def _is_keyed(element: object) -> bool:
    return not is_drop(element)


def _fold_group(kv: tuple[str, Iterable[Posting]], cfg: FilterConfig):
    canonical, postings = kv
    return fold(canonical, postings, cfg)


class CollectCandidates(beam.PTransform):
    """PCollection[Submission | Drop] -> PCollection[Candidate | Drop] (see the module doc)."""

    def __init__(self, cfg: FilterConfig) -> None:
        super().__init__()
        if not isinstance(cfg, FilterConfig):
            raise ValueError(f"CollectCandidates needs a FilterConfig, got {type(cfg).__name__}")
        self.cfg = cfg

    def expand(self, submissions):
        prepared = submissions | "Prepare" >> beam.ParDo(_Prepare(self.cfg))
        drops = prepared | "Dropped" >> beam.Filter(is_drop)
        folded = (
            prepared
            | "Kept" >> beam.Filter(_is_keyed)
            | "ByCanonicalUrl" >> beam.GroupByKey()
            | "Fold" >> beam.FlatMap(_fold_group, self.cfg)
        )
        return (drops, folded) | "Merge" >> beam.Flatten()

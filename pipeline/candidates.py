"""One canonical URL's postings -> its Candidate or Drops: URL dedup and karma.

:func:`fold` is applied to each canonical URL's postings (:mod:`pipeline.postings` groups
them in bounded buckets). Every submission of the input ends as exactly one of these, so
counts add up in the summary table (submissions in = candidates + all drops below):

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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from dedup.urls import doc_id, domain_of
from foundation.config import FilterConfig
from foundation.records import Candidate, Drop
from pipeline.submissions import Posting


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

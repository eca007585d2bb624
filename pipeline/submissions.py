"""Per-submission decisions: Submission -> (canonical URL, Posting) | Drop.

The first half of URL collection, a pure function per submission (the second half, grouping
by canonical URL, is :mod:`pipeline.candidates`). Rules, in order, each a Drop reason:

    submission.self      a self (text) post: its URL is the Reddit thread itself
    submission.nsfw      over_18, when ``filter.drop_nsfw`` (the default)
    url.malformed / url.not_http / url.wikipedia / url.blocklist / url.media_extension
                         the URL rules of :mod:`pipeline.url_filters`

Drops name the submission's URL as ``where`` and its id, subreddit and score as ``detail``.
"""

from __future__ import annotations

from typing import NamedTuple

from dedup.urls import URLError, canonicalize
from foundation.config import FilterConfig
from foundation.records import Drop, Submission, SubmissionRef
from pipeline.url_filters import UrlRules


class Posting(NamedTuple):
    """What URL dedup keeps of one submission: a plain tuple, small in memory and on disk.

    Field order is the sort order: earliest first, then by id, so the first posting of a
    sorted group gives the Candidate its spelling and creation time.
    """

    created_utc: int
    id: str
    subreddit: str
    score: int
    url: str

    def ref(self) -> SubmissionRef:
        return SubmissionRef(
            id=self.id, subreddit=self.subreddit, score=self.score, created_utc=self.created_utc
        )


def prepare(sub: Submission, rules: UrlRules, cfg: FilterConfig) -> tuple[str, Posting] | Drop:
    """Keep a submission as (canonical URL, Posting), or say which rule drops it."""
    if sub.is_self:
        return _dropped("submission.self", sub, sub.id)
    if cfg.drop_nsfw and sub.over_18:
        return _dropped("submission.nsfw", sub, sub.id)
    try:
        canonical = canonicalize(sub.url)
    except URLError as e:
        return _dropped(f"url.{e.reason}", sub, f"{sub.id}: {e}")
    reason = rules.reason(canonical)
    if reason is not None:
        return _dropped(reason, sub, sub.id)
    return canonical, Posting(sub.created_utc, sub.id, sub.subreddit, sub.score, sub.url)


def _dropped(reason: str, sub: Submission, detail: str) -> Drop:
    """The drop log keeps where it was posted and its score: the URL stage keeps nothing else."""
    posted = f"{detail} (r/{sub.subreddit}, score {sub.score})"
    return Drop(reason, sub.url, posted, id=sub.id, url=sub.url)

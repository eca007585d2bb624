"""The elements that flow between the ingestion stages.

Plain frozen dataclasses: they pickle across Beam workers, compare by value (so
``assert_that(..., equal_to(...))`` works) and carry no behaviour beyond small conveniences.

    Submission  --(filters, canonical URL, URL dedup, karma)-->  Candidate
    Candidate   --(fetch: live or WARC replay)-->                 FetchResult
    FetchResult --(extract, quality)-->                           document row (dict, TEXT_SCHEMA)

Every stage may instead emit a :class:`Drop`, which names the stage rule that removed the item
(``quality.too_short``) and where it came from; drops are counted into the manifest as data,
since not every Beam runner reports metrics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Submission:
    """One Reddit link submission, from a dump line or the live API."""

    id: str
    subreddit: str
    url: str
    score: int
    created_utc: int
    is_self: bool = False
    over_18: bool = False
    title: str = ""


@dataclass(frozen=True)
class SubmissionRef:
    """What a document keeps of each submission that posted its URL."""

    id: str
    subreddit: str
    score: int
    created_utc: int


@dataclass(frozen=True)
class Candidate:
    """A canonical URL to fetch, with every submission that posted it."""

    doc_id: str
    canonical_url: str
    url: str  # the spelling of the earliest submission
    domain: str
    karma: int
    created_utc: int  # earliest submission
    submissions: tuple[SubmissionRef, ...]


@dataclass(frozen=True)
class FetchResult:
    """The outcome of fetching one candidate: a body, or the reason there is none."""

    candidate: Candidate
    outcome: str  # "fetched" or "fetch.<reason>"
    status: int = 0
    final_url: str = ""
    content_type: str = ""
    body: bytes = b""
    encoding: str | None = None
    fetch_time: int = 0  # unix s the bytes were fetched: by us, or by the archive (capture time)
    error: str = ""
    source: str = "live"  # where the bytes came from: live, warc, or the archive's name
    record: str = ""  # their address: the capture's replay URL, or WARC file and offset

    @property
    def ok(self) -> bool:
        return self.outcome == "fetched"


@dataclass(frozen=True)
class Drop:
    """An item removed by a rule; ``where`` says which (file:line, URL or document id).

    ``id`` and ``url`` name the item where it has them (a submission's id, a document's id),
    ``kept`` the document that replaced it (dedup): the drop log (``foundation.droplog``)
    records them so ``webtext explain`` can find a URL's drop.
    """

    reason: str  # "<stage>.<rule>", e.g. "source.bad_json", "url.wikipedia"
    where: str = ""
    detail: str = ""
    id: str = ""
    url: str = ""
    kept: str = ""


def is_drop(element: object) -> bool:
    return isinstance(element, Drop)


def is_item(element: object) -> bool:
    return not isinstance(element, Drop)


def candidate_to_row(c: Candidate) -> dict:
    """A Candidate as a row of ``URL_SCHEMA`` (the ``urls/`` Parquet files)."""
    return {
        "doc_id": c.doc_id,
        "canonical_url": c.canonical_url,
        "url": c.url,
        "domain": c.domain,
        "karma": c.karma,
        "created_utc": c.created_utc,
        "submissions": [vars(s) for s in c.submissions],
    }


def candidate_from_row(row: dict) -> Candidate:
    return Candidate(
        doc_id=row["doc_id"],
        canonical_url=row["canonical_url"],
        url=row["url"],
        domain=row["domain"],
        karma=int(row["karma"]),
        created_utc=int(row["created_utc"]),
        submissions=tuple(SubmissionRef(**s) for s in row["submissions"]),
    )

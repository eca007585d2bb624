"""``webtext explain``: one URL's (or document's) whole path through a run, read from its files.

    submissions (urls/ parts, drop log)  ->  canonical URL and the rules it met (drop log)
    ->  fetch outcome and timings (fetch log)  ->  extraction, quality, dedup (drop log)
    ->  the shard it landed in (shards/), or the rule that removed it

Every read is a filtered Parquet read (pyarrow skips the row groups that cannot match), so
explaining a URL costs a few row groups per file, never the whole run in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.dataset as ds

from foundation import storage
from foundation.droplog import DROPS, read_drops
from foundation.errors import WebtextError
from foundation.layout import RunLayout, resolve_recorded
from foundation.shards import MANIFEST, Manifest

DOC_ID = re.compile(r"[0-9a-f]{32}")  # dedup.urls.doc_id
FETCH_COLUMNS = ("outcome", "status", "bytes", "final_url", "error", "queued_s", "fetching_s")


class ExplainError(WebtextError, LookupError):
    """The run or the URL cannot be found; the message says which."""


@dataclass
class Story:
    """What the run's files say about one URL."""

    query: str
    doc_id: str = ""
    canonical: str = ""
    candidate: dict | None = None
    drops: list[dict] = field(default_factory=list)
    fetches: list[dict] = field(default_factory=list)
    shard: str = ""
    document: dict | None = None

    @property
    def found(self) -> bool:
        return bool(self.candidate or self.drops or self.fetches or self.shard)


def explain(run: str, query: str) -> Story:
    """The story of ``query`` (a URL in any spelling, or a document id) in the run ``run``."""
    layout = RunLayout.at(run.rstrip("/"))
    if not storage.exists(storage.join(layout.urls, MANIFEST)):
        raise ExplainError(f"{run}: not a webtext run (no urls/{MANIFEST}: run ingest first)")
    story = Story(query)
    urls = {query}
    if DOC_ID.fullmatch(query):
        story.doc_id = query
    else:
        from dedup.urls import URLError, canonicalize, doc_id

        try:
            story.canonical = canonicalize(query)
        except URLError as e:
            raise ExplainError(f"{query!r} is neither a URL nor a document id ({e})") from e
        story.doc_id = doc_id(story.canonical)
        urls.add(story.canonical)
    story.candidate = _first(_read(Manifest.load(layout.urls).paths(layout.urls), "doc_id", story))
    ids = [story.doc_id]
    if story.candidate:
        story.canonical = story.candidate["canonical_url"]
        urls |= {story.canonical, story.candidate["url"]}
        ids += [s["id"] for s in story.candidate["submissions"]]
    match = (
        ds.field("id").isin(ids)
        | ds.field("url").isin(sorted(urls))
        | ds.field("where").isin(sorted(urls))
        | (ds.field("kept") == story.doc_id)
    )
    story.drops = [r for stage in _logged_stages(layout) for r in _stage_drops(stage, match)]
    story.fetches = _read(_fetch_logs(layout.fetch), "doc_id", story)
    if storage.exists(storage.join(layout.shards, MANIFEST)):
        manifest = Manifest.load(layout.shards)
        for path in manifest.paths(layout.shards):
            rows = _read([path], "id", story, ("id", "title", "n_words", "language", "karma"))
            if rows:
                story.shard, story.document = (
                    storage.join("shards", path.rsplit("/", 1)[-1]),
                    rows[0],
                )
                break
    if not story.found:
        raise ExplainError(
            f"{query} is not in the run {run} (no submission, fetch or drop names it)"
        )
    return story


def _first(rows: list[dict]) -> dict | None:
    return rows[0] if rows else None


def _read(paths: list[str], key: str, story: Story, columns: tuple[str, ...] = ()) -> list[dict]:
    """Rows of ``paths`` whose ``key`` is the story's document id (only the columns there)."""
    if not paths:
        return []
    fs, _ = storage.resolve(paths[0])
    dataset = ds.dataset([storage.resolve(p)[1] for p in paths], format="parquet", filesystem=fs)
    names = [c for c in columns if c in dataset.schema.names] or None
    if names and key not in names:
        names.append(key)
    return dataset.to_table(columns=names, filter=ds.field(key) == story.doc_id).to_pylist()


def _fetch_logs(fetch_dir: str) -> list[str]:
    """The live fetch logs (one per unit) and the replay log's parts."""
    logs = [
        storage.join(fetch_dir, n) for n in storage.listdir(fetch_dir) if n.endswith(".log.parquet")
    ]
    replay = storage.join(fetch_dir, "replay")
    return logs + [
        storage.join(replay, n) for n in storage.listdir(replay) if n.endswith(".parquet")
    ]


def _logged_stages(layout: RunLayout) -> list[str]:
    """The run's stage directories that have a drop log (``RUN/drops/<stage>``)."""
    return [
        storage.join(layout.root, name)
        for name in storage.listdir(storage.join(layout.root, DROPS))
    ]


def _stage_drops(stage_dir: str, match: ds.Expression) -> list[dict]:
    """The committed drop rows of one stage (the parts its manifest lists) that ``match``."""
    manifest_path = storage.join(stage_dir, MANIFEST)
    if not storage.exists(manifest_path):
        return []
    logged = Manifest.load(stage_dir).extra.get("drops")
    if not logged or not logged["files"]:
        return []
    directory = resolve_recorded(logged["dir"], stage_dir)
    table: pa.Table = read_drops(directory, match, logged["files"])
    stage = stage_dir.rsplit("/", 1)[-1]
    return [{"in": stage, **row} for row in table.to_pylist()]


# --- the story as text ---------------------------------------------------------------------------


def render(story: Story) -> str:
    lines = [f"{story.query}"]
    if story.canonical:
        lines.append(f"  canonical: {story.canonical}")
    lines.append(f"  document id: {story.doc_id}")
    c = story.candidate
    if c:
        lines.append(f"  submissions ({c['karma']} karma, posted first as {c['url']}):")
        for s in c["submissions"]:
            when = datetime.fromtimestamp(s["created_utc"], UTC).strftime("%Y-%m-%d")
            lines.append(f"    {s['id']}  r/{s['subreddit']}  score {s['score']}  {when}")
    rules = [d for d in story.drops if d["stage"] in ("source", "submission", "url")]
    if rules:
        lines.append("  URL rules met:")
        lines += [_rule_line(d) for d in rules]
    for f in story.fetches:
        timing = ""
        if "queued_s" in f:
            timing = f", queued {f['queued_s']:.2f} s, fetching {f['fetching_s']:.2f} s"
        error = f" ({f['error']})" if f.get("error") and f["error"] != f"HTTP {f['status']}" else ""
        lines.append(
            f"  fetch: {f['outcome']}{error}, HTTP {f['status']}, {f['bytes']:,} bytes{timing}"
        )
    removed = [d for d in story.drops if d["stage"] not in ("source", "submission", "url")]
    own = [d for d in removed if d["kept"] != story.doc_id]
    for d in own:
        kept = f" (survivor: {d['kept']})" if d["kept"] else ""
        detail = d["detail"].replace(f"kept={d['kept']} ", "") if d["kept"] else d["detail"]
        lines.append(f"  removed by {d['rule']} (writing {d['in']}/){kept}: {detail}")
    for d in removed:
        if d["kept"] == story.doc_id:
            lines.append(f"  survivor over {d['id']}, removed as {d['rule']} ({d['url']})")
    if story.document:
        doc = story.document
        lines.append(f"  extracted: {doc.get('n_words')} words, title {doc.get('title')!r}")
    lines.append(f"  outcome: {_outcome(story, own, rules)}")
    return "\n".join(lines)


def _rule_line(drop: dict) -> str:
    """``rule: submission detail`` (details of URL-stage drops begin with the submission id)."""
    name = drop["id"] or drop["where"]
    detail = drop["detail"].removeprefix(drop["id"]).strip(" :")
    return f"    {drop['rule']}: {name} {detail}".rstrip()


def _outcome(story: Story, removed: list[dict], rules: list[dict]) -> str:
    if story.shard:
        return f"kept in {story.shard}"
    if removed:
        return f"removed by {removed[-1]['rule']}"
    final = [d for d in rules if d["rule"] not in ("url.duplicate", "submission.repeated")]
    if final:
        return f"removed by {final[0]['rule']}"
    if story.candidate and not story.fetches:
        return "a candidate URL not fetched yet"
    return "not in the shards"

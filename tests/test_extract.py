"""Extraction: real corpus pages to rows, drops with reasons, the sandbox's time limit."""

from __future__ import annotations

import ast
import gzip
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from foundation.config import ExtractConfig
from foundation.records import Candidate, Drop, FetchResult, SubmissionRef
from foundation.shards import TEXT_SCHEMA
from pipeline.extract import Extract, _ExtractFn
from pipeline.extraction import (
    BINARY,
    CRASH,
    EMPTY,
    ERROR,
    NOT_HTML,
    TIMEOUT,
    decode_body,
    extract_document,
)
from pipeline.sandbox import (
    RemoteError,
    Sandbox,
    SandboxCrash,
    SandboxStartError,
    SandboxTimeout,
    Zygote,
)
from pipeline.text import content_hash

CFG = ExtractConfig()
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("foundation", "pipeline", "dedup", "contamination", "trainer", "webtext")

# Pages on which our settings find every gold `with` snippet and no `without` one, in three
# languages, each with a gold title and date (checked against the corpus's gold.json).
GOLD_PAGES = {
    "html/hackernoon.com.scrape.html.gz": "en",
    "html/metrotimes.com-Mezcal.html.gz": "en",
    "html/anglerboard.de-rute.html.gz": "de",
    "html/thw.de-frauen.html.gz": "de",
    "html/cooperativa.cl-presidente.html.gz": "es",
}

ARTICLE = (
    "<html lang='en'><head><title>A walk by the river</title></head><body>"
    "<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
    "<article><h1>A walk by the river</h1>"
    + "".join(
        f"<p>On day {i} we walked along the river and counted the herons that stood in the "
        "shallow water, waiting patiently for fish to pass by their long legs.</p>"
        for i in range(12)
    )
    + "</article><footer>Copyright notice</footer></body></html>"
)


def slow_page() -> bytes:
    """A real pathology: an 8 MB table keeps trafilatura busy for about 20 s here (the time
    grows with its rows), well past the time limits these tests set."""
    rows = "".join(f"<tr>{'<td>cell text</td>' * 20}</tr>" for _ in range(24000))
    return f"<html><body><table>{rows}</table></body></html>".encode()


def page(body: bytes | str, *, encoding: str | None = "utf-8", doc_id: str = "d1") -> FetchResult:
    url = f"https://example.org/{doc_id}"
    subs = (SubmissionRef("s1", "python", 7, 1_500_000_000),)
    candidate = Candidate(doc_id, url, url, "example.org", 7, 1_500_000_000, subs)
    return FetchResult(candidate, "fetched", 200, url, "text/html", body, encoding, 1_700_000_000)


@pytest.fixture(scope="module")
def gold(corpus: Path) -> dict[str, tuple[str, dict]]:
    entries = json.loads((corpus / "pages" / "gold.json").read_text(encoding="utf-8"))
    return {e["stored_as"]: (url, e) for url, e in entries.items()}


def corpus_page(corpus: Path, gold: dict, stored_as: str) -> tuple[FetchResult, dict]:
    url, entry = gold[stored_as]
    html = gzip.decompress((corpus / "pages" / stored_as).read_bytes())
    candidate = Candidate("c" * 32, url, url, "corpus", 3, 0, ())
    return FetchResult(candidate, "fetched", 200, url, "text/html", html, None, 0), entry


@pytest.mark.parametrize("stored_as", sorted(GOLD_PAGES))
def test_corpus_page_text_title_date_language(corpus, gold, stored_as):
    result, entry = corpus_page(corpus, gold, stored_as)
    row = extract_document(result, CFG)
    assert isinstance(row, dict), row
    missing = [s for s in entry["with"] if s not in row["text"]]
    present = [s for s in entry["without"] if s in row["text"]]
    assert not missing and not present
    assert row["title"] == entry["title"]
    assert row["date"] == entry["date"]
    assert row["language"] == GOLD_PAGES[stored_as]


def test_a_short_fast_extraction_falls_back_to_the_full_extractors(corpus, gold):
    """The fast pass finds 85 words on this page and none of the gold snippets; the fallback
    extractors find the article, all of them, and none of the boilerplate ones."""
    result, entry = corpus_page(corpus, gold, "html/changenow.de.loibl.html.gz")
    fast_only = extract_document(result, ExtractConfig(fallback_below_words=0))
    full = extract_document(result, ExtractConfig(fast=False))
    row = extract_document(result, ExtractConfig())
    assert fast_only["n_words"] < 128 <= row["n_words"]
    assert row["text"] == full["text"]
    assert not any(s in fast_only["text"] for s in entry["with"])
    assert all(s in row["text"] for s in entry["with"])
    assert not any(s in row["text"] for s in entry["without"])
    long_enough = extract_document(result, ExtractConfig(fallback_below_words=fast_only["n_words"]))
    assert long_enough["text"] == fast_only["text"]  # not below the threshold: no second pass


def test_row_fits_text_schema_and_carries_the_candidate():
    row = extract_document(page(ARTICLE.encode()), CFG)
    assert isinstance(row, dict), row
    table = pa.Table.from_pylist([row], schema=TEXT_SCHEMA)  # raises on a missing or bad field
    assert table.num_rows == 1
    assert set(row) == set(TEXT_SCHEMA.names)
    assert row["id"] == "d1" and row["karma"] == 7 and row["http_status"] == 200
    assert row["submissions"] == [
        {"id": "s1", "subreddit": "python", "score": 7, "created_utc": 1_500_000_000}
    ]
    assert "herons" in row["text"] and "Copyright notice" not in row["text"]
    assert row["title"] == "A walk by the river"
    assert row["language"] == "en"
    assert row["n_chars"] == len(row["text"])
    assert row["n_words"] == len(row["text"].split())
    assert row["content_hash"] == content_hash(row["text"])
    assert row["fetch_time"] == 1_700_000_000


def _png_like() -> bytes:
    rng = random.Random(7)
    return b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(20_000))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", EMPTY),
        (b"  \n\t ", EMPTY),
        (_png_like(), BINARY),
        (gzip.compress(ARTICLE.encode()), BINARY),  # a body the fetcher failed to decompress
        (b"just a line of plain text, not a page", NOT_HTML),
        (b"<html><head><title>t</title></head><body></body></html>", EMPTY),
    ],
    ids=["empty", "whitespace", "binary", "gzip", "plain-text", "no-body"],
)
def test_pages_without_text_are_dropped_with_a_reason(body, reason):
    out = extract_document(page(body), CFG)
    assert isinstance(out, Drop)
    assert out.reason == reason
    assert out.where == "https://example.org/d1"


def test_failed_fetch_passes_its_own_outcome():
    candidate = page(b"").candidate
    failed = FetchResult(candidate, "fetch.http_404", 404, error="not found")
    assert extract_document(failed, CFG) == Drop(
        "fetch.http_404",
        "https://example.org/d1",
        "not found",
        id=candidate.doc_id,  # the drop log's id and URL of the page
        url=candidate.url,
    )


def test_an_exception_becomes_a_counted_drop():
    result = page(ARTICLE)
    out = extract_document(result, CFG)  # a str body: decoding it raises
    c = result.candidate
    assert out == Drop(ERROR, "https://example.org/d1", "AttributeError", id=c.doc_id, url=c.url)


@pytest.mark.parametrize(
    ("body", "declared"),
    [
        ("Größe und Maß".encode("cp1252"), "cp1252"),
        ("Größe und Maß".encode("utf-16"), "utf-16"),
        ("Größe und Maß".encode(), "latin-9-bogus"),  # unknown name: falls back to UTF-8
        ("Größe und Maß".encode(), None),
    ],
)
def test_decode_body(body, declared):
    assert decode_body(body, declared) == "Größe und Maß"


def test_utf16_page_is_text_not_binary():
    row = extract_document(page(ARTICLE.encode("utf-16"), encoding="utf-16"), CFG)
    assert isinstance(row, dict) and "herons" in row["text"]


# --- the sandbox: time limit, crashes, errors ------------------------------------------------


@pytest.fixture
def sandbox():
    with Zygote("pipeline.extraction:extract_document") as zygote, Sandbox(zygote) as box:
        yield box


def test_time_limit_stops_a_pathological_page_and_the_next_page_works(sandbox):
    first_pid = sandbox.pid
    started = time.monotonic()
    with pytest.raises(SandboxTimeout):
        sandbox.call(page(slow_page()), CFG, timeout_s=1.0)
    assert time.monotonic() - started < 8.0  # not the 20 s the page takes
    assert sandbox.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)  # the busy child is gone, not left running
    row = sandbox.call(page(ARTICLE.encode()), CFG, timeout_s=60)
    assert isinstance(row, dict) and sandbox.starts == 2


def test_a_child_killed_mid_page_is_a_crash_and_is_replaced(sandbox):
    threading.Timer(0.5, os.kill, (sandbox.pid, signal.SIGKILL)).start()
    with pytest.raises(SandboxCrash, match="exit code -9"):
        sandbox.call(page(slow_page()), CFG, timeout_s=60)
    assert isinstance(sandbox.call(page(ARTICLE.encode()), CFG, timeout_s=60), dict)


def test_an_exception_in_the_child_is_returned_and_the_child_keeps_serving():
    with Zygote("builtins:int") as zygote, Sandbox(zygote) as box:
        pid = box.pid
        with pytest.raises(RemoteError) as err:
            box.call("not a number", timeout_s=10)
        assert err.value.kind == "ValueError"
        assert box.call("42", timeout_s=10) == 42
        assert box.pid == pid


def test_a_result_waiting_in_its_pipe_is_received_however_late_it_is_read():
    """A finished call is never a timeout: the parent may read it long after the limit (its
    thread was busy with downstream stages), and the child is not killed for that."""
    with Zygote("builtins:len") as zygote, Sandbox(zygote) as box:
        pid = box.pid
        box.send("four", timeout_s=0.2)
        assert select.select([box], [], [], 30)[0]  # the child has answered
        time.sleep(0.5)  # well past the limit, in the parent's time
        assert box.receive() == 4 and box.pid == pid


def test_the_limit_counts_the_childs_time_on_the_call_not_the_time_before_it():
    """A child that sat idle longer than the limit before its call still gets the whole limit."""
    with Zygote("time:sleep") as zygote, Sandbox(zygote) as box:
        time.sleep(0.5)
        box.send(0.1, timeout_s=0.4)
        assert box.receive() is None


def test_a_target_that_cannot_load_fails_at_start_with_the_reason():
    with pytest.raises(SandboxStartError, match="ModuleNotFoundError"):
        Sandbox(Zygote("no_such_module_here:f")).start()


def test_closing_ends_the_child_and_the_zygote():
    zygote = Zygote("builtins:len")
    box = Sandbox(zygote)
    box.start()
    pids = box.pid, zygote.pid
    box.close()
    zygote.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_children_fork_from_one_zygote_which_also_replaces_a_killed_one():
    """Each child is the zygote's: it skips the imports and warm-up, and so does a replacement."""
    with Zygote("os:getppid") as zygote, Sandbox(zygote) as first, Sandbox(zygote) as second:
        assert first.call(timeout_s=10) == second.call(timeout_s=10) == zygote.pid
        killed = first.pid
        os.kill(killed, signal.SIGKILL)
        with pytest.raises(SandboxCrash, match="exit code -9"):
            first.call(timeout_s=10)
        assert first.call(timeout_s=10) == zygote.pid
        assert first.pid != killed and first.starts == 2 and zygote.starts == 1


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_a_killed_parent_leaves_neither_zygote_nor_child_running():
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pipeline.sandbox import Sandbox, Zygote; "
            "z = Zygote('os:getpid'); box = Sandbox(z); "
            "child = box.call(timeout_s=10); print(z.pid, child, flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(_running(pid) for pid in pids)
    parent.kill()  # no finalizer runs: the zygote sees its socket close, the child its pipe
    parent.wait()
    deadline = time.monotonic() + 20
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(pid) for pid in pids)


def test_a_dead_zygote_is_restarted_for_the_next_child():
    with Zygote("os:getppid") as zygote, Sandbox(zygote) as box:
        old = zygote.pid
        os.kill(old, signal.SIGKILL)
        box.close()
        assert box.call(timeout_s=10) == zygote.pid != old
        assert zygote.starts == 2


# --- the PTransform ----------------------------------------------------------------------------


def _outcome(element: dict | Drop) -> tuple[str, str]:
    if isinstance(element, Drop):
        return element.reason, element.where
    return "doc", element["id"]


def test_extract_transform_survives_bad_pages():
    cfg = ExtractConfig(timeout_s=1.0)
    inputs = [
        page(ARTICLE.encode(), doc_id="good"),
        page(slow_page(), doc_id="slow"),
        page(ARTICLE.encode("utf-8"), doc_id="good2"),
        page(_png_like(), doc_id="png"),
        page(b"", doc_id="empty"),
        page(ARTICLE, doc_id="broken"),  # raises inside the extractor
        FetchResult(page(b"", doc_id="gone").candidate, "fetch.timeout"),
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([inputs[:3], inputs[3:]]) | Extract(cfg) | beam.Map(_outcome)
        assert_that(
            out,
            equal_to(
                [
                    ("doc", "good"),
                    (TIMEOUT, "https://example.org/slow"),
                    ("doc", "good2"),
                    (BINARY, "https://example.org/png"),
                    (EMPTY, "https://example.org/empty"),
                    (ERROR, "https://example.org/broken"),
                    ("fetch.timeout", "https://example.org/gone"),
                ]
            ),
        )


def _extract_fn(processes: int) -> _ExtractFn:
    fn = _ExtractFn(ExtractConfig(timeout_s=5.0, processes=processes))
    fn.setup()
    return fn


def _described(values) -> list[tuple[str, str]]:
    """(reason, or "doc" for a document; where or id) of each output, in the order emitted."""
    return [_outcome(v) for v in values]


def test_a_slow_page_holds_one_child_while_the_other_extracts_on():
    fn = _extract_fn(processes=2)
    try:
        # The ordinary page leaves first, while the slow page runs on in the other child; the
        # slow one's drop leaves within the same call, before it returns.
        out = _described(
            fn.process([page(slow_page(), doc_id="slow"), page(ARTICLE.encode(), doc_id="good")])
        )
        assert out == [("doc", "good"), (TIMEOUT, "https://example.org/slow")]
        assert not fn._busy
    finally:
        fn.teardown()


def test_a_child_killed_mid_page_costs_that_page_and_is_replaced():
    fn = _extract_fn(processes=2)
    try:
        calls = fn.process(
            [page(slow_page(), doc_id="slow"), page(ARTICLE.encode(), doc_id="good")]
        )
        assert _outcome(next(calls)) == ("doc", "good")
        (busy,) = fn._busy  # the slow page, still in its child
        os.kill(busy.pid, signal.SIGKILL)
        assert _described(calls) == [(CRASH, "https://example.org/slow")]
        assert _described(fn.process([page(ARTICLE.encode(), doc_id="again")])) == [
            ("doc", "again")
        ]
    finally:
        fn.teardown()


def test_a_bundle_ends_its_children_and_the_next_bundle_gets_the_same_documents():
    """Beam keeps a DoFn until its worker exits: the children must not idle beside the later
    stages, so a bundle's end ends them, and a later bundle forks fresh ones."""
    fn = _extract_fn(processes=2)
    try:
        pages = [page(ARTICLE.encode(), doc_id="a"), page(ARTICLE.encode(), doc_id="b")]
        first = sorted(fn.process(pages), key=lambda d: d["id"])
        assert fn._zygote is not None
        pids = [box.pid for box in fn._idle] + [fn._zygote.pid]
        fn.finish_bundle()
        assert fn._zygote is None and not fn._idle
        assert not any(_running(pid) for pid in pids)
        again = sorted(fn.process(pages), key=lambda d: d["id"])
        assert again == first and [d["id"] for d in first] == ["a", "b"]
    finally:
        fn.teardown()


def test_a_finished_page_is_kept_however_long_downstream_stages_hold_the_worker():
    """Beam runs the stages after extraction inside its ``yield``: while they work, the other
    child's result waits in its pipe past the page's time limit, and is still kept."""
    fn = _ExtractFn(ExtractConfig(timeout_s=2.0, processes=2))
    fn.setup()
    try:
        calls = fn.process([page(ARTICLE.encode(), doc_id="a"), page(ARTICLE.encode(), doc_id="b")])
        first = _outcome(next(calls))
        for box in fn._busy:  # the page still out: let it finish, then pass its limit
            assert select.select([box], [], [], 60)[0]
            time.sleep(2.5)
        assert sorted([first, *_described(calls)]) == [("doc", "a"), ("doc", "b")]
    finally:
        fn.teardown()


def test_with_one_process_pages_are_extracted_in_order():
    fn = _extract_fn(processes=1)
    try:
        pages = [page(ARTICLE.encode(), doc_id="good"), page(b"", doc_id="empty")]
        assert _described(fn.process(pages)) == [
            ("doc", "good"),
            (EMPTY, "https://example.org/empty"),
        ]
    finally:
        fn.teardown()


def test_no_webtext_dofn_emits_from_finish_bundle():
    """Dask's runner (Beam 2.77) drops what a DoFn yields or returns in finish_bundle: none of
    ours does, so every runner gets every output."""
    offenders = []
    for path in sorted(ROOT.glob("*/*.py")):
        if path.parts[-2] not in PACKAGES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name == "finish_bundle":
                emits = any(
                    isinstance(n, (ast.Yield, ast.YieldFrom))
                    or (isinstance(n, ast.Return) and n.value is not None)
                    for n in ast.walk(node)
                )
                if emits:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_extract_needs_its_config():
    with pytest.raises(ValueError, match="ExtractConfig"):
        Extract({"timeout_s": 1})

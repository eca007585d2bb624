"""The embedded demo input: reproducible bytes, readable like real data, every planted case."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
from pathlib import Path

import pytest
import zstandard
from warcio.archiveiterator import ArchiveIterator

from webtext.demo.generate import DemoPaths, generate_demo

FILES = ("RS_demo.zst", "pages.warc.gz", "test_sets/overlap.txt", "test_sets/clean.txt")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return generate_demo(str(tmp_path_factory.mktemp("demo")))


@pytest.fixture(scope="module")
def truth(demo: DemoPaths) -> dict:
    return json.loads(Path(demo.truth).read_text())


@pytest.fixture(scope="module")
def lines(demo: DemoPaths) -> list[str]:
    with open(demo.dump, "rb") as f:
        reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(f)
        return io.TextIOWrapper(reader, encoding="utf-8").read().splitlines()


@pytest.fixture(scope="module")
def submissions(lines: list[str], truth: dict) -> list[dict]:
    bad = {b["line"] for b in truth["bad_lines"]}
    return [json.loads(line) for i, line in enumerate(lines, 1) if i not in bad]


@pytest.fixture(scope="module")
def responses(demo: DemoPaths) -> dict[str, tuple[int, dict, bytes]]:
    out = {}
    with open(demo.warc, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type == "response":
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                status = int(rec.http_headers.get_statuscode())
                out[uri] = (status, dict(rec.http_headers.headers), rec.content_stream().read())
    return out


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _article_text(page: bytes, charset: str = "utf-8") -> list[str]:
    """The <p> paragraphs inside <article>, minus the byline."""
    article = re.search(r"<article>(.*)</article>", page.decode(charset), re.S).group(1)
    paras = re.findall(r"<p>(.*?)</p>", article, re.S)
    return [html.unescape(p) for p in paras]


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def test_same_seed_gives_same_bytes(demo: DemoPaths, tmp_path: Path) -> None:
    again = generate_demo(str(tmp_path / "again"))
    for rel in (*FILES, "truth.json"):
        assert _sha(f"{demo.root}/{rel}") == _sha(f"{again.root}/{rel}"), rel


def test_other_seed_gives_other_data(demo: DemoPaths, tmp_path: Path) -> None:
    other = generate_demo(str(tmp_path / "other"), seed=7, n_submissions=200)
    assert _sha(other.dump) != _sha(demo.dump)
    assert _sha(other.warc) != _sha(demo.warc)


def test_rerun_skips_until_a_file_changes(tmp_path: Path) -> None:
    out = str(tmp_path / "d")
    paths = generate_demo(out, n_submissions=200)
    before = Path(paths.warc).stat().st_mtime_ns
    generate_demo(out, n_submissions=200)
    assert Path(paths.warc).stat().st_mtime_ns == before  # skipped: same params, same files
    original = _sha(paths.warc)
    Path(paths.warc).write_bytes(b"damaged")
    generate_demo(out, n_submissions=200)
    assert _sha(paths.warc) == original  # regenerated


def test_too_few_submissions_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_submissions"):
        generate_demo(str(tmp_path), n_submissions=50)


def test_dump_needs_the_long_window_like_real_dumps(demo: DemoPaths) -> None:
    with open(demo.dump, "rb") as f, pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().stream_reader(f).read()


def test_dump_is_ndjson_with_a_few_bad_lines(lines: list[str], truth: dict) -> None:
    assert len(lines) == truth["dump_lines"]
    bad = {b["line"]: b["kind"] for b in truth["bad_lines"]}
    no_host = set(truth["cases"]["malformed_url"] + truth["cases"]["bad_scheme"])
    assert sorted(set(bad.values())) == ["bad_score_type", "missing_url", "truncated_json"]
    assert len(bad) / len(lines) < 0.01
    for i, line in enumerate(lines, 1):
        if bad.get(i) == "truncated_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        rec = json.loads(line)
        if bad.get(i) == "missing_url":
            assert "url" not in rec
        elif bad.get(i) == "bad_score_type":
            assert isinstance(rec["score"], str)
        else:
            assert isinstance(rec["url"], str) and isinstance(rec["score"], int), i
            assert isinstance(rec["created_utc"], int | float)
            for key in ("id", "subreddit", "title", "permalink", "author"):
                assert isinstance(rec[key], str) and rec[key], (i, key)
            assert isinstance(rec["domain"], str) and (rec["domain"] or rec["url"] in no_host)
            assert isinstance(rec["is_self"], bool) and isinstance(rec["over_18"], bool)


def test_dump_has_both_layouts_in_time_order(submissions: list[dict]) -> None:
    assert any("_meta" in s for s in submissions)
    assert any("_meta" not in s for s in submissions)
    times = [s["created_utc"] for s in submissions]
    assert times == sorted(times)
    assert len({s["id"] for s in submissions}) == len(submissions)


def test_warc_has_every_response(responses: dict, truth: dict) -> None:
    assert len(responses) == truth["warc_responses"]
    cases = truth["cases"]
    for url in cases["articles"] + cases["short"] + cases["nsfw"] + cases["low_karma"]:
        status, headers, body = responses[url]
        assert status == 200 and headers["Content-Type"].startswith("text/html"), url
        assert int(headers["Content-Length"]) == len(body)
    for url in cases["not_found"]:
        assert responses[url][0] == 404
    for r in cases["redirects"]:
        status, headers, _ = responses[r["from"]]
        assert status == r["status"]
        assert r["to"].endswith(headers["Location"])
        assert responses[r["to"]][0] == 200
    assert responses[cases["non_html"][0]][1]["Content-Type"] == "application/pdf"
    for url in cases["missing_from_warc"]:
        assert url not in responses


def test_links_dead_in_the_crawl_are_in_the_archive_warc(demo: DemoPaths, responses, truth):
    archived = truth["cases"]["archived"]
    with open(demo.archive_warc, "rb") as f:
        kept = {
            rec.rec_headers.get_header("WARC-Target-URI"): int(rec.http_headers.get_statuscode())
            for rec in ArchiveIterator(f)
            if rec.rec_type == "response"
        }
    assert kept == dict.fromkeys(archived, 200) and truth["archive_captures"] == len(archived)
    assert [responses[u][0] if u in responses else None for u in archived] == [404, None] * 3


def test_submission_filters_are_planted(submissions: list[dict], truth: dict) -> None:
    cases = truth["cases"]
    by_url: dict[str, list[dict]] = {}
    for s in submissions:
        by_url.setdefault(s["url"], []).append(s)
    self_ids = {s["id"] for s in submissions if s["is_self"]}
    assert self_ids == set(cases["self_post"])
    assert all(s["domain"].startswith("self.") for s in submissions if s["is_self"])
    assert all(by_url[u][0]["over_18"] for u in cases["nsfw"])
    assert all(by_url[u][0]["score"] < 3 for u in cases["low_karma"])
    scores = sorted(s["score"] for s in by_url[cases["karma_sum_only"]])
    assert max(scores) < 3 <= sum(scores)
    hosts = {u.split("/")[2] for u in cases["wikipedia"]}
    assert {"en.wikipedia.org", "de.wikipedia.org", "en.m.wikipedia.org"} <= hosts
    assert any(u.lower().endswith(".jpg") for u in cases["media"])
    assert any("imgur" in u for u in cases["media"]) and any("youtu" in u for u in cases["media"])
    for u in cases["wikipedia"] + cases["media"] + cases["malformed_url"] + cases["bad_scheme"]:
        assert u in by_url, u
    assert sum(len(v) > 1 for v in by_url.values()) > 10  # reposts of one URL


def test_one_article_under_several_spellings(submissions: list[dict], truth: dict) -> None:
    posted = {s["url"] for s in submissions}
    for case in truth["cases"]["spellings"]:
        present = [u for u in case["posted"] if u in posted]
        assert len(present) >= 4 and case["primary"] in present
        kinds = " ".join(present)
        assert "www." in kinds and "utm_" in kinds


def test_exact_and_near_duplicates(responses: dict, truth: dict) -> None:
    for case in truth["cases"]["exact_duplicates"]:
        original = responses[case["original"]][2]
        for copy in case["copies"]:
            assert _article_text(responses[copy][2]) == _article_text(original)
            assert responses[copy][2] != original  # different site chrome
    for case in truth["cases"]["near_duplicates"]:
        a = _shingles(" ".join(_article_text(responses[case["original"]][2])), 5)
        b = _shingles(" ".join(_article_text(responses[case["copy"]][2])), 5)
        assert 0.7 < _jaccard(a, b) < 1.0
    # Distinct articles are far apart, so near-dup removal keeps them.
    articles = truth["cases"]["articles"][:30]
    sh = [_shingles(" ".join(_article_text(responses[u][2])), 5) for u in articles]
    worst = max(_jaccard(sh[i], sh[j]) for i in range(len(sh)) for j in range(i + 1, len(sh)))
    assert worst < 0.2


def test_page_lengths_and_languages(responses: dict, truth: dict) -> None:
    words = truth["words"]
    assert all(words[u] < 128 for u in truth["cases"]["short"])
    assert all(300 <= words[u] <= 1100 for u in truth["cases"]["articles"])
    assert sum(words.values()) > 150_000  # enough for a tiny GPT to learn something
    charsets = []
    for case in truth["cases"]["non_english"]:
        _, headers, body = responses[case["url"]]
        charset = re.search(rb'<meta charset="([^"]+)"', body).group(1).decode()
        charsets.append(charset)
        ctype = headers["Content-Type"]
        assert ctype.endswith(f"charset={charset}") or ctype == "text/html"
        text = body.decode(charset)
        assert f'<html lang="{case["lang"]}">' in text
        assert re.search("[äöüßéèà]", text)
    assert "iso-8859-1" in charsets


def test_html_wraps_the_article_in_boilerplate(responses: dict, truth: dict) -> None:
    _, _, body = responses[truth["cases"]["articles"][0]]
    page = body.decode()
    for part in ("<title>", "<nav>", "<header>", "<footer>", "<article>", 'class="related"'):
        assert part in page


def test_test_sets_overlap_as_documented(demo: DemoPaths, responses: dict, truth: dict) -> None:
    index = json.loads(Path(demo.test_sets, "index.json").read_text())
    pages = set()
    for status, headers, body in responses.values():
        if status == 200 and headers["Content-Type"].startswith("text/html"):
            charset = "iso-8859-1" if "iso-8859-1" in headers["Content-Type"] else "utf-8"
            pages |= _shingles(" ".join(_article_text(body, charset)), 8)
    overlap = _shingles(Path(demo.test_sets, "overlap.txt").read_text(), 8)
    clean = _shingles(Path(demo.test_sets, "clean.txt").read_text(), 8)
    assert not clean & pages
    share = len(overlap & pages) / len(overlap)
    assert 0.1 < share < 0.6
    assert share == pytest.approx(index["overlap"]["copied_word_fraction"], abs=0.1)
    assert set(index["overlap"]["copied_from"]) <= set(truth["cases"]["articles"])
    assert index["clean"]["copied_paragraphs"] == 0


def test_expected_counts_add_up(truth: dict) -> None:
    e = truth["expected"]
    c = truth["cases"]
    assert e["documents_after_quality"] == e["documents_extracted"] - len(c["short"])
    assert e["documents_after_near_dedup"] == (
        e["documents_after_exact_dedup"] - len(c["near_duplicates"])
    )
    assert e["documents_after_near_dedup"] > 250

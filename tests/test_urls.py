"""Canonical URLs (dedup/urls.py) and the URL exclusion rules (pipeline/url_filters.py)."""

from __future__ import annotations

import re

import pytest

from dedup.urls import URLError, canonicalize, doc_id, domain_of
from foundation.config import FilterConfig
from pipeline.url_filters import (
    BlocklistError,
    exclusion_reason,
    load_blocklist,
    parse_blocklist,
)

# Each group: many spellings of one page -> one key.
SAME_PAGE = [
    (
        "http://example.com/a/b",
        [
            "http://example.com/a/b",
            "HTTP://EXAMPLE.COM/a/b",
            "http://www.example.com/a/b",
            "http://WWW.Example.Com:80/a/b",
            "http://example.com/a/b/",
            "http://example.com/a/b#section-2",
            "http://example.com/a/b?utm_source=reddit&utm_medium=social",
            "http://example.com/a/b?fbclid=IwAR0abc&gclid=xyz",
            "http://example.com/%61/b",
            "http://example.com/a/./c/../b",
            "  http://example.com/a/b  ",
            "http://user:secret@example.com/a/b",
            "http://example.com./a/b",
        ],
    ),
    (
        "https://example.com/",
        [
            "https://example.com",
            "https://example.com:443",
            "https://www.example.com/",
            "https://example.com/?",
            "https://example.com/#top",
            "https://example.com/?mc_cid=1&mc_eid=2&igshid=3&ref_src=twsrc&yclid=4",
            "https://example.com/?UTM_Campaign=x",
        ],
    ),
    (
        "http://example.com/search?a=1&b=2&q=x",
        [
            "http://example.com/search?q=x&b=2&a=1",
            "http://example.com/search?b=2&utm_content=z&q=x&a=1",
            "http://example.com/search?a=1&&b=2&q=x&",
            "http://example.com/search/?%61=1&b=2&q=x",
        ],
    ),
    (
        "http://xn--bcher-kva.de/stra%C3%9Fe",
        [
            "http://bücher.de/straße",
            "http://BÜCHER.de/stra%c3%9fe",
            "http://www.xn--bcher-kva.de/straße/",
            "http://xn--bcher-kva.de/stra%C3%9Fe",
        ],
    ),
    (
        "http://example.com/a%20b/%2F~x",
        [
            "http://example.com/a b/%2f%7Ex",
            "http://example.com/a%20b/%2F~x",
        ],
    ),
    ("http://example.com:8080/", ["http://example.com:8080", "http://www.example.com:8080/"]),
    ("https://example.com:80/", ["https://example.com:80"]),
    ("http://[2001:db8::1]/x", ["http://[2001:DB8:0:0::1]:80/x/"]),
    ("http://example.com/%25", ["http://example.com/%"]),
]


@pytest.mark.parametrize(("expected", "spellings"), SAME_PAGE, ids=[g[0] for g in SAME_PAGE])
def test_spellings_of_one_page_share_one_key(expected, spellings):
    for url in spellings:
        assert canonicalize(url) == expected, url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a?b=1",
        "http://example.com/A",  # path case matters
        "https://example.com/a",  # scheme stays distinct
        "http://example.com/a?ref=x",  # 'ref' is kept: it means things on some sites
        "http://example.com/a%2Fb",  # an escaped slash is not a slash
        "http://example.com/a?x=%26",  # an escaped & is not a separator
        "http://www.com/",  # not a www. prefix
    ],
)
def test_different_pages_keep_different_keys(url):
    assert canonicalize(url) != canonicalize("http://example.com/a")
    assert canonicalize(canonicalize(url)) == canonicalize(url)  # idempotent


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/file", "not_http"),
        ("mailto:someone@example.com", "not_http"),
        ("javascript:alert(1)", "not_http"),
        ("example.com/page", "malformed"),
        ("http://", "malformed"),
        ("http:///path", "malformed"),
        ("http://example.com:99999/", "malformed"),
        ("http://example.com:port/", "malformed"),
        ("http://exa mple.com/", "malformed"),
        ("http://-bad-.com/", "malformed"),
        ("http://[::zz]/", "malformed"),
        ("", "malformed"),
    ],
)
def test_urls_without_a_canonical_form_say_why(url, reason):
    with pytest.raises(URLError) as info:
        canonicalize(url)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)
    assert exclusion_reason(url, FilterConfig()) == f"url.{reason}"


def test_doc_id_is_stable_hex_of_the_canonical_form():
    key = canonicalize("http://www.example.com/a/")
    assert re.fullmatch(r"[0-9a-f]{32}", doc_id(key))
    # a fixed value: ids must not change between versions or machines
    assert doc_id("http://example.com/a") == "e13f642cfa8a20d673211e4c4523d22b"
    assert doc_id(key) == doc_id(canonicalize("HTTP://EXAMPLE.COM/a?utm_source=x"))
    assert doc_id(key) != doc_id(canonicalize("http://example.com/b"))


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("http://www.Example.com:8080/x", "example.com"),
        ("https://news.bbc.co.uk/1", "news.bbc.co.uk"),
        ("http://bücher.de/", "xn--bcher-kva.de"),
        ("http://[::1]:81/", "[::1]"),
    ],
)
def test_domain_of(url, domain):
    assert domain_of(canonicalize(url)) == domain


# --- exclusions ----------------------------------------------------------------------------------

EXCLUDED = [
    ("https://en.wikipedia.org/wiki/Python", "url.wikipedia"),
    ("http://de.wikipedia.org/wiki/Berlin", "url.wikipedia"),
    ("https://ja.wikipedia.org/wiki/%E6%9D%B1%E4%BA%AC", "url.wikipedia"),
    ("https://zh-yue.wikipedia.org/wiki/X", "url.wikipedia"),
    ("https://en.m.wikipedia.org/wiki/Python", "url.wikipedia"),
    ("https://fr.m.wikipedia.org/wiki/Paris", "url.wikipedia"),
    ("https://www.wikipedia.org/", "url.wikipedia"),
    ("https://wikipedia.org/wiki/X", "url.wikipedia"),
    ("https://EN.WIKIPEDIA.ORG/wiki/X", "url.wikipedia"),
    ("https://commons.wikimedia.org/wiki/File:X.jpg", "url.wikipedia"),
    ("https://upload.wikimedia.org/x.png", "url.wikipedia"),
    ("https://en.wiktionary.org/wiki/word", "url.wikipedia"),
    ("https://en.wikiquote.org/wiki/X", "url.wikipedia"),
    ("https://en.wikibooks.org/wiki/X", "url.wikipedia"),
    ("https://en.wikisource.org/wiki/X", "url.wikipedia"),
    ("https://en.wikinews.org/wiki/X", "url.wikipedia"),
    ("https://en.wikiversity.org/wiki/X", "url.wikipedia"),
    ("https://en.wikivoyage.org/wiki/X", "url.wikipedia"),
    ("https://www.wikidata.org/wiki/Q42", "url.wikipedia"),
    ("https://www.mediawiki.org/wiki/X", "url.wikipedia"),
    ("https://wikimediafoundation.org/news/", "url.wikipedia"),
    ("https://w.wiki/3xyz", "url.wikipedia"),
    ("https://www.reddit.com/r/python/comments/abc/x/", "url.blocklist"),
    ("https://old.reddit.com/r/python/", "url.blocklist"),
    ("https://redd.it/abc", "url.blocklist"),
    ("https://i.redd.it/lkx6ajtx6vfc1.jpeg", "url.blocklist"),
    ("https://v.redd.it/74ah6jubbvec1", "url.blocklist"),
    ("https://i.reddituploads.com/x", "url.blocklist"),
    ("https://imgur.com/gallery/x", "url.blocklist"),
    ("https://i.imgur.com/x.gifv", "url.blocklist"),
    ("https://gfycat.com/x", "url.blocklist"),
    ("https://www.youtube.com/watch?v=x", "url.blocklist"),
    ("https://m.youtube.com/watch?v=x", "url.blocklist"),
    ("https://youtu.be/x", "url.blocklist"),
    ("https://vimeo.com/1", "url.blocklist"),
    ("https://www.twitch.tv/x", "url.blocklist"),
    ("https://streamable.com/x", "url.blocklist"),
    ("https://media.giphy.com/x", "url.blocklist"),
    ("https://www.flickr.com/photos/x", "url.blocklist"),
    ("https://www.instagram.com/p/x", "url.blocklist"),
    ("https://www.redgifs.com/watch/x", "url.blocklist"),
    ("https://example.com/photo.JPG", "url.media_extension"),
    ("https://example.com/a/b.png?size=large", "url.media_extension"),
    ("https://example.com/clip.mp4", "url.media_extension"),
    ("https://example.com/song.mp3", "url.media_extension"),
    ("https://example.com/paper.pdf", "url.media_extension"),
    ("https://example.com/data.zip", "url.media_extension"),
    ("https://example.com/setup.exe", "url.media_extension"),
    ("https://example.com/anim.gif#x", "url.media_extension"),
]


@pytest.mark.parametrize(("url", "rule"), EXCLUDED, ids=[u for u, _ in EXCLUDED])
def test_exclusion_rules(url, rule):
    assert exclusion_reason(url, FilterConfig()) == rule
    assert exclusion_reason(canonicalize(url), FilterConfig()) == rule


@pytest.mark.parametrize(
    "url",
    [
        "http://www.paulgraham.com/nerds.html",
        "https://example.com/",
        "https://example.com/article.php?id=3",
        "https://example.com/page.html",
        "https://example.com/jpg-guide",
        "https://notwikipedia.org/wiki/X",
        "https://wikipedia.example.com/",
        "https://myreddit.com/",  # suffix match is on whole labels
        "https://youtube.com.example.org/",
        "https://wikiwand.com/en/X",
    ],
)
def test_kept_urls(url):
    assert exclusion_reason(url, FilterConfig()) is None


def test_wikipedia_rule_can_be_turned_off():
    cfg = FilterConfig(exclude_wikipedia=False)
    assert exclusion_reason("https://en.wikipedia.org/wiki/X", cfg) is None
    assert exclusion_reason("https://en.wikipedia.org/wiki/X.jpg", cfg) == "url.media_extension"


def test_packaged_blocklist_is_documented_and_parsed():
    domains = load_blocklist(None)
    assert {"reddit.com", "redd.it", "imgur.com", "youtube.com", "youtu.be"} <= domains
    assert all(d == d.lower() and not d.startswith("www.") for d in domains)


def test_blocklist_file_replaces_the_default(tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("# mine\n\nWWW.Example.org  # trailing comment\n*.bücher.de\n")
    cfg = FilterConfig(blocklist=str(path))
    assert exclusion_reason("https://news.example.org/a", cfg) == "url.blocklist"
    assert exclusion_reason("https://shop.bücher.de/", cfg) == "url.blocklist"
    assert exclusion_reason("https://www.youtube.com/watch?v=x", cfg) is None  # default replaced
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert exclusion_reason("https://imgur.com/x", FilterConfig(blocklist=str(empty))) is None


def test_bad_blocklist_lines_are_named(tmp_path):
    with pytest.raises(BlocklistError, match=r"my\.txt:2: .*example\.com/path"):
        parse_blocklist("ok.com\nexample.com/path\n", "my.txt")
    with pytest.raises(BlocklistError, match="cannot read"):
        load_blocklist(str(tmp_path / "missing.txt"))

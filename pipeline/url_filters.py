"""URL exclusion rules: which outbound links are never fetched, each counted by rule name.

``exclusion_reason(url, cfg)`` is a pure decision: ``None`` keeps the URL, a rule name drops
it. The rules, checked in this order (a URL counts under the first that matches):

- ``url.malformed`` / ``url.not_http``: no canonical form (:func:`dedup.urls.canonicalize`).
- ``url.wikipedia``: every Wikipedia language edition and mobile host (``*.wikipedia.org``,
  ``*.m.wikipedia.org``), Wikipedia's other names and short links, and the Wikimedia family
  (:data:`WIKIMEDIA_DOMAINS`). GPT-2 removed Wikipedia because it is common in test sets; off
  with ``filter.exclude_wikipedia = false``.
- ``url.blocklist``: the host is, or is a subdomain of, a domain of the blocklist file
  (``pipeline/data/blocklist.txt`` by default: Reddit's own hosts and image/video/audio hosts).
- ``url.media_extension``: the last path segment ends with an extension of
  :data:`MEDIA_EXTENSIONS` (images, video, audio, documents, archives, executables, fonts):
  files, not HTML pages, so fetching them would waste bandwidth for no text.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from urllib.parse import unquote, urlsplit

from dedup.urls import URLError, canonicalize
from foundation.config import FilterConfig
from foundation.errors import WebtextError

WIKIMEDIA_DOMAINS: frozenset[str] = frozenset(
    {
        "wikipedia.org",
        "wikipedia.com",
        "wikipedia.net",
        "w.wiki",  # Wikimedia's URL shortener
        "wikimedia.org",
        "wikimediafoundation.org",
        "wiktionary.org",
        "wikiquote.org",
        "wikibooks.org",
        "wikisource.org",
        "wikinews.org",
        "wikiversity.org",
        "wikivoyage.org",
        "wikidata.org",
        "wikifunctions.org",
        "mediawiki.org",
        "wikispecies.org",
    }
)
"""Domains of the ``url.wikipedia`` rule; each matches itself and all its subdomains."""

MEDIA_EXTENSIONS: frozenset[str] = frozenset(
    {
        # images
        "jpg", "jpeg", "jpe", "png", "gif", "gifv", "webp", "bmp", "tif", "tiff", "svg",
        "ico", "heic", "heif", "avif", "psd", "raw",
        # video
        "mp4", "m4v", "mov", "avi", "mkv", "webm", "wmv", "flv", "mpg", "mpeg", "3gp", "ogv",
        "m3u8", "ts",
        # audio
        "mp3", "wav", "ogg", "oga", "flac", "m4a", "aac", "wma", "opus", "mid", "midi",
        # documents (not HTML; the text extractor reads HTML only)
        "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "rtf",
        "epub", "mobi", "ps", "djvu",
        # archives and compressed files
        "zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "xz", "zst", "lz", "lzma",
        # executables, packages, disk images
        "exe", "msi", "dmg", "pkg", "apk", "ipa", "deb", "rpm", "bin", "iso", "img", "jar",
        "appimage",
        # fonts
        "ttf", "otf", "woff", "woff2",
    }
)  # fmt: skip
"""Extensions (lowercase, without the dot) of the ``url.media_extension`` rule."""


class BlocklistError(WebtextError, ValueError):
    """A blocklist file cannot be read or has an invalid line (named as file:line)."""


def _domain_entry(line: str, where: str) -> str:
    """A blocklist line as a canonical host (lowercase, punycode, no ``www.``), or an error."""
    entry = line.strip().removeprefix("*.")
    try:
        canonical = canonicalize(f"http://{entry}/")
    except URLError as e:
        raise BlocklistError(f"{where}: not a domain: {entry!r}") from e
    host = urlsplit(canonical).hostname or ""
    if canonical != f"http://{host}/":
        raise BlocklistError(f"{where}: not a domain (a path or port?): {entry!r}")
    return host


def parse_blocklist(text: str, source: str) -> frozenset[str]:
    """Domains of a blocklist file's text: one per line, ``#`` comments, blank lines ignored."""
    domains = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            domains.add(_domain_entry(line, f"{source}:{number}"))
    return frozenset(domains)


@functools.lru_cache(maxsize=8)
def load_blocklist(path: str | None) -> frozenset[str]:
    """The domains of ``path`` (any storage path), or of the packaged default when ``None``.

    Cached per process: every worker parses a file once, not once per URL.
    """
    if path is None:
        ref = resources.files("pipeline.data").joinpath("blocklist.txt")
        return parse_blocklist(ref.read_text(encoding="utf-8"), "pipeline/data/blocklist.txt")
    from foundation import storage

    try:
        text = storage.read_text(path)
    except (OSError, UnicodeDecodeError) as e:
        raise BlocklistError(f"{path}: cannot read the blocklist: {e}") from e
    return parse_blocklist(text, path)


def _suffixes(host: str) -> list[str]:
    """``a.b.example.com`` -> [``a.b.example.com``, ``b.example.com``, ``example.com``, ``com``]."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def _extension(path: str) -> str:
    segment = unquote(path.rsplit("/", 1)[-1])
    _, dot, ext = segment.rpartition(".")
    return ext.lower() if dot else ""


@dataclass(frozen=True)
class UrlRules:
    """The exclusion rules of one :class:`FilterConfig`, with the blocklist loaded."""

    exclude_wikipedia: bool
    blocklist: frozenset[str]

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> UrlRules:
        return cls(cfg.exclude_wikipedia, load_blocklist(cfg.blocklist))

    def reason(self, canonical: str) -> str | None:
        """The rule that excludes a canonical URL, or ``None`` to keep it."""
        parts = urlsplit(canonical)
        host = parts.hostname or ""
        suffixes = _suffixes(host)
        if self.exclude_wikipedia and not WIKIMEDIA_DOMAINS.isdisjoint(suffixes):
            return "url.wikipedia"
        if not self.blocklist.isdisjoint(suffixes):
            return "url.blocklist"
        if _extension(parts.path) in MEDIA_EXTENSIONS:
            return "url.media_extension"
        return None


def exclusion_reason(canonical: str, cfg: FilterConfig) -> str | None:
    """The rule that excludes ``canonical``, or ``None``.

    Any spelling is accepted (it is canonicalised again, which is idempotent):
    ``url.malformed``/``url.not_http`` when it has no canonical form.
    """
    try:
        canonical = canonicalize(canonical)
    except URLError as e:
        return f"url.{e.reason}"
    return UrlRules.from_config(cfg).reason(canonical)

"""The canonical form of a URL: the key of URL dedup and the source of document ids.

Reddit users post the same page under many spellings (``HTTP://WWW.Example.com:80/a/?utm_source=x``
and ``http://example.com/a``). :func:`canonicalize` maps them to one string so the page is
fetched once and gets one :func:`doc_id`. The canonical form is a *key*, not necessarily a URL
to fetch: the fetcher uses the spelling a user posted (``www.`` is stripped here, and some hosts
only answer on ``www.``).

Rules, in order:

- surrounding whitespace is stripped; the scheme is lowercased and must be ``http`` or
  ``https`` (the two stay distinct: a site can serve different pages on them, and exact text
  dedup removes the duplicate when it does not);
- user info (``user:pass@``) is dropped: it is a credential, not part of the page's address;
- the host is lowercased, its trailing dot dropped, IDN labels encoded to punycode (IDNA 2008
  with UTS #46 mapping, falling back to Python's IDNA 2003 codec for names the strict rules
  reject), and a leading ``www.`` removed; the default port (80 for http, 443 for https) is
  dropped;
- percent-encoding is normalised in path and query: escapes of unreserved characters
  (``A-Z a-z 0-9 - . _ ~``) are decoded, other escapes get uppercase hex, and characters that
  may not appear raw (spaces, non-ASCII as UTF-8, a stray ``%``) are encoded;
- ``.`` and ``..`` path segments are resolved, an empty path becomes ``/`` and a trailing slash
  is removed from any other path (``/a/`` and ``/a`` are one key);
- query parameters named in :data:`TRACKING_PARAMS` or starting with one of
  :data:`TRACKING_PREFIXES` are removed (case-insensitively), empty parameters are dropped and
  the rest are sorted by (name, value);
- the fragment is dropped (it never reaches the server).

:func:`canonicalize` is idempotent: the canonical form of a canonical URL is itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

TRACKING_PREFIXES: tuple[str, ...] = ("utm_",)
"""Query parameter prefixes that only track a click (Google Analytics' ``utm_source`` ...)."""

TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",  # Facebook click id
        "gclid",  # Google Ads click id
        "gclsrc",
        "dclid",  # Google Display click id
        "gbraid",
        "wbraid",
        "msclkid",  # Microsoft Ads click id
        "yclid",  # Yandex click id
        "igshid",  # Instagram share id
        "mc_cid",  # Mailchimp campaign id
        "mc_eid",  # Mailchimp subscriber id
        "ref_src",  # Twitter referral source
        "ref_url",
        "_ga",  # Google Analytics cross-domain linker
        "_gl",
        "_hsenc",  # HubSpot
        "_hsmi",
        "mkt_tok",  # Marketo
        "oly_anon_id",  # Omeda
        "oly_enc_id",
        "vero_id",  # Vero
        "wickedid",  # Wicked Reports
        "twclid",  # Twitter Ads click id
        "ttclid",  # TikTok Ads click id
        "s_cid",  # Adobe campaign id
        "__s",  # Drip
    }
)
"""Query parameters removed from every URL: click and campaign ids that do not change the page.
Parameters with other meanings elsewhere (``ref``, ``source``, ``id``) are deliberately kept."""

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = "!$&'()*+,;="
# Characters left raw in each component; everything else is percent-encoded.
_PATH_SAFE = "".join(sorted(_UNRESERVED)) + _SUB_DELIMS + ":@/"
_QUERY_SAFE = "".join(sorted(_UNRESERVED)) + "!$'()*+,;=:@/?"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")


class URLError(ValueError):
    """A URL that has no canonical form; ``reason`` is ``"malformed"`` or ``"not_http"``."""

    def __init__(self, reason: str, url: str, why: str) -> None:
        super().__init__(f"{reason}: {why}: {url[:200]!r}")
        self.reason = reason


def _component_pattern(safe: str) -> re.Pattern[str]:
    return re.compile(r"%[0-9A-Fa-f]{2}|[^" + re.escape(safe) + r"]")


_PATH_RE = _component_pattern(_PATH_SAFE)
_QUERY_RE = _component_pattern(_QUERY_SAFE)


def _fix_escape(match: re.Match[str]) -> str:
    token = match.group(0)
    if len(token) == 3 and token[0] == "%":
        char = chr(int(token[1:], 16))
        return char if char in _UNRESERVED else token.upper()
    return "".join(f"%{b:02X}" for b in token.encode("utf-8", "surrogatepass"))


def _normalize_escapes(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(_fix_escape, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, on an absolute path."""
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments[1:], start=1):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def _canonical_path(path: str) -> str:
    path = _normalize_escapes(path, _PATH_RE)
    if not path.startswith("/"):
        path = "/" + path
    path = _remove_dot_segments(path)
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path


def _is_tracking(name: str) -> bool:
    key = unquote(name).lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


def _canonical_query(query: str) -> str:
    params = []
    for piece in query.split("&"):
        if not piece:
            continue
        piece = _normalize_escapes(piece, _QUERY_RE)
        name, _, value = piece.partition("=")
        if not name and not value:
            continue
        if _is_tracking(name):
            continue
        params.append((name, value, piece))
    params.sort(key=lambda p: (p[0], p[1]))
    return "&".join(p[2] for p in params)


def _idna(host: str, url: str) -> str:
    if host.isascii():
        return host
    import idna  # a dependency of requests (through praw); heavy-ish tables, so imported here

    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise URLError("malformed", url, f"host {host!r} is not a valid IDN") from e


def _canonical_host(parts: SplitResult, url: str) -> str:
    host = parts.hostname  # lowercased by urllib, brackets of IPv6 literals removed
    if not host:
        raise URLError("malformed", url, "no host")
    if ":" in host:  # an IPv6 literal
        try:
            return "[" + ipaddress.IPv6Address(host.split("%", 1)[0]).compressed + "]"
        except ValueError as e:
            raise URLError("malformed", url, f"bad IPv6 address {host!r}") from e
    host = unquote(host).rstrip(".")
    host = _idna(host, url).lower()
    labels = host.split(".")
    if (
        not host
        or len(host) > 253
        or not all(len(label) <= 63 and _HOST_LABEL.match(label) for label in labels)
    ):
        raise URLError("malformed", url, f"bad host {host!r}")
    if labels[0] == "www" and len(labels) > 2:
        host = host[4:]
    return host


def canonicalize(url: str) -> str:
    """The canonical form of ``url`` (rules in the module docstring).

    Raises:
        URLError: (a ValueError) with ``reason`` ``"not_http"`` for other schemes and
            ``"malformed"`` for anything that does not parse as an absolute http(s) URL.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError as e:
        raise URLError("malformed", url, str(e)) from e
    scheme = parts.scheme.lower()
    if not scheme:
        raise URLError("malformed", url, "no scheme")
    if scheme not in _DEFAULT_PORTS:
        raise URLError("not_http", url, f"scheme {scheme!r}")
    try:
        port = parts.port
    except ValueError as e:
        raise URLError("malformed", url, str(e)) from e
    host = _canonical_host(parts, url)
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return urlunsplit(
        (scheme, netloc, _canonical_path(parts.path), _canonical_query(parts.query), "")
    )


def doc_id(canonical: str) -> str:
    """A stable document id: 32 hex digits of BLAKE2b-128 over the canonical URL.

    A cryptographic hash, so nobody can craft a URL that collides with another page's id and
    pushes it out of the corpus.
    """
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).hexdigest()


def domain_of(canonical: str) -> str:
    """The host of a canonical URL (already lowercased, punycode, without ``www.`` or port)."""
    host = urlsplit(canonical).hostname
    if not host:
        raise URLError("malformed", canonical, "no host")
    return f"[{host}]" if ":" in host else host

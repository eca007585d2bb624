"""The SSRF guard: which addresses a crawler of Reddit links may connect to.

Reddit links point anywhere, including at a worker's own network (``http://169.254.169.254/``
is a cloud metadata service). Every host the fetcher contacts, on every redirect hop and for
robots.txt, goes through :func:`resolve_target` first, which

* normalises IPv4 literals the way ``inet_aton`` and browsers read them (``2130706433``,
  ``0x7f.1``, ``0177.0.0.1``, ``127.1`` are all 127.0.0.1), so such spellings are judged by the
  address they mean;
* resolves names with ``getaddrinfo`` and refuses the host if ANY address it resolves to is
  not public (a name may list a public and a private address and let the OS pick);
* returns the checked addresses, and the fetcher connects to one of them (never to the name),
  so a second DNS answer cannot swap in another address after the check (DNS rebinding).

Public means ``ipaddress``'s ``is_global``, and also not multicast; IPv6 addresses that embed an
IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, Teredo, NAT64 ``64:ff9b::/96``)
are judged by the IPv4 address too (IPv4-mapped ones are refused even for a public IPv4, as
``ipaddress`` files ``::/8`` as reserved: DNS has no reason to return them).
A non-public address passes only when ``allow`` (``fetch.allow_addresses``, parsed by
:mod:`foundation.allow_list`) has an entry for it and the port, or for the host name as
written; link-local and cloud-metadata addresses only through an entry within their own block.
Resolution and connecting to the resolved address stay the same.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from foundation.allow_list import AllowEntry, allows, sensitive_block

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class BlockedAddress(Exception):
    """The host is, or resolves to, an address the guard refuses."""


class ResolveError(Exception):
    """The host name does not resolve."""


@dataclass(frozen=True)
class Target:
    """A host checked by the guard: connect to ``addresses[0]``, send ``host`` as Host/SNI."""

    host: str  # as it goes in the Host header and TLS server name (IDNA, lower case)
    port: int
    addresses: tuple[str, ...]


def _ipv4_part(text: str) -> int | None:
    """One dot-separated part of an inet_aton-style IPv4 literal: decimal, 0x hex or 0 octal."""
    if not text:
        return None
    try:
        if text[:2].lower() == "0x":
            return int(text[2:] or "0", 16)
        if len(text) > 1 and text[0] == "0":
            return int(text[1:], 8)
        return int(text, 10) if text.isdigit() else None
    except ValueError:
        return None


def parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address an inet_aton-style literal means (``0x7f.1``), or None for a name."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_ipv4_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (5 - len(parts))):
        raise BlockedAddress(f"malformed IPv4 literal {host!r}")
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << (8 * (5 - len(parts))) | last
    return ipaddress.IPv4Address(number)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host literal means (IPv6 with or without brackets, any IPv4 form)."""
    bare = host.strip("[]").split("%", 1)[0]
    if ":" in bare:
        try:
            return ipaddress.IPv6Address(bare)
        except ValueError as e:
            raise BlockedAddress(f"malformed IPv6 literal {host!r}") from e
    return parse_ipv4_literal(bare.rstrip("."))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why the guard refuses ``ip`` (``"loopback"``, ``"private"``...), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and (why := refusal(inner)):
            return f"{why} (embedded in {ip})"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("carrier-grade NAT", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("not global", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def idna_host(host: str) -> str:
    """The ASCII (IDNA) lower-case form of a host name, as DNS and the Host header want it."""
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as e:
        raise ResolveError(f"cannot encode host {host!r} as IDNA ({e})") from e


def check_address(ip: IPAddress, host: str, port: int, allow: tuple[AllowEntry, ...]) -> None:
    """Raise BlockedAddress unless ``ip`` is public or ``allow`` lets ``host``:``port`` at it
    through (``host`` as in the URL, IDNA lower case)."""
    why = refusal(ip)
    if why is None:
        return
    inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    sensitive = sensitive_block(ip) or (sensitive_block(inner) if inner else None)
    if allows(allow, ip, host, port, sensitive):
        return
    listed = allows(allow, ip, host, port, None) if sensitive else None
    if listed:
        why += f" (in {sensitive}: fetch.allow_addresses must list it within that block)"
    raise BlockedAddress(f"{host}:{port} -> {ip} is {why}")


def resolve_target(host: str, port: int, allow: tuple[AllowEntry, ...] = ()) -> Target:
    """Resolve and check ``host``; raise BlockedAddress or ResolveError if it may not be used."""
    literal = parse_ip_literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
        name = f"[{literal}]" if literal.version == 6 else str(literal)
    else:
        name = idna_host(host)
        if not name:
            raise ResolveError("empty host")
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise ResolveError(f"cannot resolve {name!r} ({e})") from e
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise ResolveError(f"{name!r} resolves to no address")
    for ip in addresses:
        check_address(ip, name, port, allow)
    return Target(host=name, port=port, addresses=tuple(str(ip) for ip in addresses))

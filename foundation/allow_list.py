"""``fetch.allow_addresses``: the entries that let the fetcher reach non-public addresses.

The SSRF guard (``pipeline.address_guard``) refuses every loopback, private, link-local,
multicast and reserved address. An intranet mirror or a local test server is let through by
listing it, as narrowly as the user likes:

    "10.1.2.3"            one address, any port
    "10.0.0.0/8"          a CIDR range (IPv4 or IPv6: "fd00::/8"), any port
    "127.0.0.1:8080"      an address or range on one port ("[::1]:8080", "10.0.0.0/8:443")
    "mirror.intranet"     a host name as written in the URL: whatever it resolves to
    "mirror.intranet:80"  the same on one port

Link-local addresses, where the cloud metadata services live (169.254.169.254, fd00:ec2::254),
are never opened by a wider entry: only an entry within their own block lists them
("169.254.169.254", "169.254.0.0/16", "fe80::/10"); a host name entry never does. So
"0.0.0.0/0" opens every private address but not the metadata service.

Parsed here, in the foundation, so the config rejects a malformed entry before the job starts.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SENSITIVE: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS, GCP, Azure, OCI metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)
"""Blocks that only an entry inside them opens (see the module docstring)."""

_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")
_NUMERIC = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


@dataclass(frozen=True)
class AllowEntry:
    """One parsed entry: a network or a host name, and a port (None: any)."""

    text: str
    network: Network | None = None
    name: str | None = None
    port: int | None = None


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{entry!r}: port {text!r} is not a number in 1-65535")
    return int(text)


def _network(text: str, entry: str) -> Network:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise ValueError(f"{entry!r}: {e}") from e


def parse_entry(entry: str) -> AllowEntry:
    """An entry of the module docstring's forms; ValueError saying what is wrong otherwise."""
    text = entry.strip().lower()
    if not text:
        raise ValueError("an empty entry")
    if text.startswith("["):  # [v6] or [v6/len], with an optional :port
        inside, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r}: expected [IPv6] or [IPv6]:port")
        port = _port(rest[1:], entry) if rest else None
        return AllowEntry(entry, network=_network(inside, entry), port=port)
    if text.count(":") > 1:  # a bare IPv6 address or range: no port
        return AllowEntry(entry, network=_network(text, entry))
    host, sep, port_text = text.partition(":")
    port = _port(port_text, entry) if sep else None
    if re.fullmatch(r"[0-9./]+", host):
        return AllowEntry(entry, network=_network(host, entry), port=port)
    if not _NAME.fullmatch(host) or _NUMERIC.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        raise ValueError(f"{entry!r}: not an address, a CIDR range nor a host name")
    return AllowEntry(entry, name=host.rstrip(".").encode("idna").decode("ascii"), port=port)


def parse_allow_list(entries: tuple[str, ...]) -> tuple[AllowEntry, ...]:
    return tuple(parse_entry(e) for e in entries)


def sensitive_block(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Network | None:
    """The link-local/metadata block ``ip`` is in, or None."""
    return next((b for b in SENSITIVE if b.version == ip.version and ip in b), None)


def allows(
    entries: tuple[AllowEntry, ...],
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    host: str,
    port: int,
    sensitive: Network | None,
) -> AllowEntry | None:
    """The entry that lets ``host`` (as in the URL, IDNA lower case) at ``ip``:``port``
    through, or None. ``sensitive`` is the block of :data:`SENSITIVE` the address belongs to
    (the caller also judges IPv4 addresses embedded in IPv6 ones): only entries within it
    count then."""
    for e in entries:
        if e.port is not None and e.port != port:
            continue
        if e.name is not None:
            if e.name == host and sensitive is None:
                return e
            continue
        assert e.network is not None
        if e.network.version != ip.version or ip not in e.network:
            continue
        if sensitive is None or (
            e.network.version == sensitive.version and e.network.subnet_of(sensitive)
        ):
            return e
    return None

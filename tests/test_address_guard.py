"""The SSRF guard: every spelling of a private address is refused, public ones pass."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from pipeline.address_guard import (
    BlockedAddress,
    ResolveError,
    parse_ip_literal,
    refusal,
    resolve_target,
)

REFUSED = [
    # IPv4
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "private"),  # reserved 240/4; ipaddress files it under private too
    ("0.0.0.0", "unspecified"),
    ("255.255.255.255", "private"),
    ("192.0.2.10", "private"),  # documentation ranges are not global either
    # IPv4 tricks: decimal, hex, octal, short forms
    ("2130706433", "loopback"),
    ("0x7f000001", "loopback"),
    ("0x7f.1", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("0", "unspecified"),
    ("0xa9.0xfe.0xa9.0xfe", "link-local"),
    ("2852039166", "link-local"),
    ("127.0.0.1.", "loopback"),
    # IPv6
    ("::1", "loopback"),
    ("[::1]", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("fec0::1", "site-local"),
    ("4000::1", "reserved"),
    ("2001:db8::1", "private"),
    # IPv6 embedding a private IPv4
    ("::ffff:127.0.0.1", "loopback"),
    ("[::ffff:7f00:1]", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("::ffff:8.8.8.8", "reserved"),  # mapped addresses are refused outright (::/8)
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::1"]


@pytest.mark.parametrize("host,why", REFUSED)
def test_refused_without_allow_private(host, why):
    with pytest.raises(BlockedAddress, match=why):
        resolve_target(host, 80)


@pytest.mark.parametrize("host,_why", REFUSED)
def test_allowed_with_allow_private(host, _why):
    target = resolve_target(host, 80, allow_private=True)
    assert target.addresses == (str(parse_ip_literal(host)),)


@pytest.mark.parametrize("host", PUBLIC)
def test_public_addresses_pass(host):
    assert refusal(ipaddress.ip_address(host)) is None
    assert resolve_target(host, 443).addresses == (str(ipaddress.ip_address(host)),)


@pytest.mark.parametrize(
    "literal,address",
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0x08.0x08.0x08.0x08", "8.8.8.8"),
    ],
)
def test_ipv4_literal_forms_match_inet_aton(literal, address):
    assert str(parse_ip_literal(literal)) == address
    assert socket.inet_ntoa(socket.inet_aton(literal)) == address


@pytest.mark.parametrize("name", ["example.com", "0x.example", "1.2.3.example", "xn--caf-dma.fr"])
def test_names_are_not_literals(name):
    assert parse_ip_literal(name) is None


@pytest.mark.parametrize("bad", ["256.1.1.1", "1.2.3.4294967296", "0x1ffffffff"])
def test_out_of_range_literals_refused(bad):
    with pytest.raises(BlockedAddress):
        resolve_target(bad, 80, allow_private=True)


def test_name_resolving_to_loopback_is_refused():
    with pytest.raises(BlockedAddress, match=r"localhost -> .* is loopback"):
        resolve_target("localhost", 80)
    target = resolve_target("localhost", 80, allow_private=True)
    assert target.host == "localhost"
    assert all(ipaddress.ip_address(a).is_loopback for a in target.addresses)


def test_unresolvable_name():
    with pytest.raises(ResolveError):
        resolve_target("no-such-host.invalid", 80)

"""The SSRF guard: every spelling of a private address is refused, public ones pass."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from foundation.allow_list import parse_allow_list
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

EVERYTHING = parse_allow_list(("0.0.0.0/0", "::/0"))

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::1"]


@pytest.mark.parametrize("host,why", REFUSED)
def test_refused_by_default(host, why):
    with pytest.raises(BlockedAddress, match=why):
        resolve_target(host, 80)


@pytest.mark.parametrize("host,why", REFUSED)
def test_the_widest_allow_list_opens_all_but_link_local(host, why):
    """0.0.0.0/0 and ::/0 open every private address, never the metadata service's block."""
    if "link-local" in why:
        with pytest.raises(BlockedAddress, match="must list it within that block"):
            resolve_target(host, 80, allow=EVERYTHING)
    else:
        target = resolve_target(host, 80, allow=EVERYTHING)
        assert target.addresses == (str(parse_ip_literal(host)),)


@pytest.mark.parametrize(
    "entry,host",
    [
        ("169.254.169.254", "169.254.169.254"),
        ("169.254.0.0/16", "0xa9.0xfe.0xa9.0xfe"),
        ("fe80::/10", "fe80::1"),
        ("[fe80::1]:80", "fe80::1"),
    ],
)
def test_link_local_opens_only_when_listed_within_its_block(entry, host):
    assert resolve_target(host, 80, allow=parse_allow_list((entry,))).addresses
    with pytest.raises(BlockedAddress):
        resolve_target(host, 80, allow=parse_allow_list(("0.0.0.0/0", "::/0", "localhost")))


def test_an_address_and_port_entry_opens_that_port_only():
    allow = parse_allow_list(("127.0.0.1:8080", "10.0.0.0/30"))
    assert resolve_target("127.0.0.1", 8080, allow=allow).addresses == ("127.0.0.1",)
    assert resolve_target("10.0.0.3", 1, allow=allow).addresses == ("10.0.0.3",)
    for host, port in [("127.0.0.1", 8081), ("127.0.0.2", 8080), ("2130706434", 8080),
                       ("10.0.0.4", 1), ("::ffff:127.0.0.1", 8080)]:  # fmt: skip
        with pytest.raises(BlockedAddress):
            resolve_target(host, port, allow=allow)


def test_a_host_name_entry_opens_that_name_not_its_address():
    allow = parse_allow_list(("LocalHost.:80",))
    target = resolve_target("localhost", 80, allow=allow)
    assert all(ipaddress.ip_address(a).is_loopback for a in target.addresses)
    for host, port in [("localhost", 81), ("127.0.0.1", 80)]:
        with pytest.raises(BlockedAddress):
            resolve_target(host, port, allow=allow)


@pytest.mark.parametrize(
    "entry", ["10.0.0.1/8", "127.1", "0x7f.1", "1.2.3.4:0", "[::1", "a b", "300.1.1.1", ""]
)
def test_malformed_entries_are_refused(entry):
    with pytest.raises(ValueError):
        parse_allow_list((entry,))


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
        resolve_target(bad, 80, allow=EVERYTHING)


def test_name_resolving_to_loopback_is_refused():
    with pytest.raises(BlockedAddress, match=r"localhost:80 -> .* is loopback"):
        resolve_target("localhost", 80)
    target = resolve_target("localhost", 80, allow=EVERYTHING)
    assert target.host == "localhost"
    assert all(ipaddress.ip_address(a).is_loopback for a in target.addresses)


def test_unresolvable_name():
    with pytest.raises(ResolveError):
        resolve_target("no-such-host.invalid", 80)

"""The PROXY protocol parser and the forwarding-header function, without
sockets: headers as HAProxy's spec writes them, fed whole and split at every
byte, and the spoofing cases of X-Forwarded-For and Forwarded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.proxy_headers import inet, tlv, v2
from tests.support.requests import H1_GET
from trio_h2._core.forwarded import TrustedProxies, forwarded_client
from trio_h2._core.proxy_protocol import (
    NEED_MORE,
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    InvalidProxyHeader,
    ProxyHeader,
    parse_proxy_header,
)

VALID = [
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
     ProxyHeader(1, "proxy", ("192.0.2.1", 56324), ("198.51.100.2", 443), (), b"")),
    (b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n",
     ProxyHeader(1, "proxy", ("2001:db8::1", 65535), ("2001:db8::2", 0), (), b"")),
    (b"PROXY UNKNOWN\r\n", ProxyHeader(1, "proxy", None, None, (), b"")),
    (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
     ProxyHeader(1, "proxy", None, None, (), b"")),
    (v2(1, 1, 1, inet("192.0.2.1", "198.51.100.2", (56324, 443))),
     ProxyHeader(2, "proxy", ("192.0.2.1", 56324), ("198.51.100.2", 443), (), b"")),
    (v2(1, 2, 1, inet("2001:db8::1", "::1", (1, 2)) + tlv(0x01, b"h2") + tlv(0x04, b"")),
     ProxyHeader(2, "proxy", ("2001:db8::1", 1), ("::1", 2), ((0x01, b"h2"), (0x04, b"")),
                 b"")),
    (v2(1, 3, 1, b"/run/client".ljust(108, b"\0") + b"/run/server".ljust(108, b"\0")),
     ProxyHeader(2, "proxy", ("/run/client", None), ("/run/server", None), (), b"")),
    # LOCAL: a health check from the proxy; its address block is skipped.
    (v2(0, 1, 1, inet("10.0.0.1", "10.0.0.2", (1, 2))),
     ProxyHeader(2, "local", None, None, (), b"")),
    (v2(0, 0, 0, b""), ProxyHeader(2, "local", None, None, (), b"")),
    (v2(1, 0, 0, tlv(0x05, b"id")), ProxyHeader(2, "proxy", None, None, ((0x05, b"id"),),
                                                b"")),
]


@pytest.mark.parametrize(("header", "expected"), VALID, ids=range(len(VALID)))
def test_valid_header_split_at_every_byte(header: bytes, expected: ProxyHeader) -> None:
    data = header + H1_GET
    for cut in range(len(header)):
        assert parse_proxy_header(data[:cut]) is NEED_MORE, cut
    for cut in range(len(header), len(data) + 1):
        result = parse_proxy_header(data[:cut])
        assert isinstance(result, ProxyHeader), (cut, result)
        assert result == ProxyHeader(expected.version, expected.command, expected.source,
                                     expected.destination, expected.tlvs, data[len(header):cut])


INVALID = [
    (H1_GET, "no PROXY protocol signature"),
    (b"\x16\x03\x01\x02\x00", "no PROXY protocol signature"),  # a TLS ClientHello
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n", "not ended by CRLF"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 \r\n", "malformed PROXY v1 line"),
    (b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n", "malformed PROXY v1 line"),
    (b"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n", "malformed PROXY v1 line"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n", "port out of range"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 0443 443\r\n", "malformed PROXY v1 line"),
    (b"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n", "'192.0.2.01' is not an IP address"),
    (b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", "is not an IPv4 address"),
    (b"PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n", "is not an IPv6 address"),
    (b"PROXY UNKNOWN" + b" " * 100, "without CRLF in its first 107 bytes"),
    (V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12), "version 1"),
    (V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12), "unknown command 0x2"),
    (V2_SIGNATURE + b"\x21\x41\x00\x00", "unknown family/transport 0x41"),
    (V2_SIGNATURE + b"\x21\x13\x00\x00", "unknown family/transport 0x13"),
    (v2(1, 1, 1, bytes(11)), "address block of 11 bytes, family 0x1 needs 12"),
    (v2(1, 2, 1, bytes(12)), "address block of 12 bytes, family 0x2 needs 36"),
    (v2(1, 1, 2, inet("192.0.2.1", "192.0.2.2", (1, 2))), "datagram"),
    (v2(1, 1, 1, inet("192.0.2.1", "192.0.2.2", (1, 2)) + b"\x01\x00"), "TLV cut short"),
    (v2(1, 1, 1, inet("192.0.2.1", "192.0.2.2", (1, 2)) + b"\x01\x00\x05ab"),
     "TLV 0x01 of 5 bytes runs past the header by 3"),
]


@pytest.mark.parametrize(("data", "reason"), INVALID, ids=range(len(INVALID)))
def test_invalid_header_says_why(data: bytes, reason: str) -> None:
    result = parse_proxy_header(data)
    assert isinstance(result, InvalidProxyHeader), result
    assert reason in result.reason
    # Each prefix is either still possible or already invalid, never valid.
    for cut in range(len(data)):
        assert not isinstance(parse_proxy_header(data[:cut]), ProxyHeader)


def test_v1_needs_at_most_107_bytes() -> None:
    # The spec's worst case: UNKNOWN with two full-length IPv6 addresses.
    longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " \
              b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
    assert len(longest) == V1_MAX_LENGTH
    assert isinstance(parse_proxy_header(longest), ProxyHeader)
    assert parse_proxy_header(longest[:-1]) is NEED_MORE
    too_long = longest[:-2] + b"5\r\n"
    assert isinstance(parse_proxy_header(too_long), InvalidProxyHeader)


@given(st.binary(max_size=300))
def test_any_bytes_get_an_answer(data: bytes) -> None:
    result = parse_proxy_header(data)
    assert isinstance(result, ProxyHeader | InvalidProxyHeader) or result is NEED_MORE
    if result is NEED_MORE:  # only ever a prefix of a possible header
        assert len(data) < 16 + 0xFFFF


# -- forwarding headers ------------------------------------------------------------------

PROXY = ("10.0.0.5", 40000)
TRUSTED = TrustedProxies.parse("10.0.0.0/8, 192.168.1.1")


def headers(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in pairs]


@pytest.mark.parametrize(("peer", "fields", "expected"), [
    # A trusted proxy: the right-most untrusted hop is the client.
    (PROXY, [("x-forwarded-for", "203.0.113.7")], (("203.0.113.7", 0), "http")),
    (PROXY, [("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")],
     (("203.0.113.7", 0), "http")),
    (PROXY, [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.7")],
     (("203.0.113.7", 0), "http")),
    (PROXY, [("x-forwarded-for", "10.1.1.1, 192.168.1.1")], (("10.1.1.1", 0), "http")),
    (PROXY, [("x-forwarded-for", "2001:db8::7"), ("x-forwarded-proto", "https")],
     (("2001:db8::7", 0), "https")),
    (PROXY, [("x-forwarded-proto", "gopher")], (PROXY, "http")),
    (PROXY, [("x-forwarded-for", "not-an-ip")], (None, "http")),
    (PROXY, [], (PROXY, "http")),
    # An untrusted peer: its headers are ignored.
    (("203.0.113.9", 5000), [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")],
     (("203.0.113.9", 5000), "http")),
    (None, [("x-forwarded-for", "1.2.3.4")], (None, "http")),
])
def test_x_forwarded(peer: tuple[str, int] | None, fields: list[tuple[str, str]],
                     expected: tuple[object, str]) -> None:
    assert forwarded_client(headers(*fields), peer, "http", TRUSTED) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ('for=203.0.113.7;proto=https', (("203.0.113.7", 0), "https")),
    ('for="[2001:db8::7]:4711", for=10.0.0.9;proto=http', (("2001:db8::7", 4711), "http")),
    ('for=6.6.6.6;proto=http, for=203.0.113.7;proto=https;by=10.0.0.5',
     (("203.0.113.7", 0), "https")),
    ('for=unknown', (None, "http")),
    ('for=_hidden, for=10.0.0.9', (None, "http")),
    ('for="203.0.113.7:80"', (("203.0.113.7", 80), "http")),
    ('proto=https', (None, "https")),
    ('for=203.0.113.7;;', (None, "http")),
])
def test_forwarded(value: str, expected: tuple[object, str]) -> None:
    fields = headers(("forwarded", value), ("x-forwarded-for", "9.9.9.9"))
    assert forwarded_client(fields, PROXY, "http", TRUSTED, "forwarded") == expected


def test_everyone_trusted_takes_the_left_most() -> None:
    fields = headers(("x-forwarded-for", "203.0.113.7, 10.1.1.1"))
    assert forwarded_client(fields, None, "http", TrustedProxies.parse("*")) == (
        ("203.0.113.7", 0), "http")


def test_bad_allow_list_entry() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP address or network"):
        TrustedProxies.parse("127.0.0.1,10.0.0.0/33")

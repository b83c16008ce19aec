"""The PROXY protocol, versions 1 and 2 (HAProxy's proxy-protocol.txt). Pure.

A load balancer that speaks it (HAProxy ``send-proxy``/``send-proxy-v2``,
AWS NLB, nginx ``proxy_protocol on``) writes one header before the client's
first byte, saying whom the connection is really from and to. This module
reads that header from bytes and says what it found; it never touches a
socket, and takes no time: the caller bounds how long it waits for bytes.

:func:`parse_proxy_header` answers one of three things for the bytes
received so far:

* :class:`ProxyHeader`: the addresses, the TLVs (v2) and the bytes after the
  header (the client's TLS ClientHello or HTTP bytes);
* :data:`NEED_MORE`: a header that may still become valid; call again with
  more bytes (never more than :data:`V1_MAX_LENGTH` or :data:`V2_MAX_LENGTH`
  bytes are needed);
* :class:`InvalidProxyHeader`: why the bytes are not a valid header (the
  connection must then be closed: the spec forbids guessing).

``LOCAL`` (v2) and ``UNKNOWN`` (v1) headers, and v2 headers with the
``UNSPEC`` family, carry no addresses (a health check from the proxy
itself): ``source`` and ``destination`` are ``None`` and the real
connection's addresses apply. The CRC32C TLV is returned, not checked (the
spec asks receivers that support checksums to check them; this one does not).
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import Final, Literal, final

from .exchange import Address

__all__ = ["NEED_MORE", "V1_MAX_LENGTH", "V2_MAX_LENGTH", "InvalidProxyHeader", "NeedMore",
           "ProxyHeader", "parse_proxy_header"]

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# Section 2.1: "a receiver ... must not try to read more than 107 characters"
# (the longest TCP6 line with its CRLF).
V1_MAX_LENGTH = 107
# Section 2.2: 16 fixed bytes, then a 16-bit length of what follows.
V2_FIXED = 16
V2_MAX_LENGTH = V2_FIXED + 0xFFFF
# Section 2.2: the address block of each family, in bytes.
V2_ADDRESS_LENGTHS = {0x1: 12, 0x2: 36, 0x3: 216}
UNIX_PATH_LENGTH = 108


@final
@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete header, and what came after it."""

    version: Literal[1, 2]
    command: Literal["proxy", "local"]
    source: Address | None
    """The client, as the proxy saw it: ``(ip, port)``, ``(path, None)`` for
    AF_UNIX, or ``None`` (LOCAL, UNKNOWN, UNSPEC)."""
    destination: Address | None
    tlvs: tuple[tuple[int, bytes], ...]
    """Version 2's type-length-value fields, in order (empty for version 1)."""
    rest: bytes
    """The bytes after the header: the start of the client's own stream."""


@final
@dataclass(frozen=True, slots=True)
class InvalidProxyHeader:
    """Not a valid PROXY header; ``reason`` says what is wrong, for one log line."""

    reason: str


@final
class NeedMore:
    """The bytes so far are the start of a header: wait for more."""

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE: Final = NeedMore()

Result = ProxyHeader | NeedMore | InvalidProxyHeader


def parse_proxy_header(data: bytes) -> Result:
    """What ``data``, the first bytes of a connection, hold: a complete PROXY
    header (v1 or v2), the start of one, or something else (see the module
    docstring)."""
    for signature, parse in ((V2_SIGNATURE, _parse_v2), (V1_PREFIX, _parse_v1)):
        if data.startswith(signature):
            return parse(data)
        if signature.startswith(data[:len(signature)]):
            return NEED_MORE  # a prefix of the signature
    return InvalidProxyHeader(f"no PROXY protocol signature: first bytes {data[:16]!r}")


# -- version 1: one line of text ------------------------------------------------------

_PORT = r"(0|[1-9][0-9]{0,4})"
_V1_LINE = re.compile(
    rb"PROXY (?P<family>TCP4|TCP6) (?P<src>[0-9A-Fa-f.:]+) (?P<dst>[0-9A-Fa-f.:]+) "
    rb"(?P<sport>" + _PORT.encode() + rb") (?P<dport>" + _PORT.encode() + rb")")


def _parse_v1(data: bytes) -> Result:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            return InvalidProxyHeader(f"PROXY v1 line without CRLF in its first "
                                      f"{V1_MAX_LENGTH} bytes")
        if b"\n" in data or b"\r" in data[:-1]:
            return InvalidProxyHeader(f"PROXY v1 line not ended by CRLF: {data[:end]!r}")
        return NEED_MORE
    line, rest = data[:end], data[end + 2:]
    if line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN "):
        # Section 2.1: the rest of an UNKNOWN line is to be ignored.
        return ProxyHeader(1, "proxy", None, None, (), rest)
    match = _V1_LINE.fullmatch(line)
    if match is None:
        return InvalidProxyHeader(f"malformed PROXY v1 line: {line!r}")
    version = 4 if match["family"] == b"TCP4" else 6
    addresses = []
    for name in ("src", "dst"):
        text = match[name].decode("ascii")
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return InvalidProxyHeader(f"PROXY v1 {name} {text!r} is not an IP address")
        if address.version != version:
            return InvalidProxyHeader(f"PROXY v1 {name} {text!r} is not an IPv{version} "
                                      f"address ({match['family'].decode()})")
        addresses.append(str(address))
    ports = [int(match[name]) for name in ("sport", "dport")]
    if max(ports) > 65535:
        return InvalidProxyHeader(f"PROXY v1 port out of range: {line!r}")
    return ProxyHeader(1, "proxy", (addresses[0], ports[0]), (addresses[1], ports[1]), (),
                       rest)


# -- version 2: binary -------------------------------------------------------------------


def _parse_v2(data: bytes) -> Result:
    if len(data) < V2_FIXED:
        return NEED_MORE
    version_command, family_transport, length = struct.unpack_from("!BBH", data, 12)
    if version_command >> 4 != 2:
        return InvalidProxyHeader(f"PROXY v2 header with version {version_command >> 4}")
    command = version_command & 0xF
    if command not in (0x0, 0x1):
        return InvalidProxyHeader(f"PROXY v2 header with unknown command {command:#x}")
    family, transport = family_transport >> 4, family_transport & 0xF
    if family > 0x3 or transport > 0x2:
        return InvalidProxyHeader(f"PROXY v2 header with unknown family/transport "
                                  f"{family_transport:#04x}")
    if len(data) < V2_FIXED + length:
        return NEED_MORE
    body, rest = data[V2_FIXED:V2_FIXED + length], data[V2_FIXED + length:]
    address_length = V2_ADDRESS_LENGTHS.get(family, 0)
    if len(body) < address_length:
        return InvalidProxyHeader(f"PROXY v2 address block of {len(body)} bytes, family "
                                  f"{family:#x} needs {address_length}")
    tlvs = _tlvs(body[address_length:])
    if isinstance(tlvs, InvalidProxyHeader):
        return tlvs
    if command == 0x0:  # LOCAL: the proxy's own connection (health check)
        return ProxyHeader(2, "local", None, None, tlvs, rest)
    if transport == 0x2:
        return InvalidProxyHeader("PROXY v2 header for a datagram (UDP) connection on a "
                                  "stream socket")
    if family == 0x0:  # UNSPEC: "the receiver should ignore address information"
        return ProxyHeader(2, "proxy", None, None, tlvs, rest)
    source, destination = _addresses(family, body[:address_length])
    return ProxyHeader(2, "proxy", source, destination, tlvs, rest)


def _addresses(family: int, block: bytes) -> tuple[Address, Address]:
    if family == 0x3:
        paths = [block[i:i + UNIX_PATH_LENGTH].split(b"\0", 1)[0]
                 for i in (0, UNIX_PATH_LENGTH)]
        return ((paths[0].decode("utf-8", "surrogateescape"), None),
                (paths[1].decode("utf-8", "surrogateescape"), None))
    size = 4 if family == 0x1 else 16
    source = ipaddress.ip_address(block[:size])
    destination = ipaddress.ip_address(block[size:2 * size])
    source_port, destination_port = struct.unpack_from("!HH", block, 2 * size)
    return (str(source), source_port), (str(destination), destination_port)


def _tlvs(data: bytes) -> tuple[tuple[int, bytes], ...] | InvalidProxyHeader:
    """Section 2.2.7: each TLV is a type byte, a 16-bit length and the value;
    they must fill the rest of the header exactly."""
    tlvs = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            return InvalidProxyHeader(f"PROXY v2 TLV cut short: {len(data) - offset} bytes "
                                      f"left for a 3-byte TLV header")
        kind, length = struct.unpack_from("!BH", data, offset)
        end = offset + 3 + length
        if end > len(data):
            return InvalidProxyHeader(f"PROXY v2 TLV {kind:#04x} of {length} bytes runs past "
                                      f"the header by {end - len(data)}")
        tlvs.append((kind, data[offset + 3:end]))
        offset = end
    return tuple(tlvs)

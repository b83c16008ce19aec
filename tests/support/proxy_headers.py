"""PROXY protocol v2 headers, built the way HAProxy's spec writes them."""

from __future__ import annotations

import ipaddress
import struct

from trio_h2._core.proxy_protocol import V2_SIGNATURE


def v2(command: int, family: int, transport: int, body: bytes) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family << 4 | transport,
                                      len(body)) + body


def inet(source: str, destination: str, ports: tuple[int, int]) -> bytes:
    return (ipaddress.ip_address(source).packed + ipaddress.ip_address(destination).packed
            + struct.pack("!HH", *ports))


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value

"""Requests as the tests send them, built here once (STYLE item 19): HTTP/2
header lists (for any h2 client, or as a stateless HPACK block for raw frames)
and HTTP/1.1 request heads.

Requests a test means to be malformed are better written out in the test,
byte for byte, where the reader sees what is wrong with them.
"""

from __future__ import annotations

from tests.support.frames import Field, as_bytes, block

Header = tuple[bytes, bytes]


def request(method: str | bytes = "GET", path: str | bytes = "/", *extra: Field,
            scheme: str | bytes = "http", authority: str | bytes = "localhost") -> list[Header]:
    """An HTTP/2 request's header list: the four pseudo-header fields, then ``extra``."""
    fields = [(":method", method), (":scheme", scheme), (":path", path),
              (":authority", authority), *extra]
    return [(as_bytes(name), as_bytes(value)) for name, value in fields]


GET = request()
POST = request("POST", "/up")
"""An upload to ``/up`` whose body is still to come."""


def request_block(method: str | bytes = "GET", path: str | bytes = "/", *extra: Field) -> bytes:
    """:func:`request` as an HPACK block that needs no encoder state
    (:func:`tests.support.frames.block`): any number of times, on any stream."""
    return block(request(method, path, *extra))


def h1_request(method: str = "GET", target: str = "/", *extra: tuple[str, str],
               host: str = "x") -> bytes:
    """An HTTP/1.1 request head: request line, ``Host``, ``extra`` fields, the
    empty line. A body, if any, is the caller's to append (and to announce)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}",
             *(f"{name}: {value}" for name, value in extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


H1_GET = h1_request()

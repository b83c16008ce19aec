"""Request header validation and response header preparation (RFC 9113 8.2-8.3).

Pure functions over ``list[tuple[bytes, bytes]]``. h2 can validate headers
too, but it answers every malformed request with a connection error; RFC 9113
section 8.1.1 makes a malformed request a *stream* error, so that one bad
request does not cost the client its other streams. trio_h2 therefore turns
h2's inbound validation off and does it here. (Content-length checks stay in
h2, which treats them as connection errors; section 5.4.1 allows that.)
"""

from __future__ import annotations

import email.utils
import http
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import final

from .errors import LocalProtocolError

Headers = list[tuple[bytes, bytes]]

# RFC 9113 section 8.2.2: fields that only make sense for one HTTP/1.1 hop.
CONNECTION_SPECIFIC = frozenset(
    [b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"]
)
REQUEST_PSEUDO = frozenset([b":method", b":scheme", b":authority", b":path"])

# RFC 9113 section 8.2.1: no 0x00-0x20, no uppercase, no 0x7f-0xff, and no
# colon outside the leading one of a pseudo-header.
_BAD_NAME = re.compile(rb"[\x00-\x20A-Z\x7f-\xff:]")
# RFC 9113 section 8.2.1: no NUL, CR or LF anywhere, no leading or trailing
# SP/HTAB (see _bad_value; one regex with anchors took twice as long).
_BAD_VALUE_CHAR = re.compile(rb"[\x00\r\n]")
_WHITESPACE = (b" ", b"\t")
# RFC 9110 section 5.1: a field name is a token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+")


class MalformedRequest(Exception):
    """The request breaks RFC 9113 section 8; answer with RST_STREAM PROTOCOL_ERROR."""


@final
@dataclass(frozen=True, slots=True)
class RequestHead:
    """A validated request header block."""

    method: bytes
    scheme: bytes
    authority: bytes | None
    path: bytes
    headers: Headers
    """Regular fields, pseudo-headers removed, in the order received."""
    protocol: bytes | None = None
    """The protocol the request opens a tunnel for: ``b"websocket"`` for a
    WebSocket handshake (HTTP/2 extended CONNECT's ``:protocol``, RFC 8441;
    HTTP/1.1 ``Upgrade: websocket``, RFC 6455), else None."""

    @property
    def host(self) -> bytes | None:
        """The request's authority: ``:authority``, else its ``host`` field
        (an HTTP/2 request may carry either, RFC 9113 section 8.3.1)."""
        return self.authority or next((v for n, v in self.headers if n == b"host"), None)


def declared_length(head: RequestHead) -> int | None:
    """The request's ``content-length``, or None if it has none (validated
    already: a malformed one is refused before a head is made)."""
    length = next((value for name, value in head.headers if name == b"content-length"), b"")
    return int(length) if length.isdigit() else None


def expects_continue(head: RequestHead) -> bool:
    """The request says ``expect: 100-continue`` (RFC 9110 section 10.1.1)."""
    return any(name == b"expect" and value.lower() == b"100-continue"
               for name, value in head.headers)


def validate_request(fields: Headers, *, extended_connect: bool = False) -> RequestHead:
    """Check a request header block and split off its pseudo-headers.

    ``:protocol`` (RFC 8441 section 4) is a pseudo-header only once we have
    sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (``extended_connect``), and
    only on CONNECT, which then has ``:scheme`` and ``:path`` like any
    request. Raises :exc:`MalformedRequest` naming the first rule broken.
    """
    pseudo: dict[bytes, bytes] = {}
    regular: Headers = []
    for field in fields:
        name, value = field
        if not name:
            raise MalformedRequest("empty field name")
        if name[:1] == b":":
            if regular:
                raise MalformedRequest(f"pseudo-header {name!r} after a regular field")
            if name not in REQUEST_PSEUDO and not (extended_connect and name == b":protocol"):
                raise MalformedRequest(f"unknown pseudo-header {name!r}")
            if name in pseudo:
                raise MalformedRequest(f"duplicate pseudo-header {name!r}")
            pseudo[name] = value
        else:
            _check_field(name, value)
            regular.append(field)  # h2's tuple: a new one would cost 64 bytes a field
        if _bad_value(value):
            raise MalformedRequest(f"invalid value for field {name!r}")

    method = pseudo.get(b":method")
    if not method:
        raise MalformedRequest("missing :method")
    authority = pseudo.get(b":authority")
    protocol = pseudo.get(b":protocol")
    if protocol is not None:
        if method != b"CONNECT":
            raise MalformedRequest(f":protocol with method {method!r} (only CONNECT)")
        if not protocol or not authority:
            raise MalformedRequest("extended CONNECT needs :protocol and :authority")
    elif method == b"CONNECT":
        # RFC 9113 section 8.5: :scheme and :path are omitted, :authority required.
        if b":scheme" in pseudo or b":path" in pseudo or not authority:
            raise MalformedRequest("CONNECT needs :authority and no :scheme or :path")
        return RequestHead(method, b"", authority, b"", regular)
    scheme = pseudo.get(b":scheme")
    path = pseudo.get(b":path")
    if not scheme:
        raise MalformedRequest("missing :scheme")
    if not path:
        raise MalformedRequest("missing or empty :path")
    if path == b"*":
        if method != b"OPTIONS":
            raise MalformedRequest(f"':path *' with method {method!r}")
    elif path[:1] != b"/" and scheme in (b"http", b"https"):
        raise MalformedRequest(f"{scheme!r} :path must start with '/': {path!r}")
    if authority is not None:
        for name, value in regular:
            # RFC 9113 section 8.3.1: a Host that differs from :authority.
            if name == b"host" and value != authority:
                raise MalformedRequest("host and :authority differ")
    return RequestHead(method, scheme, authority, path, regular, protocol)


# What one request header field costs while its request is in progress,
# measured with tracemalloc over 100 requests held as their handlers hold
# them (CPython 3.11, 64-bit; see docs/hardening.rst): the tuple in
# RequestHead (64 bytes with its list slot), the scope's [name, value] list
# (81), and the name and value bytes objects (33 bytes each, rounded up to
# 16 by the allocator) when they are not shared with the HPACK table: 432
# bytes a field for 5-byte names and 203-byte values, 162 for references to
# one table entry. 230 plus the name and value covers both; the RFC's 32
# bytes a field (max_header_list_size) is a seventh of it.
FIELD_COST = 230
def head_cost(head: RequestHead) -> int:
    """Bytes ``head`` holds while its request is in progress (see :data:`FIELD_COST`)."""
    cost = FIELD_COST * (len(head.headers) + 4) + len(head.method) + len(head.scheme)
    cost += len(head.path) + len(head.authority or b"")
    for name, value in head.headers:
        cost += len(name) + len(value)
    return cost


def validate_trailers(fields: Headers) -> None:
    """Check a trailer block: regular fields only (RFC 9113 section 8.1)."""
    for name, value in fields:
        if name[:1] == b":":
            raise MalformedRequest(f"pseudo-header {name!r} in trailers")
        _check_field(name, value)
        if _bad_value(value):
            raise MalformedRequest(f"invalid value for field {name!r}")


def _bad_value(value: bytes) -> bool:
    return (_BAD_VALUE_CHAR.search(value) is not None
            or value[:1] in _WHITESPACE or value[-1:] in _WHITESPACE)


def _check_field(name: bytes, value: bytes) -> None:
    if _BAD_NAME.search(name):
        raise MalformedRequest(f"invalid field name {name!r}")
    if name in CONNECTION_SPECIFIC:
        raise MalformedRequest(f"connection-specific field {name!r}")
    if name == b"te" and value != b"trailers":
        raise MalformedRequest(f"te: {value!r} (only 'trailers' is allowed)")


def response_headers(status: int, fields: object) -> Headers:
    """The header block for an ASGI ``http.response.start``, ready for h2.

    Names are lowercased (ASGI apps may send ``Content-Type``) and the HTTP/1.1
    connection-specific fields that apps written for HTTP/1.1 send are dropped
    (RFC 9113 section 8.2.2 forbids them). Anything h2 would reject, or that
    would put the HPACK state at risk, raises :exc:`LocalProtocolError` here,
    before h2 sees it.
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise LocalProtocolError(f"invalid response status {status!r}")
    if 100 <= status < 200:
        raise LocalProtocolError(f"status {status}: informational responses are not supported")
    block: Headers = [(b":status", str(status).encode())]
    block.extend(_app_fields(fields, "response"))
    return block


def early_hints_headers(links: object) -> Headers:
    """The header block of a ``103 Early Hints`` (RFC 8297): a ``link``
    field per value of ``links`` (ASGI ``http.response.early_hint``)."""
    if not isinstance(links, Iterable) or isinstance(links, bytes | str):
        raise LocalProtocolError("early hint links must be an iterable of bytes")
    fields = [(b"link", link) for link in links]
    return [(b":status", b"103"), *_app_fields(fields, "early hint")]


def trailer_headers(fields: object) -> Headers:
    """The header block for ASGI ``http.response.trailers``, ready for h2."""
    return _app_fields(fields, "trailer")


def _app_fields(fields: object, what: str) -> Headers:
    out: Headers = []
    try:
        pairs = list(fields)  # type: ignore[call-overload]
    except TypeError:
        raise LocalProtocolError(f"{what} headers must be an iterable of pairs") from None
    for pair in pairs:
        try:
            raw_name, value = pair
        except (TypeError, ValueError):
            raise LocalProtocolError(f"{what} header {pair!r} is not a pair") from None
        if not isinstance(raw_name, bytes) or not isinstance(value, bytes):
            raise LocalProtocolError(f"{what} header {pair!r} must be a pair of bytes")
        if not _TOKEN.fullmatch(raw_name):
            raise LocalProtocolError(f"invalid {what} header name {raw_name!r}")
        name = raw_name.lower()
        if _bad_value(value):
            raise LocalProtocolError(f"invalid value for {what} header {name!r}: {value!r}")
        if name in CONNECTION_SPECIFIC:
            continue
        out.append((name, value))
    return out


_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The current time as an HTTP ``date`` value (RFC 9110 section 5.6.7),
    formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date_cache[1]


_PHRASES = {status.value: status.phrase.encode() for status in http.HTTPStatus}


def reason_phrase(status: int) -> bytes:
    """The reason phrase of ``status`` (``b"Not Found"``), or b"" if it has none."""
    return _PHRASES.get(status, b"")


def error_page(status: int, reason: str) -> tuple[Headers, bytes]:
    """The fields and body of a response trio_h2 gives on its own to a client
    error the application never saw (HTTP/1.1 and HTTP/2 alike): a small
    plain-text body saying what was wrong, ``"431 Request Header Fields Too
    Large: 120 header fields, over max_header_fields 100"``."""
    body = f"{status} {reason_phrase(status).decode()}: {reason}\n".encode()
    fields = [(b"content-type", b"text/plain; charset=utf-8"),
              (b"content-length", str(len(body)).encode()), (b"date", http_date())]
    return fields, body

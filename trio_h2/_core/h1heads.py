"""HTTP/1.1 heads: a request head checked (and the upgrade it asks for), a
response head written. Pure.

``_core.h1.H1Core`` asks :func:`check_request` about each request head h11
has parsed, and answers a :class:`Refused` on the wire (its status, one log
line, a closed connection); this module only decides. Bounds: a
request-target of at most :data:`MAX_TARGET` bytes (414),
``Config.max_header_fields`` fields and ``Config.max_header_list_size``
bytes of them (431, counted as HTTP/2 counts them: name + value + 32 per
field).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import final

import h11

from .._config import Config
from .h2extras import decode_settings_header
from .headers import CONNECTION_SPECIFIC, Headers, RequestHead
from .websocket import handshake_problem

# The longest request-target accepted; longer is answered 414. nginx answers
# 414 past one large_client_header_buffers buffer (8 KiB), Apache past
# LimitRequestLine (8190 bytes for the whole line).
MAX_TARGET = 8 * 1024

_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
# h11 parses any HTTP/d.d; RFC 9112 section 2.3: a higher minor version of
# HTTP/1 is served as the highest one we implement.

# Fields of an upgrade request that belong to the HTTP/1.1 hop: not passed on
# to its HTTP/2 stream (RFC 9113 section 8.2.2), with those its Connection
# field names. Its Expect has been answered under HTTP/1.1.
_HOP_FIELDS = CONNECTION_SPECIFIC | {b"http2-settings", b"te", b"expect"}


@final
@dataclass(frozen=True, slots=True)
class Refused:
    """A request head answered with ``status`` and closed: ``reason`` goes
    to the log and the error page, ``extra`` fields to the response."""

    status: int
    reason: str
    extra: Sequence[tuple[bytes, bytes]] = ()


def check_request(event: h11.Request, config: Config) -> tuple[str, RequestHead] | Refused:
    """The ASGI ``http_version`` and the head of a request h11 parsed, or
    why it is refused. A WebSocket handshake (with ``config.websocket``: a
    ``GET`` with ``Upgrade: websocket`` that names ``upgrade`` in
    ``Connection``) is checked (``_core.websocket.handshake_problem``: a
    missing or malformed ``Sec-WebSocket-Key`` is refused 400, a
    ``Sec-WebSocket-Version`` other than 13 426 with
    ``Sec-WebSocket-Version: 13``, never a 101) and has
    ``RequestHead.protocol`` set."""
    version = _VERSIONS.get(event.http_version)
    if version is None:
        if event.http_version[:2] != b"1.":
            return Refused(505, f"HTTP/{event.http_version.decode()} is not supported "
                                "(HTTP/1.0, HTTP/1.1 and HTTP/2 are)")
        version = "1.1"
    if len(event.target) > MAX_TARGET:
        return Refused(414, f"request-target of {len(event.target)} bytes, over {MAX_TARGET}")
    fields = list(event.headers)
    if len(fields) > config.max_header_fields:
        return Refused(431, f"{len(fields)} header fields, over max_header_fields "
                            f"{config.max_header_fields}")
    size = sum(len(name) + len(value) + 32 for name, value in fields)
    if size > config.max_header_list_size:
        return Refused(431, f"header fields of {size} bytes, over "
                            f"max_header_list_size {config.max_header_list_size}")
    names = {name for name, _ in fields}
    if b"transfer-encoding" in names and b"content-length" in names:
        # RFC 9112 section 6.3: a smuggling attempt, or a broken proxy.
        return Refused(400, "both Content-Length and Transfer-Encoding")
    if event.method == b"CONNECT":
        return Refused(501, "CONNECT is not supported")
    head = request_head(event.method, event.target, fields)
    if head is None:
        return Refused(400, f"invalid request-target {event.target[:64]!r}")
    if config.websocket and version == "1.1" and \
            b"websocket" in tokens(fields, b"upgrade") and \
            b"upgrade" in tokens(fields, b"connection"):
        problem = handshake_problem(fields, need_key=True)
        if event.method != b"GET":
            problem = 400, f"WebSocket handshake with method {event.method!r}", []
        if problem is not None:
            return Refused(*problem)
        head = RequestHead(head.method, head.scheme, head.authority, head.path,
                           head.headers, b"websocket")
    return version, head


def h2c_settings(version: str, fields: Headers, *, busy: bool,
                 window: int) -> bytes | str | None:
    """Whether a request upgrades to HTTP/2 (RFC 7540 section 3.2): None if
    it does not ask to; the client's SETTINGS payload if it is to; why not
    (for the log) if it is served over HTTP/1.1 after all: while the handler
    of an earlier request runs (``busy``), or with a body over ``window``
    (``Config.initial_window_size``, what one HTTP/2 stream may hold).
    Raises :exc:`ValueError` for a malformed ``HTTP2-Settings`` (answered
    400). The body is read before the switch, as the RFC requires: Apache's
    mod_http2 never upgrades a request with a body; h2o and Go's h2c read
    the body first, as trio_h2 does."""
    if version != "1.1" or b"h2c" not in tokens(fields, b"upgrade") or \
            b"websocket" in tokens(fields, b"upgrade"):
        return None  # (HTTP/1.0: RFC 9110 section 7.8 ignores its Upgrade)
    connection = tokens(fields, b"connection")
    values = [value for name, value in fields if name == b"http2-settings"]
    if b"upgrade" not in connection or b"http2-settings" not in connection or \
            len(values) != 1:
        # RFC 7540 section 3.2.1: exactly one HTTP2-Settings, named in
        # Connection; RFC 9110 section 7.8: Upgrade named there too.
        return "without the Connection options or one HTTP2-Settings"
    settings = decode_settings_header(values[0])
    length = next((value for name, value in fields if name == b"content-length"), None)
    if busy:
        return "a handler of an earlier request is still running"
    if length is not None and int(length) > window:
        return f"request body over initial_window_size ({window})"
    return settings


def tokens(fields: Headers, name: bytes) -> set[bytes]:
    """The comma-separated, case-insensitive tokens of the fields ``name``."""
    return {token.strip().lower() for field, value in fields if field == name
            for token in value.split(b",")}


def request_head(method: bytes, target: bytes, fields: Headers) -> RequestHead | None:
    """The request head for ``target`` in origin, asterisk or absolute form
    (RFC 9112 section 3.2); None for anything else."""
    if target[:1] == b"/":
        return RequestHead(method, b"", None, target, fields)
    if target == b"*":
        return RequestHead(method, b"", None, target, fields) if method == b"OPTIONS" else None
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None
    # RFC 9112 section 3.2.2: the authority in the target overrides Host.
    end = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    authority, path = rest[:end], rest[end:]
    if not authority:
        return None
    if path[:1] != b"/":
        path = b"/" + path
    return RequestHead(method, b"", authority, path, fields)


def without_hop_fields(head: RequestHead) -> RequestHead:
    """An upgrade request as its HTTP/2 stream has it: the fields of the
    HTTP/1.1 hop removed, with those its ``Connection`` names."""
    hop = _HOP_FIELDS | tokens(head.headers, b"connection")
    return RequestHead(head.method, head.scheme, head.authority, head.path,
                       [(name, value) for name, value in head.headers if name not in hop])


def response_head(status: int, reason: bytes, fields: Headers) -> bytes:
    """A response head as h11 writes one (h11 has no keep-alive for HTTP/1.0)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines += [name + b": " + value + b"\r\n" for name, value in fields]
    lines.append(b"\r\n")
    return b"".join(lines)

"""Whether an HTTP/2 request may become a stream: admission decisions. Pure.

``H2Core`` (``_core.h2``) asks here about each request header block and
acts on the answer: a :class:`Refusal` it answers on the wire (RST_STREAM or
a status of our own), or the validated :class:`RequestHead` of a stream it
opens. Nothing here touches h2, the stream table or a socket; the checks
that depend on the table (GOAWAY's last stream id, the concurrency limit,
memory accounts) stay with the table's owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from .headers import (
    Headers,
    MalformedRequest,
    RequestHead,
    declared_length,
    error_page,
    validate_request,
)
from .websocket import handshake_problem


@final
@dataclass(frozen=True, slots=True)
class Refusal:
    """A request that does not become a stream, and how to answer it."""

    what: str
    """What was wrong, for the log line after ``"stream N: "``."""
    budget: str
    """What the client's reset budget is spent on (``"too many {budget}"``)."""
    bad: bool = True
    """Counted among the connection's bad requests (logged once, then summed)."""
    status: int = 0
    """The status of our own to answer with; 0: RST_STREAM PROTOCOL_ERROR."""
    head: RequestHead | None = None
    """The request answered with ``status`` (its method decides the body)."""
    reason: str = ""
    """The reason in the body of the status."""
    extra: Headers | None = None
    """Fields the status carries besides those of :func:`error_page`."""


def judge_request(fields: Headers, dropped: int, *, extended_connect: bool, ended: bool,
                  max_header_fields: int) -> RequestHead | Refusal:
    """The request head of a header block, or why it is refused: malformed
    (RFC 9113 section 8.1.1: PROTOCOL_ERROR), over ``max_header_fields``
    (``dropped`` fields in all: 431), or an extended CONNECT whose tunnel
    cannot open (RFC 8441). ``ended``: the block carried END_STREAM."""
    try:
        # A malformed request is that first, even if it is cut short too.
        head = validate_request(fields, extended_connect=extended_connect)
    except MalformedRequest as exc:
        return Refusal(f"malformed request: {exc}", "malformed requests")
    if dropped:
        reason = f"{dropped} header fields, over max_header_fields {max_header_fields}"
        return Refusal(f"{reason}; answering 431", "requests with too many header fields",
                       status=431, head=head, reason=reason)
    if head.protocol is not None:
        problem = tunnel_problem(head, ended=ended)
        if problem is not None:
            status, reason, extra = problem
            return Refusal(f"extended CONNECT answered {status}: {reason}",
                           "refused extended CONNECTs", bad=False, status=status,
                           head=head, reason=reason, extra=extra)
    return head


def tunnel_problem(head: RequestHead, *, ended: bool) -> tuple[int, str, Headers] | None:
    """Why an extended CONNECT (RFC 8441) cannot open its tunnel: the
    status, reason and extra fields to answer with; None if it can."""
    if head.protocol != b"websocket":
        return 501, f":protocol {head.protocol!r} is not supported (websocket is)", []
    if ended:
        # END_STREAM on the CONNECT: the client closed its side of a
        # tunnel before it began; nothing could ever be received.
        return 400, "extended CONNECT with END_STREAM", []
    return handshake_problem(head.headers, need_key=False)


def own_response(refusal: Refusal, room: int) -> tuple[Headers, bytes]:
    """The fields (``:status`` aside) and body answering ``refusal``: the
    plain-text body HTTP/1.1 gives, if ``room`` (the client's windows and
    frame size) takes it in one frame; else the status alone. A HEAD
    request gets the fields a GET would get (RFC 9110 section 9.3.2)."""
    extra = refusal.extra or []
    fields, body = error_page(refusal.status, refusal.reason)
    fields += extra
    if len(body) > room:
        return list(extra), b""
    if refusal.head is not None and refusal.head.method == b"HEAD":
        return fields, b""
    return fields, body


def body_allowance(head: RequestHead, window: int) -> int:
    """What a request that may carry a body may send before its app reads:
    its stream ``window``, or its ``content-length`` if smaller (the stream
    is reset if the body goes past it: ``_core.h2internals.reset_on_body_length``)."""
    length = declared_length(head)
    return window if length is None else min(length, window)

"""The one configuration object: frozen, keyword-only, validated.

Every field is a limit or a policy of the server. Each says its unit, its
default and where the default comes from, and each has a test that sees its
effect on the wire.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, final

from ._core.accesslog import DEFAULT_FORMAT, check_format
from ._core.forwarded import TrustedProxies
from ._core.limits import DATA_FRAME_COST, Budget

# RFC 9113 section 6.5.2: the largest flow-control window and frame size a
# peer may announce.
MAX_WINDOW_SIZE = 2**31 - 1
MIN_FRAME_SIZE = 2**14
MAX_FRAME_SIZE = 2**24 - 1


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    """How a trio_h2 server behaves. Build it once and pass it to :func:`serve`.

    Every argument is keyword-only and has a default; :meth:`replace` gives a
    copy with some fields changed. Invalid values raise :exc:`ValueError` at
    construction, never later on a connection.
    """

    max_concurrent_streams: int = 100
    """SETTINGS_MAX_CONCURRENT_STREAMS we advertise (streams per connection).

    100 is the floor RFC 9113 section 6.5.2 recommends and nghttp2's default.
    Together with :attr:`initial_window_size` it bounds request-body memory per
    connection (see :attr:`connection_window_size`)."""

    initial_window_size: int = 256 * 1024
    """SETTINGS_INITIAL_WINDOW_SIZE we advertise, in bytes: the most request
    body one stream can have buffered before its app reads it.

    Credit for a stream is returned only as the app consumes its body, so this
    is a hard bound per stream. nghttp2 uses 64 KiB - 1 and Go 1 MiB; 256 KiB
    keeps a full connection (100 streams) under 25 MiB of buffered body while
    letting one upload run at loopback speed."""

    max_frame_size: int = MIN_FRAME_SIZE
    """SETTINGS_MAX_FRAME_SIZE we advertise, in bytes: the largest frame
    payload the client may send us. 16 KiB is the RFC 9113 default and what
    nghttp2, Go and h2o advertise; larger frames only delay PING and
    WINDOW_UPDATE behind them."""

    max_header_list_size: int = 64 * 1024
    """SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce, in bytes
    (decoded name + value + 32 per field, RFC 9113 section 6.5.2). 64 KiB is
    h2's default; nginx allows 32 KiB (large_client_header_buffers 4 x 8k)."""

    max_header_fields: int = 256
    """Header fields one request (or its trailers) may have, pseudo-headers
    and each cookie crumb (RFC 9113 section 8.2.3) counted. The fields past
    it are decoded into the HPACK table but never kept; the request is
    answered ``431`` (RFC 9113 section 10.5.1, as Go's server does), its
    trailers with RST_STREAM ENHANCE_YOUR_CALM (as Node's does), and each
    draws on :attr:`reset_budget`.

    ``max_header_list_size`` counts 32 bytes per field; Python holds 150
    to 430 (a tuple, the scope's list, and the name and value unless the
    HPACK table shares them), so 2000 references to a one-byte table entry,
    one 64 KiB block, held 290 KB a stream and 29 MB a connection. 256
    fields cost at most 59 KB of overhead a stream and leave room for
    browsers, which split cookies into one field each (up to 180 per
    domain) on top of about 20 other fields. Node's HTTP/2 allows 128
    (maxHeaderListPairs), its HTTP/1 2000 (maxHeadersCount),
    Apache 100 lines (LimitRequestFields), hyper 100; Go and nginx count
    bytes only."""

    max_header_memory: int = 32 * 1024 * 1024
    """Bytes of request header fields the whole server (one process) may
    hold for requests in progress, counted at Python's cost: 230 bytes per
    field plus its name and value (see :attr:`max_header_fields`). A
    request is charged when it arrives and released when its handler
    returns. Past the limit new streams are refused with RST_STREAM
    REFUSED_STREAM (RFC 9113 section 8.7: safe to retry) and one WARNING
    line, except on connections that hold less than 64 KiB, so light
    clients are still served while others hold the budget.

    32 MiB holds about 6000 browser requests (20 fields, 1 KB of names
    and values) at once. Without it, 8 connections of 100 streams could
    hold 8 x 100 x (56 KiB of names and values + 256 x 230 bytes), 93 MB.
    Envoy's overload manager likewise refuses new streams past a heap
    threshold.

    Request heads still arriving (a slow head may take :attr:`header_timeout`)
    may hold a quarter of it, counted at twice the bytes h2 or h11 holds of
    them: past that, a connection holding more than 8 KiB of a head is
    closed (GOAWAY ENHANCE_YOUR_CALM; ``431`` over HTTP/1.1). 400
    connections each sending a 60 KB head held 62 MiB before this."""

    max_body_memory: int = 32 * 1024 * 1024
    """Bytes of request body the whole server (one process) may have
    buffered for applications that have not read it yet. An HTTP/2 stream
    that may carry a body (its HEADERS do not end the request) is charged
    the body it may send without asking when it opens: its window,
    :attr:`initial_window_size`, or its ``content-length`` if smaller. The
    charge is released once its body is read to the end, or the stream is
    done. Past the limit such streams are refused with RST_STREAM
    REFUSED_STREAM (RFC 9113 section 8.7: safe to retry) and one WARNING
    line, except on connections that hold less than one window, so one
    upload per connection always proceeds; requests without a body are
    never refused for it. An HTTP/1.1 connection holds at most one window
    and one read, so it is never refused.

    Each connection may buffer :attr:`connection_window_size` (25 MiB with
    the defaults): three connections of 100 streams held 89 MiB before this
    limit. 32 MiB is 128 full windows, a connection and a quarter; with it
    the server holds at most 32 MiB plus one window per connection (see
    :attr:`max_connections`). Go's HTTP/2 server bounds a connection's
    uploads at 1 MiB (MaxUploadBufferPerConnection), nginx buffers
    client_body_buffer_size (16 KiB) per request in memory and the rest on
    disk, and Envoy's overload manager refuses new streams past a heap
    threshold."""

    max_connections: int = 1000
    """Connections the server (one process) serves at once. A connection
    accepted past it is closed at once, with one WARNING line per run of
    them; the listen backlog and the client's retry do the rest.

    Every other bound is per connection or holds with one allowance per
    connection (:attr:`max_header_memory`, :attr:`max_body_memory`); this
    makes their product finite. 1000 connections idle cost about 40 MB,
    and at most 1000 x (256 KiB of body + 8 KiB of unfinished head + 64 KiB
    of headers in progress) beyond the server-wide limits (see
    :doc:`hardening`). 1000 is about what the common open-file limit (1024)
    allows anyway; nginx's worker_connections is 512 by default (768 in
    Debian's nginx.conf) and uvicorn's --limit-concurrency is unbounded by
    default (Hypercorn has none)."""

    preface_timeout: float = 10.0
    """Seconds a new connection gets to send the HTTP/2 preface and its first
    SETTINGS (after TLS); on plain TCP with :attr:`http1`, the bytes that
    tell HTTP/2 from HTTP/1.1. Go's server uses 10 s (prefaceTimeout)."""

    idle_timeout: float = 75.0
    """Seconds a connection may stay open with no stream in progress, h2c
    included; then it is closed with GOAWAY NO_ERROR. Bytes that do not
    complete a request do not count as activity. nginx's keepalive_timeout
    is 75 s."""

    header_timeout: float = 20.0
    """Seconds a request header block (HEADERS and its CONTINUATION frames)
    may take to arrive once it has started; against slowloris. The
    connection is closed with GOAWAY ENHANCE_YOUR_CALM. Apache's
    mod_reqtimeout allows 20 s for headers."""

    body_timeout: float = 60.0
    """Seconds an application waiting in ``receive()`` for request body may
    wait for the next DATA frame; then the stream is reset (CANCEL) and the
    application sees ``http.disconnect`` (R-U-Dead-Yet, slow uploads).
    nginx's client_body_timeout is 60 s."""

    send_timeout: float = 60.0
    """Seconds response data may wait without progress: a stream waiting at
    a zero flow-control window is reset (CANCEL), a write the client does
    not read is abandoned and the connection closed. nginx's send_timeout
    is 60 s."""

    reset_budget: Budget = Budget(1000, 33.0)
    """Streams the client may reset, or make us reset or refuse, in a burst
    and per second after it (Rapid Reset, CVE-2023-44487; MadeYouReset,
    CVE-2025-8671); past it, GOAWAY ENHANCE_YOUR_CALM. nghttp2's stream
    reset rate limit is a burst of 1000 and 33 per second."""

    control_frame_budget: Budget = Budget(10000, 1000.0)
    """PING, SETTINGS, PRIORITY, PRIORITY_UPDATE and unknown frames the client
    may send in a burst and per second after it (CVE-2019-9512, 9513, 9515);
    past it, GOAWAY ENHANCE_YOUR_CALM. Go's server allows 10000 queued
    control frames; a browser sends a handful per page."""

    empty_frame_budget: Budget = Budget(100, 10.0)
    """DATA frames with no data and no END_STREAM (and empty trailers) the
    client may send (CVE-2019-9518); past it, GOAWAY ENHANCE_YOUR_CALM.
    Netty allows 2 in a row; a burst of 100 leaves room for clients that
    flush eagerly."""

    data_frame_budget: Budget = Budget(10_000 * DATA_FRAME_COST, 4_000 * DATA_FRAME_COST)
    """Bytes of DATA framing overhead the client may send in a burst and per
    second after it; past it, GOAWAY ENHANCE_YOUR_CALM. Each DATA frame
    costs the server about as much CPU whatever its size, so a body in
    1-byte frames costs about 10 s of CPU per MiB, against 1.5 ms in 16 KiB
    frames. Each frame draws 256 bytes (``DATA_FRAME_COST``, hyper's h2
    threshold for a small frame) plus its padding, less its payload; larger
    frames give back as much, up to the burst (as hyper's h2 does, PR
    #935), and a stream's last frame draws nothing. So a client may send
    small frames in proportion to the body it sends in large ones, plus the
    burst and the refill.

    The burst is 10,000 one-byte frames (as :attr:`control_frame_budget`,
    Go's server's 10000 queued control frames), about 0.1 s of CPU; the
    refill is 4,000 a second, about 4% of a core per connection. 100-byte
    gRPC or fetch() upload messages draw 156 bytes each: 6,500 a second, say
    1,000 a second on each of 6 streams, pass for ever. Browsers, curl and
    h2load upload in frames of 16 KiB or as large as the window allows, and
    only refill it. hyper's h2 allows half its connection window (at least
    25,600 bytes) but refills only as the application reads; nginx closes a
    connection once all it sent exceeds 8 times (its DATA payload + 1 MiB),
    which a flood of 9-byte frames never does."""

    tls_handshake_timeout: float = 10.0
    """Seconds a TLS client gets to finish its handshake before we close the
    connection. nginx's ssl_handshake_timeout is 60 s; a browser finishes in
    milliseconds, so 10 s only cuts off clients that stall on purpose."""

    shutdown_timeout: float = 30.0
    """Seconds in-flight streams get to finish after a graceful shutdown
    starts (SIGTERM, SIGINT or cancellation of :func:`serve`). What is still
    running then is cancelled. 30 s is Kubernetes' default grace period."""

    http1: bool = True
    """Serve HTTP/1.1 beside HTTP/2 on the same port: on plain TCP a
    connection that does not open with the HTTP/2 preface is HTTP/1.1, and
    over TLS a client that negotiates ``http/1.1`` by ALPN (or negotiates
    nothing) is served HTTP/1.1 (see :doc:`protocols`). ``False`` serves
    HTTP/2 only: h2c with prior knowledge, and ALPN ``h2``."""

    rfc7540_priorities: bool = True
    """Honour RFC 7540 priority signals (weights and dependencies in HEADERS
    and PRIORITY frames). RFC 9218 signals (the ``priority`` header and
    PRIORITY_UPDATE) are always honoured and take precedence. ``False``
    advertises SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218 section 2.1) and
    ignores RFC 7540 signals, as nghttp2 1.65 and later do."""

    websocket: bool = True
    """Serve WebSockets: over HTTP/1.1 with ``Upgrade: websocket`` (RFC 6455)
    and over HTTP/2 with extended CONNECT (RFC 8441: the server advertises
    SETTINGS_ENABLE_CONNECT_PROTOCOL = 1). ``False`` advertises nothing,
    treats ``:protocol`` as the unknown pseudo-header it then is (RST_STREAM
    PROTOCOL_ERROR) and ``Upgrade: websocket`` as a plain request."""

    websocket_max_message_size: int = 1024 * 1024
    """Bytes one WebSocket message may have, after permessage-deflate
    inflates it, summed over its fragments. A frame that declares more is
    answered with close code 1009 before any of it is buffered; a message
    that inflates past it, as soon as it does. It is also what one
    WebSocket holds of an incoming message (see :doc:`websocket`).
    1 MiB is the ``websockets`` library's ``max_size``; uvicorn
    (``ws_max_size``) and Hypercorn (``websocket_max_message_size``) allow
    16 MiB."""

    websocket_ping_interval: float = 20.0
    """Seconds between the keepalive PINGs the server sends on each open
    WebSocket. 20 s is the ``websockets`` library's ``ping_interval`` and
    uvicorn's ``ws_ping_interval``."""

    websocket_ping_timeout: float = 20.0
    """Seconds the client has to answer a keepalive PING with a PONG (not
    counting time in which the application holds the client's last message
    unread, since the PONG is then queued behind it); then the WebSocket is
    closed with 1011 and its transport ended. 20 s is the ``websockets``
    library's ``ping_timeout`` and uvicorn's ``ws_ping_timeout``."""

    root_path: str = ""
    """The ASGI ``root_path``: the prefix under which the app is mounted, for
    apps behind a proxy that strips it."""

    proxy_protocol: bool = False
    """Expect a PROXY protocol header (HAProxy's, version 1 or 2) before each
    connection's first byte, and take the client's and server's addresses
    from it (``scope["client"]``, ``scope["server"]``, log lines). Only
    enable it behind a load balancer that always sends one (HAProxy
    ``send-proxy``, AWS NLB, nginx ``proxy_protocol``) and that alone can
    reach the server: anyone who connects directly can claim any address. A
    connection without a valid header is closed."""

    proxy_headers: bool = False
    """Take ``scope["client"]`` and ``scope["scheme"]`` from the
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` headers of requests whose
    immediate peer is in :attr:`forwarded_allow_ips` (uvicorn's
    ``--proxy-headers``). Other peers' headers are ignored."""

    forwarded_allow_ips: str = "127.0.0.1"
    """The proxies whose ``X-Forwarded-*`` headers :attr:`proxy_headers`
    believes: comma-separated IP addresses and CIDR networks, or ``*`` for
    every peer (Unix sockets included). uvicorn's default, the local host."""

    access_log_format: str = DEFAULT_FORMAT
    """The line the ``trio_h2.access`` logger writes for each request and
    WebSocket once it has ended, when that logger is enabled for INFO (the
    runner's ``--access-logfile`` enables it): gunicorn's atoms (``%(h)s``
    the client, ``%(r)s`` the request line, ``%(s)s`` the status...) and
    trio_h2's own, listed in :doc:`logging`. The default is gunicorn's and
    Hypercorn's, Apache's combined log format. An unknown atom is a
    :exc:`ValueError` here, not at the first request."""

    lifespan: Literal["auto", "on", "off"] = "auto"
    """ASGI lifespan protocol. ``auto`` runs it and carries on without it if
    the app raises before answering startup; ``on`` treats that as a failure;
    ``off`` never sends lifespan events."""

    def __post_init__(self) -> None:
        # RFC 9113 section 6.5.2 gives the legal ranges of the settings.
        _check_range("max_concurrent_streams", self.max_concurrent_streams, 1, 2**31 - 1)
        _check_range("initial_window_size", self.initial_window_size, 1, MAX_WINDOW_SIZE)
        _check_range("max_frame_size", self.max_frame_size, MIN_FRAME_SIZE, MAX_FRAME_SIZE)
        _check_range("max_header_list_size", self.max_header_list_size, 1, 2**31 - 1)
        # Node's minimum for maxHeaderListPairs: the four request pseudo-headers.
        _check_range("max_header_fields", self.max_header_fields, 4, 2**31 - 1)
        _check_range("max_header_memory", self.max_header_memory, 1, 2**63 - 1)
        # RFC 6455 section 5.2: a frame's payload length is at most 2^63 - 1.
        _check_range("websocket_max_message_size", self.websocket_max_message_size, 1,
                     2**63 - 1)
        _check_range("max_body_memory", self.max_body_memory, 1, 2**63 - 1)
        _check_range("max_connections", self.max_connections, 1, 2**31 - 1)
        for name in ("tls_handshake_timeout", "preface_timeout", "idle_timeout",
                     "header_timeout", "body_timeout", "send_timeout",
                     "websocket_ping_interval", "websocket_ping_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")
        for name in ("reset_budget", "control_frame_budget", "empty_frame_budget",
                     "data_frame_budget"):
            if not isinstance(getattr(self, name), Budget):
                raise ValueError(f"{name} must be a trio_h2.Budget, not {getattr(self, name)!r}")
        if not self.shutdown_timeout >= 0:
            raise ValueError(f"shutdown_timeout must be >= 0, not {self.shutdown_timeout}")
        if self.root_path.endswith("/"):
            raise ValueError(f"root_path must not end with '/': {self.root_path!r}")
        TrustedProxies.parse(self.forwarded_allow_ips)  # raises ValueError naming the entry
        for name in ("http1", "websocket", "proxy_protocol", "proxy_headers"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        check_format(self.access_log_format)
        if self.lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {self.lifespan!r}")

    @property
    def connection_window_size(self) -> int:
        """The connection-level receive window, in bytes (derived, not set).

        ``max_concurrent_streams x initial_window_size``, capped at 2^31-1: large
        enough that streams whose apps do not read can never use up the
        connection window and stall the others, and at the same time the bound
        on request body buffered per connection."""
        return min(self.max_concurrent_streams * self.initial_window_size, MAX_WINDOW_SIZE)

    def replace(self, **changes: object) -> Config:
        """A copy of this configuration with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")

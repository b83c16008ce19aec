"""Opening a connection for the testing client: TCP, TLS with ALPN ``h2``,
the client's background tasks and its handshake, in one async context
manager."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ._client import H2Client
from ._responses import H2ClientError


@asynccontextmanager
async def open_h2_client(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    initial_window_size: int = 65535,
    auto_window: bool = True,
) -> AsyncIterator[H2Client]:
    """Connect to an HTTP/2 server and yield an :class:`H2Client` for it.

    Opens a TCP connection, and TLS if ``ssl_context`` is given (after setting
    its ALPN protocols to ``["h2"]``; ``server_hostname`` defaults to
    ``host``), sends the client preface and SETTINGS, and waits for the
    server's SETTINGS. Raises :exc:`H2ClientError` if the server does not
    negotiate ``h2`` via ALPN, :exc:`ConnectionClosed` if it closes or does not
    speak HTTP/2, ``OSError`` if the connection cannot be made.

    ``initial_window_size`` is our SETTINGS_INITIAL_WINDOW_SIZE, the stream
    window for response bodies. With ``auto_window=False`` no received data is
    ever acknowledged automatically, on streams or the connection; call
    :meth:`H2Client.open_window` to let the server send more.

    The background tasks run in a nursery inside this context manager. On
    exit, the client is closed as by :meth:`H2Client.aclose`. An exception
    from the body propagates unchanged (not wrapped in an exception group).
    """
    tcp = await trio.open_tcp_stream(host, port)
    stream: trio.abc.Stream = tcp
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["h2"])
        tls = trio.SSLStream(tcp, ssl_context, server_hostname=server_hostname or host)
        stream = tls
        try:
            await tls.do_handshake()
            if tls.selected_alpn_protocol() != "h2":
                raise H2ClientError(
                    f"the server did not negotiate HTTP/2 via ALPN "
                    f"(selected: {tls.selected_alpn_protocol()!r})"
                )
        except BaseException:
            await trio.aclose_forcefully(tls)
            raise
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        client = H2Client(
            stream,
            scheme="https" if ssl_context is not None else "http",
            authority=authority,
            initial_window_size=initial_window_size,
            auto_window=auto_window,
        )
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(client._start)
        try:
            await client._handshake()
            yield client
        except BaseException as exc:
            body_error = exc
        finally:
            await client.aclose()
    if body_error is not None:
        raise body_error

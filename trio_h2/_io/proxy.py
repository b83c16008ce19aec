"""The PROXY protocol header on a new connection (``Config.proxy_protocol``).

:func:`read_proxy_header` reads the header a load balancer writes before
the client's first byte (``_core.proxy_protocol`` parses it) and hands back
what came after it; :class:`ReplayStream` gives those bytes to whoever reads
the connection next (the TLS handshake, or the protocol sniffing), before
anything more from the socket.
"""

from __future__ import annotations

import logging
from typing import final

import trio

from .._config import Config
from .._core.proxy_protocol import (
    InvalidProxyHeader,
    NeedMore,
    ProxyHeader,
    parse_proxy_header,
)
from .first_bytes import read_until

log = logging.getLogger("trio_h2")



async def read_proxy_header(stream: trio.abc.Stream, config: Config,
                            peer: str) -> ProxyHeader | None:
    """The PROXY header at the start of ``stream``, read within
    ``config.preface_timeout`` (the header is the connection's first bytes,
    as the preface is without it). ``None``, with one log line, if the
    bytes are not a valid header, or the client closed or was too slow; the
    caller then closes the connection (the spec forbids guessing)."""
    with trio.move_on_after(config.preface_timeout):
        result = await read_until(stream, _decided)
        if isinstance(result, ProxyHeader):
            return result
        if isinstance(result, InvalidProxyHeader):
            log.info("%s: invalid PROXY protocol header (%s); closing", peer, result.reason)
        else:
            log.debug("%s: closed before its PROXY protocol header", peer)
        return None
    log.info("%s: no PROXY protocol header within %ss; closing", peer, config.preface_timeout)
    return None


def _decided(received: bytes) -> ProxyHeader | InvalidProxyHeader | None:
    result = parse_proxy_header(received)
    return None if isinstance(result, NeedMore) else result


@final
class ReplayStream(trio.abc.Stream):
    """``stream``, whose first received bytes are ``first`` (read from it
    already); everything else passes through. Closing it closes ``stream``."""

    def __init__(self, stream: trio.abc.Stream, first: bytes) -> None:
        self.stream = stream
        self._first = first

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if not self._first:
            return await self.stream.receive_some(max_bytes)
        await trio.lowlevel.checkpoint()
        size = len(self._first) if max_bytes is None else max_bytes
        data, self._first = self._first[:size], self._first[size:]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()

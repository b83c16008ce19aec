"""Which protocol a new connection speaks, and the core that serves it.

Over TLS, ALPN has decided: ``h2`` is HTTP/2; ``http/1.1``, or no ALPN at
all, is HTTP/1.1. On plain TCP the first bytes decide: the HTTP/2
connection preface (RFC 9113 section 3.4) means h2c with prior knowledge,
anything else is HTTP/1.1. With ``Config.http1`` off, everything is HTTP/2,
as if this module did not exist.

An HTTP/1.1 connection on plain TCP may still become HTTP/2 with ``Upgrade:
h2c`` (RFC 7540 section 3.2): its core is given the means to build the
HTTP/2 core it then hands over to. Over TLS, ALPN alone chooses HTTP/2.
"""

from __future__ import annotations

import logging

import trio

from .._config import Config
from .._core.h1 import H1Core
from .._core.h2 import H2Core
from .._core.memory import ServerMemory
from .._core.protocol import Handover, ProtocolCore
from .first_bytes import read_until

log = logging.getLogger("trio_h2")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

H2, HTTP1 = "h2", "http/1.1"


def sniff(received: bytes) -> str | None:
    """``"h2"`` if ``received`` starts with the HTTP/2 preface, ``"http/1.1"``
    as soon as it cannot, None while it still might. Pure."""
    if received[:len(PREFACE)] == PREFACE[:len(received)]:
        return H2 if len(received) >= len(PREFACE) else None
    return HTTP1


def alpn_protocol(selected: str | None, config: Config) -> str | None:
    """The protocol a TLS connection whose ALPN chose ``selected`` speaks,
    or None if we do not serve it. Pure."""
    if selected == H2:
        return H2
    if config.http1 and selected in (None, HTTP1):
        return HTTP1
    return None


def new_core(protocol: str, config: Config, peer: str, *,
             memory: ServerMemory | None = None, tls: bool = False) -> ProtocolCore:
    """The sans-IO core of ``protocol``, on trio's clock; requests draw on
    the server's ``memory``. HTTP/1.1 on plain TCP (not ``tls``) may hand
    over to HTTP/2 (``Upgrade: h2c``)."""
    if protocol == H2:
        return H2Core(config, peer=peer, clock=trio.current_time, memory=memory)

    def upgrade(handover: Handover) -> ProtocolCore:
        return H2Core(config, peer=peer, clock=trio.current_time, memory=memory,
                               handover=handover)

    return H1Core(config, peer=peer, clock=trio.current_time, memory=memory,
                   upgrade=None if tls else upgrade)


async def sniff_protocol(stream: trio.abc.Stream, config: Config,
                         peer: str) -> tuple[str, bytes] | None:
    """Read until the first bytes tell HTTP/2 from HTTP/1.1 (at most the
    preface's 24 bytes, within ``preface_timeout``). Returns the protocol and
    the bytes read, which belong to it; None if the client closed or said
    nothing in time."""
    with trio.move_on_after(config.preface_timeout):
        result = await read_until(stream, _decided)
        if result == "closed":
            log.debug("%s: closed before its first request", peer)
            return None
        return result
    log.info("%s: no connection preface within %ss (nor an HTTP/1.1 request); closing",
             peer, config.preface_timeout)
    return None


def _decided(received: bytes) -> tuple[str, bytes] | None:
    protocol = sniff(received)
    return None if protocol is None else (protocol, received)

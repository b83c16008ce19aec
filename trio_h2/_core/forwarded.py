"""The client and scheme a trusted proxy reports in its headers. Pure.

uvicorn's ``--proxy-headers`` with ``--forwarded-allow-ips``, in one
function: when the connection's immediate peer is a trusted proxy, the
request's ``Forwarded`` (RFC 7239) or ``X-Forwarded-For`` and
``X-Forwarded-Proto`` headers say who the client is and which scheme it
used. Each proxy appends the address it received the request from, so the
list is read from the right: the first address that is not itself a trusted
proxy is the client. Everything left of it was written by the client and
proves nothing. A peer that is not trusted gets no say: its headers are
ignored.

Which header is read is the caller's choice (:data:`HeaderStyle`), never a
guess: a proxy that sets ``X-Forwarded-For`` passes on a ``Forwarded`` that
the client made up, and the other way round.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, final

from .exchange import Address

__all__ = ["HeaderStyle", "TrustedProxies", "forwarded_client"]

HeaderStyle = Literal["x-forwarded", "forwarded"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = ("http", "https")


@final
@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The peers whose forwarding headers are believed: ``everyone`` (``*``)
    or these networks (a single address is a /32 or /128)."""

    networks: tuple[IPNetwork, ...] = ()
    everyone: bool = False

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """uvicorn's ``--forwarded-allow-ips``: comma-separated IP addresses and
        CIDR networks, or ``*``. Raises :exc:`ValueError` naming an entry that
        is neither (uvicorn ignores such entries; a typo here would silently
        trust no one, or the wrong one)."""
        entries = [entry.strip() for entry in text.split(",") if entry.strip()]
        if "*" in entries:
            return cls(everyone=True)
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return cls(tuple(networks))

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` (an IP address; ``None`` for a peer without one, a
        Unix socket) is a trusted proxy. Only ``*`` trusts a Unix-socket peer."""
        if self.everyone:
            return True
        address = _ip(host)
        return address is not None and any(address in network for network in self.networks)


def forwarded_client(headers: Iterable[tuple[bytes, bytes]], peer: Address | None,
                     scheme: str, trusted: TrustedProxies,
                     style: HeaderStyle = "x-forwarded") -> tuple[Address | None, str]:
    """The client and scheme to put in the ASGI scope for a request with
    ``headers`` (lower-case names) that arrived from ``peer`` over ``scheme``.

    Unchanged unless ``peer`` is trusted. Then the client is the right-most
    hop that is not a trusted proxy (or the left-most, if all are): its
    address with port 0 (X-Forwarded-For has no port; a ``Forwarded``
    ``for=`` may give one), or ``None`` if that hop is ``unknown`` or an
    obfuscated name (RFC 7239 section 6). The scheme is that hop's
    ``proto`` (``Forwarded``) or ``X-Forwarded-Proto``'s last value, if it is
    ``http`` or ``https``.
    """
    if not trusted.trusts(None if peer is None else peer[0]):
        return peer, scheme
    if style == "forwarded":
        hops = _forwarded_hops(_values(headers, b"forwarded"))
    else:
        protos = _values(headers, b"x-forwarded-proto")
        hops = [(item, None) for item in _values(headers, b"x-forwarded-for")]
        if protos:
            # A proxy chain may append one per hop; the last is the nearest
            # proxy's, the one trusted to know.
            last = protos[-1].lower()
            scheme = last if last in SCHEMES else scheme
    if not hops:
        return peer, scheme
    chosen = hops[0]
    for hop in reversed(hops):
        if not trusted.trusts(_host_port(hop[0])[0]):
            chosen = hop
            break
    host, port = _host_port(chosen[0])
    proto = chosen[1]
    if proto is not None and proto.lower() in SCHEMES:
        scheme = proto.lower()
    return (None if host is None else (host, port)), scheme


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """The comma-separated items of every ``name`` field, in order."""
    items = []
    for field_name, value in headers:
        if field_name == name:
            items += [item.strip() for item in value.decode("latin-1").split(",")]
    return [item for item in items if item]


# RFC 7239 section 4: forwarded-pair = token "=" value; value = token / quoted-string.
_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')


def _forwarded_hops(elements: Sequence[str]) -> list[tuple[str, str | None]]:
    """``(for, proto)`` of each ``Forwarded`` element (``unknown`` where it
    has no ``for`` or does not parse).

    ``_values`` split on every comma; a quoted ``for="[::1]:80"`` holds none,
    so that is safe for the parameters read here."""
    hops = []
    for element in elements:
        pairs = {}
        for part in element.split(";"):
            match = _PAIR.fullmatch(part)
            if match is None:
                break  # a malformed element: as if it had no for=
            value = match[2]
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            pairs[match[1].lower()] = value
        else:
            # RFC 7239 section 5.2: a proxy may leave out for=; who sent the
            # request to it is then unknown.
            hops.append((pairs.get("for", "unknown"), pairs.get("proto")))
            continue
        hops.append(("unknown", None))
    return hops


def _host_port(node: str) -> tuple[str | None, int]:
    """An IP address and port from an X-Forwarded-For item or a ``for=``
    node (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]``, ``[::1]:80``, ``::1``);
    ``(None, 0)`` for ``unknown``, obfuscated names and anything else."""
    host, port = node, "0"
    if node.startswith("["):
        host, _, after = node[1:].partition("]")
        port = after.removeprefix(":") or "0"
    elif node.count(":") == 1:
        host, port = node.split(":")
    address = _ip(host)
    if address is None or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        return None, 0
    return str(address), int(port)


def _ip(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if host is None:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None

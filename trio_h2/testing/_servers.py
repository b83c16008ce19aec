"""What the ``h2_server`` and ``h2_client`` fixtures give a test, importable
without pytest (for type annotations and for use outside pytest)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Protocol, final

import trustme

from .._apps.asgi import ASGIApp
from ._client import H2Client

TEST_HOST = "127.0.0.1"
# The name a TLS test server's certificate is issued for (with _HOST), and
# the host of its URL: clients that check names want a DNS name, not an IP.
TLS_NAME = "localhost"


@final
@dataclass(frozen=True, slots=True)
class H2TestServer:
    """A running trio_h2 server, as returned by the ``h2_server`` fixture.

    ``host`` and ``port`` are the address it listens on. ``ca`` is the
    :class:`trustme.CA` that issued its certificate, or ``None`` if it speaks
    h2c (HTTP/2 over plain TCP, with prior knowledge).
    """

    host: str
    port: int
    ca: trustme.CA | None = None

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS (ALPN ``h2``) rather than h2c."""
        return self.ca is not None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, or ``https://localhost:PORT`` with TLS."""
        if self.tls:
            return f"https://{TLS_NAME}:{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        """A new client :class:`ssl.SSLContext` that trusts this server's
        certificate (and nothing else) and offers ALPN ``h2``: for clients
        other than ``h2_client``, such as httpx. Raises :exc:`ValueError` if
        the server does not use TLS."""
        if self.ca is None:
            raise ValueError(f"{self.url} does not use TLS")
        return client_context(self.ca)


class H2ServerFactory(Protocol):
    """The type of the ``h2_server`` fixture, for annotations."""

    async def __call__(
        self, app: ASGIApp, /, *, tls: bool = False, **config: object
    ) -> H2TestServer: ...


class H2ClientFactory(Protocol):
    """The type of the ``h2_client`` fixture, for annotations."""

    async def __call__(
        self,
        target: H2TestServer | str,
        /,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        initial_window_size: int = 65535,
        auto_window: bool = True,
    ) -> H2Client: ...


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    # PROTOCOL_TLS_CLIENT checks the certificate and host name; no system CAs
    # are loaded, so the test CA is the only one trusted.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 9113 section 9.2
    ca.configure_trust(context)
    context.set_alpn_protocols(["h2"])
    return context

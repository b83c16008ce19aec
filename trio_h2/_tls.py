"""TLS for HTTP/2 (and HTTP/1.1): a server context that meets RFC 9113 section 9.2."""

from __future__ import annotations

import ssl

# RFC 9113 section 9.2.2 forbids the TLS 1.2 cipher suites listed in its
# Appendix A; what remains for TLS 1.2 are ephemeral key exchanges with AEAD
# ciphers. TLS 1.3 suites are all allowed and not affected by this string.
H2_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def configure_h2_context(context: ssl.SSLContext, *, http1: bool = True) -> ssl.SSLContext:
    """Make ``context`` fit for HTTP/2 (in place) and return it.

    TLS 1.2 or newer, no TLS compression, no renegotiation (RFC 9113 section
    9.2.1), no blocklisted TLS 1.2 cipher suites (section 9.2.2), and ALPN
    offering ``h2``, then ``http/1.1`` unless ``http1`` is false (the server
    prefers ``h2`` when the client offers both). The server's
    :attr:`Config.http1 <trio_h2.Config.http1>` decides what it serves; a
    client that negotiates ``http/1.1`` with ``Config(http1=False)`` is
    closed.
    """
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(H2_TLS12_CIPHERS)
    context.set_alpn_protocols(["h2", "http/1.1"] if http1 else ["h2"])
    return context


def server_ssl_context(certfile: str, keyfile: str | None = None, *,
                       http1: bool = True) -> ssl.SSLContext:
    """A server :class:`ssl.SSLContext` for trio_h2 from a PEM certificate chain
    and key; ALPN as :func:`configure_h2_context` sets it. Raises
    :exc:`OSError` or :exc:`ssl.SSLError` if they cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return configure_h2_context(context, http1=http1)

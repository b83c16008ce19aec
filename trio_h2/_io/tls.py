"""TLS for HTTP/2 (and HTTP/1.1): a server context that meets RFC 9113 section 9.2."""

from __future__ import annotations

import ssl

# RFC 9113 section 9.2.2 forbids the TLS 1.2 cipher suites listed in its
# Appendix A; what remains for TLS 1.2 are ephemeral key exchanges with AEAD
# ciphers. TLS 1.3 suites are all allowed and not affected by this string.
H2_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def configure_h2_context(context: ssl.SSLContext, *, http1: bool = True,
                         ciphers: str | None = None) -> ssl.SSLContext:
    """Make ``context`` fit for HTTP/2 (in place) and return it.

    TLS 1.2 or newer, no TLS compression, no renegotiation (RFC 9113 section
    9.2.1), no blocklisted TLS 1.2 cipher suites (section 9.2.2), and ALPN
    offering ``h2``, then ``http/1.1`` unless ``http1`` is false (the server
    prefers ``h2`` when the client offers both). The server's
    :attr:`Config.http1 <trio_h2.Config.http1>` decides what it serves; a
    client that negotiates ``http/1.1`` with ``Config(http1=False)`` is
    closed. ``ciphers`` narrows the TLS 1.2 suites (see :func:`h2_ciphers`).
    """
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(h2_ciphers(ciphers))
    context.set_alpn_protocols(["h2", "http/1.1"] if http1 else ["h2"])
    return context


def server_ssl_context(certfile: str, keyfile: str | None = None, *,
                       http1: bool = True, password: str | None = None,
                       ciphers: str | None = None) -> ssl.SSLContext:
    """A server :class:`ssl.SSLContext` for trio_h2 from a PEM certificate chain
    and key (decrypted with ``password`` if given); ALPN and ``ciphers`` as
    :func:`configure_h2_context` sets them. Raises :exc:`OSError` or
    :exc:`ssl.SSLError` if they cannot be loaded, :exc:`ValueError` for a
    ``ciphers`` string that leaves no suite."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile, password)
    return configure_h2_context(context, http1=http1, ciphers=ciphers)


def h2_ciphers(requested: str | None) -> str:
    """The TLS 1.2 cipher suites, as an OpenSSL cipher string, that are both in
    ``requested`` (an OpenSSL cipher string; ``None`` for all) and allowed by
    RFC 9113 section 9.2.2 (:data:`H2_TLS12_CIPHERS`), in ``requested``'s
    order. Raises :exc:`ValueError` if none is left."""
    if requested is None:
        return H2_TLS12_CIPHERS
    allowed = set(_tls12_suites(H2_TLS12_CIPHERS))
    chosen = [name for name in _tls12_suites(requested) if name in allowed]
    if not chosen:
        raise ValueError(f"cipher string {requested!r} leaves no TLS 1.2 cipher suite that "
                         f"RFC 9113 allows for HTTP/2 (ECDHE or DHE with AES-GCM or "
                         f"ChaCha20-Poly1305)")
    return ":".join(chosen)


def _tls12_suites(cipher_string: str) -> list[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(cipher_string)
    except ssl.SSLError:  # "No cipher can be selected"
        return []
    return [suite["name"] for suite in context.get_ciphers() if suite["protocol"] != "TLSv1.3"]


def cipher_suite_ids(context: ssl.SSLContext) -> dict[str, int]:
    """The IANA number of each cipher suite ``context`` may negotiate, by
    OpenSSL's name for it (what :meth:`ssl.SSLObject.cipher` reports): the
    ASGI TLS extension's ``cipher_suite``. OpenSSL's id carries the IANA
    number in its low 16 bits (``0x03001302`` is ``TLS_AES_256_GCM_SHA384``,
    0x1302)."""
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}

"""The ASGI HTTP connection scope for one request (ASGI spec 2.4). Pure."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from .._core.exchange import Address
from .._core.headers import RequestHead

# (host, port), or (path, None) for a Unix socket, as the ASGI spec has it.

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


def build_scope(
    head: RequestHead,
    *,
    http_version: str,
    scheme: str,
    server: Address | None,
    client: Address | None,
    root_path: str,
    state: dict[str, Any] | None,
    extensions: dict[str, Any],
) -> dict[str, Any]:
    """The ``http`` scope for ``head``.

    ``path`` is percent-decoded UTF-8 (undecodable bytes survive as
    surrogates) and, as uvicorn and Starlette expect, includes ``root_path``;
    ``raw_path`` is the path exactly as received. ``:authority`` becomes the
    first ``host`` header, as the ASGI spec asks for HTTP/2 (and, over
    HTTP/1.1, so does the authority of an absolute-form request-target, which
    RFC 9112 section 3.2.2 puts before Host). ``http_version`` is ``"2"``,
    ``"1.1"`` or ``"1.0"``.
    """
    raw_path, _, query = head.path.partition(b"?")
    path = unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape")
    headers = [[name, value] for name, value in head.headers if name != b"host"]
    host = head.host
    if host is not None:
        headers.insert(0, [b"host", host])
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": http_version,
        "method": head.method.decode("ascii", "surrogateescape"),
        "scheme": head.scheme.decode("ascii", "surrogateescape") if head.scheme else scheme,
        "path": root_path + path,
        "raw_path": root_path.encode() + raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "server": server,
        "client": client,
        "extensions": extensions,
    }
    if state is not None:
        # ASGI lifespan state: each request gets a shallow copy.
        scope["state"] = dict(state)
    return scope


# RFC 4514 section 3's short names for the attributes Python's ssl module
# reports by their long names; others keep the name ssl gives them.
_RDN_NAMES = {
    "commonName": "CN", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
}

# The TLS version as the ASGI TLS extension has it: the protocol's own number.
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

Subject = tuple[tuple[tuple[str, str], ...], ...]
"""A certificate's subject as :meth:`ssl.SSLSocket.getpeercert` gives it."""


def tls_extension(*, version: str | None, cipher_suite: int | None,
                  client_cert: str | None, client_subject: Subject | None) -> dict[str, Any]:
    """The scope's ``tls`` extension (ASGI TLS extension 0.2) for a
    connection whose TLS handshake gave these values. ``client_cert`` is the
    client's certificate as PEM, once verified (``--verify-mode``), else None.

    ``server_cert`` is None: :mod:`ssl` cannot give back the certificate a
    server context presents (the spec allows None). ``client_cert_chain``
    holds the client's own certificate: before Python 3.13 :mod:`ssl` gives
    no other of the chain. ``client_cert_error`` is None: a certificate that
    fails verification fails the handshake, so no request ever sees one."""
    return {
        "server_cert": None,
        "client_cert_chain": [] if client_cert is None else [client_cert],
        "client_cert_name": None if client_subject is None else rfc4514_name(client_subject),
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": cipher_suite,
    }


def rfc4514_name(subject: Subject) -> str:
    """``subject`` as an RFC 4514 string: the last RDN first, special
    characters escaped (``CN=client,O=Example\\, Inc.``)."""
    def escape(value: str) -> str:
        value = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
        if value.startswith((" ", "#")):
            value = "\\" + value
        return value[:-1] + "\\ " if value.endswith(" ") else value

    return ",".join("+".join(f"{_RDN_NAMES.get(k, k)}={escape(v)}" for k, v in rdn)
                    for rdn in reversed(subject))

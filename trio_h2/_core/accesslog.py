"""The access log's line: gunicorn's format atoms over one finished exchange. Pure.

A line is ``logging``'s lazy %-formatting of :attr:`Config.access_log_format`
with an :class:`AccessAtoms` mapping as its argument: each atom is computed
when the format asks for it (``__getitem__``), so a format of five atoms
costs five lookups, and nothing is computed for a record that no handler
emits. Every value taken from the request or the response is escaped as
nginx escapes its access log: ``"``, ``\\`` and bytes outside 0x20-0x7e
become ``\\xHH``, so a request cannot forge a line or a field.

The atoms and their meanings are gunicorn's (``h l u t r m U q H s B b f a
T M D L p``, ``{Header}i``, ``{Header}o``, ``{VAR}e``), Hypercorn's
additions (``R Uq st S``), and trio_h2's own, named with whole words so that
they collide with neither (``stream outcome peer received``): see
:data:`ATOMS`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import final
from urllib.parse import unquote_to_bytes

from .exchange import Address
from .headers import Headers, RequestHead

__all__ = ["ATOMS", "DEFAULT_FORMAT", "NO_RESPONSE", "OUTCOMES", "AccessAtoms",
           "atoms_table", "check_format", "escape"]

# gunicorn's default (Apache's combined log format), so is Hypercorn's.
DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# The status logged when no response head went out (the client reset the
# stream or left first): nginx's "client closed request".
NO_RESPONSE = 499

OUTCOMES = {
    "ok": "the response ended as the application sent it",
    "error": "the application failed: a 500 went out instead, or the response was reset "
             "(RST_STREAM INTERNAL_ERROR, or the HTTP/1.1 connection closed) part way",
    "reset": "the exchange ended before its response did: the client reset the stream or "
             "went away, a timeout, or the server's shutdown deadline",
}

ATOMS = {
    "h": "the client's address (after ``--proxy-protocol`` and ``--proxy-headers``)",
    "l": "``-``",
    "u": "the user name of an ``Authorization: Basic`` request header, else ``-``",
    "t": "when the request arrived, ``[06/Dec/2026:23:00:44 +0000]`` (local time)",
    "r": "the request line: method, target with its query, protocol "
         "(``GET /a?b=1 HTTP/2``)",
    "R": "the same as ``r`` (Hypercorn's name for it)",
    "m": "the request method",
    "U": "the URL path without the query string, percent-decoded",
    "Uq": "the request target as received, with its query string",
    "q": "the query string",
    "H": "the protocol: ``HTTP/2``, ``HTTP/1.1`` or ``HTTP/1.0``",
    "s": f"the response status (``101`` for an accepted WebSocket over HTTP/1.1, "
         f"``200`` over HTTP/2; ``{NO_RESPONSE}`` if no response head went out)",
    "st": "the status's reason phrase (``OK``)",
    "S": "the scheme the application saw: ``http``, ``https``, ``ws``, ``wss``",
    "B": "response body bytes sent (WebSocket: frame bytes sent)",
    "b": "the same, or ``-`` for none (the common log format)",
    "f": "the ``Referer`` request header",
    "a": "the ``User-Agent`` request header",
    "T": "the request's duration in whole seconds",
    "M": "the request's duration in whole milliseconds",
    "D": "the request's duration in whole microseconds",
    "L": "the request's duration in seconds, six decimals",
    "p": "the process ID, ``<1234>``",
    "{Header}i": "a request header (several joined with ``, ``), ``-`` if absent",
    "{Header}o": "a response header, ``-`` if absent",
    "{VAR}e": "an environment variable, ``-`` if unset",
    "stream": "trio_h2: the HTTP/2 stream ID; over HTTP/1.1 the request's number on "
              "its connection (1, 2, ...)",
    "outcome": "trio_h2: how the exchange ended: " + ", ".join(
        f"``{name}`` ({meaning})" for name, meaning in OUTCOMES.items()),
    "peer": "trio_h2: the address of the connection's immediate peer (the proxy, "
            "when ``h`` is the client behind it)",
    "received": "trio_h2: request body bytes the application received (WebSocket: "
                "frame bytes)",
}

# The atoms whose value is an int (the others are str).
_NUMBERS = frozenset(["s", "B", "T", "M", "D", "stream", "received"])
_NAMED = re.compile(r"%\(([^)]*)\)")
_ENCLOSED = re.compile(r"\{([^{}]+)\}([ioe])")
# nginx's escaping for its access log (ngx_http_log_escape): '"', '\' and
# bytes outside 0x20-0x7e as \xHH.
_UNSAFE = re.compile(rb'["\\\x00-\x1f\x7f-\xff]')


def atoms_table() -> str:
    """docs/access_log_atoms.inc: :data:`ATOMS` as an RST list-table (a test
    checks that the file is this function's output)."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 20 80", "",
             "   * - Atom", "     - Its value"]
    for name, meaning in ATOMS.items():
        lines += [f"   * - ``%({name})s``", f"     - {meaning}"]
    return "\n".join(lines) + "\n"


def escape(value: bytes) -> str:
    """``value`` as one field of a log line: printable ASCII, with ``"``,
    ``\\`` and every other byte written as ``\\xHH``."""
    if _UNSAFE.search(value) is not None:
        value = _UNSAFE.sub(lambda match: b"\\x%02X" % match.group()[0], value)
    return value.decode("ascii")


def check_format(log_format: str) -> None:
    """Raise :exc:`ValueError` naming the problem if ``log_format`` names an
    atom that does not exist or is not a valid %-format with a mapping."""
    for name in _NAMED.findall(log_format):
        if name not in ATOMS and _ENCLOSED.fullmatch(name) is None:
            raise ValueError(f"unknown atom %({name}) in {log_format!r} (see the access "
                             f"log atoms in the docs; a literal % is written %%)")
    try:
        log_format % _Sample()
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{log_format!r} is not a %-format of atoms such as %(h)s: "
                         f"{exc}") from None


@final
class _Sample(Mapping[str, object]):
    """Any atom, as a value of its type: what :func:`check_format` formats with."""

    def __getitem__(self, key: str) -> object:
        return 0 if key in _NUMBERS else "-"

    def __iter__(self) -> Iterator[str]:
        return iter(ATOMS)

    def __len__(self) -> int:
        return len(ATOMS)


_last_second = -1
_last_stamp = ""


def _clf_time(when: float) -> str:
    """``when`` as the common log format has it; one ``strftime`` a second."""
    global _last_second, _last_stamp
    second = int(when)
    if second != _last_second:
        _last_stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second))
        _last_second = second
    return _last_stamp


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AccessAtoms(Mapping[str, object]):
    """The atoms of one finished exchange, computed as a format asks for
    them; made only when the ``trio_h2.access`` logger is enabled."""

    head: RequestHead
    stream_id: int
    http_version: str
    scheme: str
    client: Address | None
    peer: Address | None
    status: int | None
    """None if no response head went out: logged as :data:`NO_RESPONSE`."""
    response: Headers
    sent: int
    received: int
    outcome: str
    started: float
    duration: float

    def __getitem__(self, key: str) -> object:
        atom = _ATOM_VALUES.get(key)
        if atom is not None:
            return atom(self)
        enclosed = _ENCLOSED.fullmatch(key)
        if enclosed is None:
            return "-"  # (check_format lets no such key through)
        name, where = enclosed.group(1), enclosed.group(2)
        if where == "e":
            value = os.environ.get(name)
            return "-" if value is None else escape(value.encode("utf-8", "surrogateescape"))
        field = name.lower().encode("latin-1", "replace")
        if where == "o":
            return _field(self.response, field)
        if field == b"host" and self.head.authority:
            return escape(self.head.authority)
        return _field(self.head.headers, field)

    def __iter__(self) -> Iterator[str]:
        return iter(_ATOM_VALUES)

    def __len__(self) -> int:
        return len(_ATOM_VALUES)


def _field(fields: Headers, name: bytes) -> str:
    values = [value for field, value in fields if field == name]
    return escape(b", ".join(values)) if values else "-"


def _host(address: Address | None) -> str:
    return "-" if address is None else escape(address[0].encode("utf-8", "surrogateescape"))


def _request_line(atoms: AccessAtoms) -> str:
    return f"{escape(atoms.head.method)} {escape(atoms.head.path)} HTTP/{atoms.http_version}"


def _user(atoms: AccessAtoms) -> str:
    """The user name of HTTP Basic credentials (RFC 7617), as gunicorn logs it."""
    for name, value in atoms.head.headers:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() != b"basic":
                return "-"
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                return "-"
            return escape(decoded.partition(b":")[0])
    return "-"


def _phrase(atoms: AccessAtoms) -> str:
    try:
        return HTTPStatus(atoms.status or NO_RESPONSE).phrase
    except ValueError:
        return "-"


_ATOM_VALUES: dict[str, Callable[[AccessAtoms], object]] = {
    "h": lambda atoms: _host(atoms.client),
    "l": lambda atoms: "-",
    "u": _user,
    "t": lambda atoms: _clf_time(atoms.started),
    "r": _request_line,
    "R": _request_line,
    "m": lambda atoms: escape(atoms.head.method),
    "U": lambda atoms: escape(unquote_to_bytes(atoms.head.path.partition(b"?")[0])),
    "Uq": lambda atoms: escape(atoms.head.path),
    "q": lambda atoms: escape(atoms.head.path.partition(b"?")[2]),
    "H": lambda atoms: f"HTTP/{atoms.http_version}",
    "s": lambda atoms: NO_RESPONSE if atoms.status is None else atoms.status,
    "st": _phrase,
    "S": lambda atoms: escape(atoms.scheme.encode()),
    "B": lambda atoms: atoms.sent,
    "b": lambda atoms: atoms.sent or "-",
    "f": lambda atoms: _field(atoms.head.headers, b"referer"),
    "a": lambda atoms: _field(atoms.head.headers, b"user-agent"),
    "T": lambda atoms: int(atoms.duration),
    "M": lambda atoms: int(atoms.duration * 1_000),
    "D": lambda atoms: int(atoms.duration * 1_000_000),
    "L": lambda atoms: f"{atoms.duration:.6f}",
    "p": lambda atoms: f"<{os.getpid()}>",
    "stream": lambda atoms: atoms.stream_id,
    "outcome": lambda atoms: atoms.outcome,
    "peer": lambda atoms: _host(atoms.peer),
    "received": lambda atoms: atoms.received,
}

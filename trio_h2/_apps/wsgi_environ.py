"""The WSGI ``environ`` for one ASGI ``http`` scope (PEP 3333), and the
objects it holds: ``wsgi.input``, ``wsgi.errors`` and ``wsgi.file_wrapper``.

Nothing here imports trio. ``InputStream`` and ``ErrorStream`` are used from
the application's worker thread only; ``InputStream`` gets its bytes from a
callable the caller supplies (``_apps.wsgi`` passes one that waits in trio).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, final

log = logging.getLogger("trio_h2")

# The block a file wrapper reads at least. Each block is one round trip from
# the app's thread into trio and one hand-off to the sender; 8 KiB (PEP 3333's
# example, and Werkzeug's send_file) would cost 128 of each per MiB. 64 KiB
# is four full HTTP/2 frames and half the sender's 128 KiB write batch, and
# is what Python's shutil.copyfileobj reads on Linux (COPY_BUFSIZE).
FILE_BLOCK = 64 * 1024

# PEP 3333 section "Other HTTP Features": requests' hop-by-hop headers are the
# server's business. Those named by RFC 2616 section 13.5.1 (as wsgiref.util
# lists them).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate",
                        "proxy-authorization", "te", "trailers", "transfer-encoding",
                        "upgrade"})

DEFAULT_PORTS = {"http": "80", "https": "443"}


def build_environ(
    scope: Mapping[str, Any],
    *,
    input_stream: InputStream,
    errors: ErrorStream,
    multithread: bool,
    multiprocess: bool,
) -> dict[str, object]:
    """The PEP 3333 ``environ`` for the ASGI ``http`` ``scope``.

    Strings are "native strings": bytes decoded as ISO-8859-1. ``PATH_INFO``
    is the percent-decoded path (as CGI has it) after ``SCRIPT_NAME``, the
    scope's ``root_path``. ``SERVER_NAME`` and ``SERVER_PORT`` come from the
    Host header (HTTP/2: ``:authority``) when there is one, else from the
    address the connection arrived on, as gunicorn does. Request headers
    become ``HTTP_*`` (repeated ones joined with ``,``, cookie crumbs with
    ``; `` as RFC 9113 section 8.2.3 says); header names with an underscore
    are dropped, since ``X_Forwarded_For`` would pass for ``X-Forwarded-For``
    (Apache 2.4, nginx and gunicorn 22 drop them too)."""
    scheme = str(scope.get("scheme", "http"))
    root_path = str(scope.get("root_path", ""))
    # The scope's path is UTF-8 with surrogates for undecodable bytes (and
    # includes root_path): encoding it back gives the decoded bytes.
    path = str(scope["path"]).encode("utf-8", "surrogateescape")
    root = root_path.encode("utf-8", "surrogateescape")
    if root and (path == root or path.startswith(root + b"/")):
        path = path[len(root):]
    environ: dict[str, object] = {
        "REQUEST_METHOD": str(scope["method"]),
        "SCRIPT_NAME": root.decode("latin-1"),
        "PATH_INFO": path.decode("latin-1"),
        "QUERY_STRING": bytes(scope.get("query_string", b"")).decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": input_stream,
        # An extension of mod_wsgi, gunicorn and Werkzeug: reading to the end
        # of wsgi.input is safe without CONTENT_LENGTH (HTTP/2 requests and
        # chunked HTTP/1.1 uploads may have none). Flask reads such bodies
        # only when it is set.
        "wsgi.input_terminated": True,
        "wsgi.errors": errors,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    cookies: list[str] = []
    for raw_name, raw_value in scope.get("headers", ()):
        name = bytes(raw_name).decode("latin-1").lower()
        value = bytes(raw_value).decode("latin-1")
        if "_" in name:
            continue
        if name == "cookie":
            cookies.append(value)
            continue
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        previous = environ.get(key)
        environ[key] = value if previous is None else f"{previous},{value}"
    if cookies:
        environ["HTTP_COOKIE"] = "; ".join(cookies)
    host = environ.get("HTTP_HOST")
    name_port = _host_and_port(host, scheme) if isinstance(host, str) else None
    if name_port is None:
        server = scope.get("server")
        name_port = ((str(server[0]), str(server[1])) if server
                     else ("localhost", DEFAULT_PORTS.get(scheme, "80")))
    environ["SERVER_NAME"], environ["SERVER_PORT"] = name_port
    return environ


def _host_and_port(host: str, scheme: str) -> tuple[str, str] | None:
    """``(name, port)`` of a Host header value; ``None`` if it does not parse."""
    if host.startswith("["):  # [v6]:port
        name, bracket, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if not bracket or (rest and not rest.startswith(":")):
            return None
    else:
        name, colon, port = host.rpartition(":")
        if not colon:
            name, port = host, ""
    if not name or (port and not port.isdecimal()):
        return None
    return name, port or DEFAULT_PORTS.get(scheme, "80")


@final
class InputStream:
    """``wsgi.input``: the request body, read as the application asks for it.

    ``next_chunk()`` returns the next piece of body, ``b""`` once the body has
    ended (it may raise, for example :exc:`ClientDisconnected`). This holds at
    most one such piece beyond what the application has read, except while
    ``readline()`` without a size looks for the end of a long line."""

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next_chunk = next_chunk
        self._buffer = bytearray()
        self._eof = False

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all the rest if ``size`` is negative or
        ``None``); ``b""`` at the end of the body."""
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(min(size, len(self._buffer)))

    def readline(self, size: int | None = -1) -> bytes:
        """One line, with its ``\\n``, or at most ``size`` bytes of it."""
        limit = -1 if size is None else size
        searched = 0
        while True:
            newline = self._buffer.find(b"\n", searched)
            if newline >= 0:
                end = newline + 1
                break
            if 0 <= limit <= len(self._buffer):
                end = limit
                break
            searched = len(self._buffer)
            if not self._fill():
                end = len(self._buffer)
                break
        return self._take(end if limit < 0 else min(end, limit))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines; stops once they add up to ``hint`` bytes (if > 0)."""
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def _fill(self) -> bool:
        """Append the next piece of body; ``False`` at the end."""
        if self._eof:
            return False
        data = self._next_chunk()
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]  # CPython drops a bytearray's head without copying
        return data


@final
class ErrorStream:
    """``wsgi.errors``: each line written is one ERROR record of the
    ``trio_h2`` logger, prefixed with the request. A line without its ``\\n``
    waits for the rest, for :meth:`flush`, or for the end of the request."""

    def __init__(self, request: str) -> None:
        self._request = request
        self._partial = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = ""

    def _emit(self, line: str) -> None:
        log.error("%s: wsgi.errors: %s", self._request, line)


class _FileLike(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@final
class FileWrapper:
    """``wsgi.file_wrapper``: iterates ``filelike`` in blocks of at least
    ``blksize`` bytes (see ``FILE_BLOCK``) from where it stands; :meth:`close`
    closes it (the server calls it at the end of the response, as for any
    iterable)."""

    def __init__(self, filelike: _FileLike, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = max(blksize, FILE_BLOCK)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if not data:
            raise StopIteration
        return data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

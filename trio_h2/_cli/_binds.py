"""Where the runner listens: ``--bind`` addresses, parsed and opened.

Three kinds, with Hypercorn's spelling:

* ``HOST:PORT`` or ``[IPV6]:PORT``: TCP, every address ``HOST`` resolves to.
* ``unix:PATH``: a Unix stream socket at ``PATH``. A socket file left there
  by a process that is gone (nothing accepts a connection on it) is removed
  first; any other file, or a socket someone listens on, is an error. The
  socket is created with mode ``--unix-socket-mode`` and removed when the
  runner exits.
* ``fd://N``: a listening stream socket this process inherited as file
  descriptor ``N`` (systemd socket activation passes the first as 3). It is
  checked, and used as it is (its backlog is whoever opened it's).

With ``--workers`` the supervisor reserves each TCP address (the workers
each listen on it with SO_REUSEPORT, see :mod:`trio_h2._io.workers`), and opens
every Unix and inherited socket itself and passes it to each worker by file
descriptor: SO_REUSEPORT does not apply to them, so the workers share one
accept queue.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, final

import trio

from .._io.workers import open_reuseport_listeners, reserve
from ._errors import EXIT_FAILURE, CommandError

__all__ = ["Bind", "FdBind", "TCPBind", "UnixBind", "Unlinker", "inherited_socket",
           "parse_bind"]

T = TypeVar("T")

# Unix socket file mode: connecting needs write permission. Owner and group,
# not everyone: the proxy in front (nginx) usually runs in the app's group,
# and 0666 (uvicorn's choice) would let every local user bypass the proxy.
DEFAULT_UNIX_MODE = 0o660


@final
@dataclass(frozen=True, slots=True)
class TCPBind:
    """``HOST:PORT``; ``host`` is a name, an IPv4 or a bare IPv6 address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@final
@dataclass(frozen=True, slots=True)
class UnixBind:
    """``unix:PATH``."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


@final
@dataclass(frozen=True, slots=True)
class FdBind:
    """``fd://N``: an inherited listening socket."""

    fd: int

    def __str__(self) -> str:
        return f"fd://{self.fd}"


Bind = TCPBind | UnixBind | FdBind


class BadBind(ValueError):
    """A ``--bind`` value that does not parse; the message says why."""


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``unix:PATH`` or ``fd://N`` as a
    :data:`Bind`; raises :exc:`BadBind` saying what is wrong."""
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path or "\0" in path:
            raise _bad_bind(text, "expected unix:PATH")
        return UnixBind(path)
    if text.startswith("fd://"):
        number = text.removeprefix("fd://")
        if not re.fullmatch(r"[0-9]{1,9}", number):
            raise _bad_bind(text, "expected fd://N, N a file descriptor number")
        return FdBind(int(number))
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or not rest.startswith(":"):
            raise _bad_bind(text, "expected [IPV6]:PORT")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad_bind(text, f"{host!r} in brackets is not an IPv6 address") from None
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise _bad_bind(text, "expected HOST:PORT, unix:PATH or fd://N")
        if not host:
            raise _bad_bind(text, "missing host (0.0.0.0:PORT listens on all IPv4 addresses)")
        if ":" in host:
            raise _bad_bind(text, "an IPv6 address needs brackets, as in [::1]:8000")
    if any(char.isspace() for char in host):
        raise _bad_bind(text, "the host contains whitespace")
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        raise _bad_bind(text, "the port must be a number from 0 to 65535")
    return TCPBind(host, int(port_text))


def _bad_bind(text: str, reason: str) -> BadBind:
    return BadBind(f"invalid address {text!r}: {reason}")


# -- opening ------------------------------------------------------------------------


@final
class Unlinker:
    """Removes, at exit, the Unix socket files this process created (only if
    the file there is still the one it created)."""

    def __init__(self) -> None:
        self._created: list[tuple[str, int, int]] = []

    def add(self, path: str) -> None:
        info = os.stat(path)
        self._created.append((path, info.st_dev, info.st_ino))

    def unlink_all(self) -> None:
        for path, device, inode in self._created:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                if (info.st_dev, info.st_ino) == (device, inode):
                    os.unlink(path)
        self._created.clear()


async def open_listeners(binds: Sequence[Bind], *, backlog: int, unix_mode: int,
                         unlinker: Unlinker) -> list[trio.SocketListener]:
    """A listener for every address of ``binds`` (one process serving all).
    Raises :exc:`CommandError` if one cannot be opened (those already open
    are closed)."""
    async def open_one(bind: Bind) -> list[trio.SocketListener]:
        if isinstance(bind, TCPBind):
            return await trio.open_tcp_listeners(bind.port, host=bind.host, backlog=backlog)
        sock = (unix_listener(bind.path, unix_mode, backlog, unlinker)
                if isinstance(bind, UnixBind) else inherited_socket(bind.fd))
        return [_listener(sock)]

    return await bind_each(binds, open_one, _close_listener)


async def open_for_workers(binds: Sequence[Bind], *, backlog: int, unix_mode: int,
                           unlinker: Unlinker) -> list[socket.socket]:
    """What the supervisor holds for its workers: for each TCP address, bound
    SO_REUSEPORT sockets that do not listen (:func:`reserve`); for each Unix
    or inherited socket, the listening socket itself, to pass on."""
    async def open_one(bind: Bind) -> list[socket.socket]:
        if isinstance(bind, TCPBind):
            return await reserve(bind.host, bind.port)
        if isinstance(bind, UnixBind):
            return [unix_listener(bind.path, unix_mode, backlog, unlinker)]
        return [inherited_socket(bind.fd)]

    return await bind_each(binds, open_one, socket.socket.close)


async def open_in_worker(tcp: Sequence[TCPBind], fds: Sequence[int], *,
                         backlog: int) -> list[trio.SocketListener]:
    """A worker's listeners: its own SO_REUSEPORT socket on each address the
    supervisor reserved, and the listening sockets it passed (``fds``)."""
    async def open_one(bind: Bind) -> list[trio.SocketListener]:
        if isinstance(bind, TCPBind):
            return await open_reuseport_listeners(bind.host, bind.port, backlog=backlog)
        assert isinstance(bind, FdBind)
        return [_listener(inherited_socket(bind.fd))]

    return await bind_each([*tcp, *(FdBind(fd) for fd in fds)], open_one, _close_listener)


async def bind_each(binds: Sequence[Bind], open_one: Callable[[Bind], Awaitable[list[T]]],
                    close: Callable[[T], object]) -> list[T]:
    """``open_one(bind)`` for each of ``binds``, concatenated. Raises
    :exc:`CommandError` if one fails (the ones already open are closed)."""
    opened: list[T] = []
    try:
        for bind in binds:
            try:
                opened += await open_one(bind)
            except OSError as exc:
                raise CommandError(f"cannot listen on {bind}: {exc.strerror or exc}") from None
    except BaseException:
        for each in opened:
            close(each)
        raise
    return opened


def unix_listener(path: str, mode: int, backlog: int, unlinker: Unlinker) -> socket.socket:
    """A listening Unix stream socket at ``path`` with file mode ``mode``,
    after removing a stale socket file there. Raises :exc:`CommandError` if
    something else is at ``path`` or someone listens on it, :exc:`OSError`
    if it cannot be created."""
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The file is created with 0777 & ~umask: with this umask it never
        # exists, even for an instant, with more permissions than ``mode``.
        previous = os.umask(0o777 & ~mode)
        try:
            sock.bind(path)
        finally:
            os.umask(previous)
        unlinker.add(path)
        os.chmod(path, mode)  # the umask can only remove bits
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise CommandError(f"cannot listen on unix:{path}: the file exists and is not a "
                           f"socket (not removed)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # a socket nobody listens on: left by a process that died
            return
        except OSError:
            return  # gone meanwhile, or not ours to judge: bind() will say
    raise CommandError(f"cannot listen on unix:{path}: another process is listening on it")


def inherited_socket(fd: int) -> socket.socket:
    """The listening stream socket inherited as file descriptor ``fd``.
    Raises :exc:`CommandError` (one line) if ``fd`` is not open, not a
    socket, not a stream socket or not listening."""
    where = f"fd://{fd}"
    try:
        os.fstat(fd)
    except OSError:
        raise CommandError(f"cannot listen on {where}: file descriptor {fd} is not open "
                           f"(was it passed to this process?)", EXIT_FAILURE) from None
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        reason = ("is not a socket" if exc.errno == errno.ENOTSOCK
                  else f"cannot be used: {exc.strerror or exc}")
        raise CommandError(f"cannot listen on {where}: file descriptor {fd} {reason}") from None
    problem = None
    if sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        problem = f"is not a TCP or Unix socket (address family {int(sock.family)})"
    elif sock.type != socket.SOCK_STREAM:
        problem = f"is a {sock.type.name} socket, not a stream socket"
    elif not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        problem = "is a socket that is not listening"
    if problem is not None:
        sock.detach()  # not ours: leave the descriptor as we found it
        raise CommandError(f"cannot listen on {where}: file descriptor {fd} {problem}")
    # Processes the app starts must not inherit it; workers get it by pass_fds.
    sock.set_inheritable(False)
    return sock


def _listener(sock: socket.socket) -> trio.SocketListener:
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


def _close_listener(listener: trio.SocketListener) -> None:
    listener.socket.close()

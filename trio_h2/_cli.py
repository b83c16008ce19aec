"""The command-line runner: ``python -m trio_h2 [MODULE:APP] [options]`` (or ``trio-h2``).

Parses the command line, imports the application (the built-in demo app if
none is named), loads the TLS certificate, binds every ``--bind`` address and
serves them all with one :func:`serve_listeners` call, in one process, until
SIGINT or SIGTERM. The first such signal shuts down gracefully (listeners
close, GOAWAY, in-flight streams get up to ``--shutdown-timeout`` seconds) and
the exit status is 0; a second one exits at once with status 1.

With ``--workers N`` (N > 1) this process is a supervisor instead: it checks
the same inputs, reserves the addresses and runs N worker processes, each a
``python -m trio_h2`` with the same arguments plus two internal ones (where
to listen, and its channel to the supervisor). :mod:`trio_h2._workers` has
the mechanics and the policy; the exit statuses are the same.

Errors in what the user gave us never show a traceback: each is one line on
stderr, ``trio_h2: error: <what went wrong>``. Exit status 2 means the
command line itself is malformed (as argparse does): unknown option, a
MODULE:APP or bind address that does not parse, a port out of range,
``--keyfile`` without ``--certfile``, ``--self-signed`` with ``--certfile``.
Exit status 1 means well-formed arguments that could not be used: a module
that cannot be imported or raises while importing, a missing attribute, an
unreadable certificate or key, an address that cannot be bound (in use,
unresolvable), the app's lifespan startup failing. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import ipaddress
import logging
import os
import re
import signal
import socket
import ssl
import sys
import tempfile
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar, cast, final

import trio

from ._asgi import ASGIApp
from ._config import Config
from ._demo import DemoApp
from ._lifespan import LifespanFailure
from ._scope import Address
from ._selfsigned import SelfSigned, make_self_signed
from ._server import serve_listeners
from ._tls import server_ssl_context
from ._workers import (
    REUSEPORT_SPREADS_CONNECTIONS,
    WORKER_TIMEOUT,
    Supervisor,
    WorkerFailure,
    enable_stack_dump,
    open_reuseport_listeners,
    report_failure,
    reserve,
    serve_worker,
)
from ._wsgi import DEFAULT_THREADS, WSGIApp, WSGICallable, detect_interface

log = logging.getLogger("trio_h2")

__all__ = ["main"]

PROG = "trio_h2"
DEFAULT_BIND = "127.0.0.1:8000"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # what argparse uses for a malformed command line
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# With --workers, several processes write to the same stderr: say which.
LOG_FORMAT_WORKERS = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
# Certificates and keys are a few KiB; reading more than this to look for PEM
# markers only matters for a wrong path such as /dev/zero.
PEM_READ_LIMIT = 1024 * 1024


class CommandError(Exception):
    """A problem with what the user gave us: reported as one line, exit ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


@final
@dataclass(frozen=True, slots=True)
class Bind:
    """One ``--bind`` address. ``host`` is a name, an IPv4 or a bare IPv6 address."""

    host: str
    port: int

    def __str__(self) -> str:
        return _host_port(self.host, self.port)


@final
@dataclass(frozen=True, slots=True)
class AppSpec:
    """``MODULE:APP``: a module to import and an attribute path inside it."""

    module: str
    attributes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.module}:{'.'.join(self.attributes)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server as the command line ``argv`` (default ``sys.argv[1:]``) says.

    Returns the exit status (see the module docstring); ``--help`` and
    ``--version`` print and return 0, Ctrl+C before serving starts returns
    130. Errors in the arguments, the app or the environment are printed as
    one line on stderr, not raised; anything else is a bug and propagates.
    """
    try:
        return _main(argv)
    except CommandError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        # Ctrl+C before the signal handlers are installed (while importing
        # the app, say) or after they are gone: nothing is being served.
        return 128 + signal.SIGINT


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or --version: argparse printed and exits
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if args.self_signed and (args.certfile is not None or args.keyfile is not None):
        raise CommandError("--self-signed makes its own certificate: give either it or "
                           "--certfile/--keyfile, not both", EXIT_USAGE)
    if args.keyfile is not None and args.certfile is None:
        raise CommandError("--keyfile needs --certfile (see --help)", EXIT_USAGE)
    if args.workers > 1 and not REUSEPORT_SPREADS_CONNECTIONS:
        raise CommandError(f"--workers needs SO_REUSEPORT as Linux has it (connections "
                           f"spread over the processes); not available on {sys.platform}")
    if args.worker_timeout is not None and args.workers == 1:
        raise CommandError("--worker-timeout needs --workers N with N > 1 (without workers "
                           "there is no supervisor to watch them)", EXIT_USAGE)

    worker = args.worker_channel is not None
    several = worker or args.workers > 1
    logging.basicConfig(format=LOG_FORMAT_WORKERS if several else LOG_FORMAT, stream=sys.stderr)
    log.setLevel(LOG_LEVELS[args.log_level])
    if worker:
        return _work(args)

    spec: AppSpec | None = args.app
    binds: list[Bind] = args.bind or [parse_bind(DEFAULT_BIND)]
    with contextlib.ExitStack() as stack:
        self_signed = None
        if args.self_signed:
            # Private (0700), and removed when the runner exits; workers
            # load the certificate from it too.
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="trio_h2-"))
            try:
                self_signed = make_self_signed(directory, [bind.host for bind in binds])
            except (OSError, ValueError) as exc:  # a --bind host trustme cannot name
                raise CommandError(f"--self-signed cannot make a certificate: "
                                   f"{type(exc).__name__}: {exc}") from None
            args.certfile = self_signed.cert_file
        app, ssl_context, config = _load(args)
        announcer = _Announcer("demo app" if spec is None else str(spec),
                               tls=ssl_context is not None, http1=config.http1,
                               workers=args.workers,
                               self_signed=self_signed, interface=_interface_note(app))
        if args.workers > 1:
            command = functools.partial(_worker_command, argv, self_signed=self_signed)
            clean = _run(functools.partial(_supervise, binds, args.workers, command, announcer,
                                           config.shutdown_timeout, _worker_timeout(args)))
            return EXIT_OK if clean else EXIT_FAILURE
        _run(functools.partial(_serve, app, binds, ssl_context, config, announcer))
        return EXIT_OK


def _load(args: argparse.Namespace) -> tuple[ASGIApp, ssl.SSLContext | None, Config]:
    """The app, the TLS context and the Config that ``args`` describe."""
    spec: AppSpec | None = args.app
    app = DemoApp() if spec is None else _adapt(load_app(spec), spec, args)
    ssl_context = (None if args.certfile is None
                   else load_tls(args.certfile, args.keyfile, http1=args.http1))
    config = Config(shutdown_timeout=args.shutdown_timeout, http1=args.http1, **{
        flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag in TIMEOUT_FLAGS})
    return app, ssl_context, config


T = TypeVar("T")


def _run(async_fn: Callable[[], Awaitable[T]]) -> T:
    """``trio.run(async_fn)``, with the user's errors as :exc:`CommandError`."""
    try:
        return trio.run(async_fn)
    except Exception as exc:
        # Errors from inside nurseries arrive wrapped in exception groups.
        leaves = _leaves(exc)
        if not all(isinstance(leaf, CommandError | LifespanFailure) for leaf in leaves):
            raise
        first = leaves[0]
        if isinstance(first, LifespanFailure):
            raise CommandError(f"application startup failed: {first}") from None
        raise first from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block plus error line.
        raise CommandError(f"{message} (see --help)", EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="Serve an ASGI 3 application over HTTP/2 and HTTP/1.1 with trio "
                    "(python -m trio_h2, or trio-h2). Without MODULE:APP, serves a demo app.",
        epilog="Plain TCP speaks HTTP/1.1, and h2c to clients that open with the HTTP/2 "
               "preface (curl --http2-prior-knowledge); with --certfile or --self-signed, TLS "
               "with ALPN h2 or http/1.1. --no-http1 serves HTTP/2 only. SIGINT or SIGTERM "
               "shuts down gracefully (exit status 0); a second one exits at once (status 1). "
               "Errors: status 2 for a malformed command line, 1 for anything that could not "
               "be used or bound.",
    )
    parser.add_argument(
        "app", nargs="?", type=parse_app_spec, metavar="MODULE:APP",
        help="the ASGI application, e.g. 'myproject.asgi:app' or 'pkg.mod:obj.app'; "
             "MODULE is imported with the current directory first on sys.path")
    parser.add_argument(
        "--bind", "-b", action="append", type=parse_bind, metavar="HOST:PORT",
        help=f"address to listen on, HOST:PORT or [IPV6]:PORT; repeat for several; "
             f"port 0 picks a free port (default {DEFAULT_BIND})")
    parser.add_argument(
        "--certfile", metavar="FILE",
        help="PEM certificate chain; enables TLS. Without --keyfile it must hold the "
             "private key too")
    parser.add_argument("--keyfile", metavar="FILE", help="PEM private key for --certfile")
    parser.add_argument(
        "--self-signed", action="store_true",
        help="serve TLS with a certificate for localhost (and the --bind hosts) from a CA "
             "made for this run; prints where the CA certificate is and how to make curl "
             "or Chromium trust it. For trying HTTP/2 in a browser, not for production")
    parser.add_argument(
        "--shutdown-timeout", type=_seconds, default=Config().shutdown_timeout,
        metavar="SECONDS",
        help="how long in-flight streams may run after SIGINT/SIGTERM (default %(default)s)")
    defaults = Config()
    for flag, help_text in TIMEOUT_FLAGS.items():
        parser.add_argument(
            f"--{flag}", type=_positive_seconds, metavar="SECONDS",
            default=getattr(defaults, flag.replace("-", "_")),
            help=f"{help_text} (default %(default)s)")
    parser.add_argument(
        "--no-http1", dest="http1", action="store_false",
        help="serve HTTP/2 only (h2c with prior knowledge, ALPN h2): no HTTP/1.1 on "
             "plain TCP, and no ALPN http/1.1 over TLS")
    parser.add_argument(
        "--workers", type=_worker_count, default=1, metavar="N",
        help="serve with N processes sharing each port (SO_REUSEPORT, Linux only) under "
             "this one, which restarts a worker that exits and passes signals on "
             "(default %(default)s: serve in this process)")
    parser.add_argument(
        "--worker-timeout", type=_positive_seconds, metavar="SECONDS",
        help=f"with --workers: a worker whose event loop sends no heartbeat for this long "
             f"is taken for hung; its stack is dumped to stderr and it is killed and "
             f"replaced (default {WORKER_TIMEOUT:g}, as gunicorn's --timeout)")
    parser.add_argument(
        "--interface", choices=["auto", "asgi", "wsgi"], default="auto",
        help="the interface MODULE:APP serves; auto tells an ASGI app (a coroutine "
             "function) from a WSGI one (environ, start_response) by its signature "
             "(default %(default)s)")
    parser.add_argument(
        "--threads", type=_thread_count, metavar="N",
        help=f"WSGI apps only: worker threads running requests at once "
             f"(default {DEFAULT_THREADS}, as trio's thread limiter)")
    parser.add_argument(
        "--log-level", type=str.lower, choices=list(LOG_LEVELS), default="info",
        help="level of the trio_h2 logger, on stderr (default %(default)s)")
    # Internal: what the supervisor tells a worker (see _worker_command).
    parser.add_argument("--_worker", dest="worker_channel", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_bound", dest="worker_bound", action="append", type=parse_bind,
                        default=[], help=argparse.SUPPRESS)
    parser.add_argument("--_certfile", dest="worker_certfile", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def parse_bind(text: str) -> Bind:
    """``HOST:PORT`` or ``[IPV6]:PORT`` as a :class:`Bind`; raises
    :exc:`argparse.ArgumentTypeError` saying what is wrong."""
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
            raise _bad_bind(text, "expected HOST:PORT")
        if not host:
            raise _bad_bind(text, "missing host (0.0.0.0:PORT listens on all IPv4 addresses)")
        if ":" in host:
            raise _bad_bind(text, "an IPv6 address needs brackets, as in [::1]:8000")
    if any(char.isspace() for char in host):
        raise _bad_bind(text, "the host contains whitespace")
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        raise _bad_bind(text, "the port must be a number from 0 to 65535")
    return Bind(host, int(port_text))


def _bad_bind(text: str, reason: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"invalid address {text!r}: {reason}")


def parse_app_spec(text: str) -> AppSpec:
    """``MODULE:APP`` as an :class:`AppSpec`; raises :exc:`argparse.ArgumentTypeError`."""
    module, colon, attributes = text.partition(":")
    names = attributes.split(".")
    if (not colon or not all(part.isidentifier() for part in module.split("."))
            or not all(name.isidentifier() for name in names)):
        raise argparse.ArgumentTypeError(
            f"invalid application {text!r}: expected MODULE:APP, as in 'myproject.asgi:app'")
    return AppSpec(module, tuple(names))


# The connection timeouts of Config, as flags; each help says what runs out.
TIMEOUT_FLAGS = {
    "preface-timeout": "how long a new connection may take to send the HTTP/2 preface",
    "idle-timeout": "how long a connection may stay open with no request in progress",
    "header-timeout": "how long a request's header block may take to arrive (slowloris)",
    "body-timeout": "how long an application waiting for request body may wait for more",
    "send-timeout": "how long response data may wait without progress (zero window, "
                    "client not reading)",
    "tls-handshake-timeout": "how long a TLS handshake may take",
}


def _count_of(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number of ``what`` >= 1."""
    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
            raise argparse.ArgumentTypeError(f"expected a number of {what} >= 1, not {text!r}")
        return int(text)
    return parse


_worker_count = _count_of("processes")
_thread_count = _count_of("threads")


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, not {text!r}")
    return value


def load_app(spec: AppSpec) -> ASGIApp:
    """Import ``spec.module`` (current directory first on :data:`sys.path`) and
    return the attribute ``spec`` names. Raises :exc:`CommandError` if the
    module is missing or raises while importing, or the attribute is missing
    or not callable."""
    cwd = os.getcwd()
    if not sys.path or os.path.abspath(sys.path[0] or os.curdir) != cwd:
        sys.path.insert(0, cwd)
    try:
        obj: object = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_package_of(exc.name, spec.module):
            raise CommandError(f"cannot import module {spec.module!r}: {exc}") from None
        raise CommandError(f"error while importing module {spec.module!r}: "
                           f"{_describe(exc)}") from None
    except Exception as exc:  # the user's module raised: say what and where
        raise CommandError(f"error while importing module {spec.module!r}: "
                           f"{_describe(exc)}") from None
    for index, name in enumerate(spec.attributes):
        owner = (f"module {spec.module!r}" if index == 0
                 else repr(f"{spec.module}:{'.'.join(spec.attributes[:index])}"))
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise CommandError(f"{owner} has no attribute {name!r}") from None
        except Exception as exc:
            raise CommandError(f"error while looking up {name!r} in {owner}: "
                               f"{_describe(exc)}") from None
    if not callable(obj):
        raise CommandError(f"{str(spec)!r} is not an ASGI application: "
                           f"{type(obj).__name__} object is not callable")
    return cast(ASGIApp, obj)


def _adapt(app: object, spec: AppSpec, args: argparse.Namespace) -> ASGIApp:
    """``app`` as an ASGI app: WSGI ones wrapped in :class:`WSGIApp`."""
    interface = detect_interface(app) if args.interface == "auto" else args.interface
    if interface is None:
        raise CommandError(f"cannot tell whether {str(spec)!r} is an ASGI or a WSGI "
                           f"application from its signature: pass --interface asgi or "
                           f"--interface wsgi")
    if interface == "wsgi":
        return WSGIApp(cast(WSGICallable, app), threads=args.threads or DEFAULT_THREADS,
                       multiprocess=args.workers > 1)
    if args.threads is not None:
        raise CommandError(f"--threads applies to WSGI applications; {str(spec)!r} is ASGI")
    return cast(ASGIApp, app)


def _interface_note(app: ASGIApp) -> str | None:
    if not isinstance(app, WSGIApp):
        return None
    return f"WSGI, {app.threads} thread{'' if app.threads == 1 else 's'}"


def _is_package_of(name: str, module: str) -> bool:
    """``name`` is ``module`` or one of the packages it is inside."""
    return module == name or module.startswith(name + ".")


def _describe(exc: BaseException) -> str:
    """``Type: message``, and for errors raised in a file, where (the innermost
    frame that is a real file; SyntaxError already names its place)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        return text
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if not frame.filename.startswith("<")]
    if frames:
        filename = frames[-1].filename
        if filename.startswith(os.getcwd() + os.sep):
            filename = os.path.relpath(filename)
        text += f" (at {filename}:{frames[-1].lineno})"
    return text


def load_tls(certfile: str, keyfile: str | None, *, http1: bool = True) -> ssl.SSLContext:
    """The server TLS context for ``certfile`` and ``keyfile`` (or the key in
    ``certfile``). Raises :exc:`CommandError` if a file cannot be read, lacks
    what it should hold, or the key does not match the certificate."""
    cert_pem = _read_pem(certfile, "certificate")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise CommandError(f"no PEM certificate found in {certfile!r}")
    key_source = certfile if keyfile is None else keyfile
    key_pem = cert_pem if keyfile is None else _read_pem(keyfile, "key")
    if not re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", key_pem):
        hint = " (pass the key with --keyfile)" if keyfile is None else ""
        raise CommandError(f"no PEM private key found in {key_source!r}{hint}")
    try:
        return server_ssl_context(certfile, keyfile, http1=http1)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        detail = re.sub(r" \(_ssl\.c:\d+\)$", "", str(exc))
        what = repr(certfile) if keyfile is None else f"{certfile!r} with key {keyfile!r}"
        raise CommandError(f"cannot load TLS certificate {what}: {detail}") from None


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(PEM_READ_LIMIT)
    except OSError as exc:
        raise CommandError(f"cannot read {what} file {path!r}: "
                           f"{exc.strerror or exc}") from None


@final
class _Announcer:
    """The ``task_status`` given to :func:`serve_listeners`: prints the one
    line saying where we serve, with the bound addresses (so port 0 shows
    the port the system picked)."""

    def __init__(self, what: str, *, tls: bool, http1: bool = True, workers: int = 1,
                 self_signed: SelfSigned | None = None, interface: str | None = None) -> None:
        self._what = what
        self._scheme = "https" if tls else "http"
        if http1:
            self._mode = ("h2 and HTTP/1.1 over TLS, ALPN" if tls
                          else "HTTP/1.1, and h2c with prior knowledge")
        else:
            self._mode = "h2 over TLS, ALPN" if tls else "h2c, prior knowledge"
        if workers > 1:
            self._mode += f", {workers} workers"
        if interface is not None:
            self._mode += f"; {interface}"
        self._self_signed = self_signed

    def started(self, value: list[Address] | None = None) -> None:
        addresses = value or []
        urls = ", ".join(f"{self._scheme}://{_host_port(host, port)}" for host, port in addresses)
        lines = [f"{PROG} serving {self._what} on {urls} ({self._mode})"]
        if self._self_signed is not None and addresses:
            host, port = addresses[0]
            url = f"https://{_host_port(self._self_signed.name_for(host), port)}/"
            lines += self._self_signed.instructions(url)
        print("\n".join(lines), flush=True)


async def _serve(app: ASGIApp, binds: Sequence[Bind], ssl_context: ssl.SSLContext | None,
                 config: Config, announcer: _Announcer) -> None:
    """Bind, serve until the first SIGINT/SIGTERM, then shut down gracefully.

    Raises :exc:`CommandError` if an address cannot be bound (the listeners
    already open are closed)."""
    # Installed before anything else so that a signal during startup is
    # also a graceful stop rather than KeyboardInterrupt or death by SIGTERM.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        listeners = await _bind_each(binds, _open_tcp_listeners, _close_listener)
        async with trio.open_nursery() as nursery:
            stop = trio.CancelScope()
            nursery.start_soon(_stop_on_signals, signals, stop, config.shutdown_timeout)
            with stop:
                # Cancelling serve_listeners is its graceful shutdown.
                await serve_listeners(app, listeners, ssl_context=ssl_context, config=config,
                                      task_status=announcer)
            nursery.cancel_scope.cancel()  # stopped: no more signals to wait for


async def _bind_each(binds: Sequence[Bind], open_one: Callable[[str, int], Awaitable[list[T]]],
                     close: Callable[[T], object]) -> list[T]:
    """``open_one(host, port)`` for each of ``binds``, concatenated. Raises
    :exc:`CommandError` if one fails (the ones already open are closed)."""
    opened: list[T] = []
    try:
        for bind in binds:
            try:
                opened += await open_one(bind.host, bind.port)
            except OSError as exc:
                raise CommandError(f"cannot listen on {bind}: {exc.strerror or exc}") from None
    except BaseException:
        for each in opened:
            close(each)
        raise
    return opened


async def _open_tcp_listeners(host: str, port: int) -> list[trio.SocketListener]:
    return await trio.open_tcp_listeners(port, host=host)


def _close_listener(listener: trio.SocketListener) -> None:
    listener.socket.close()


def _worker_timeout(args: argparse.Namespace) -> float:
    timeout: float | None = args.worker_timeout
    return WORKER_TIMEOUT if timeout is None else timeout


async def _supervise(binds: Sequence[Bind], workers: int,
                     command: Callable[[Sequence[Bind], int], list[str]],
                     announcer: _Announcer, shutdown_timeout: float,
                     worker_timeout: float) -> bool:
    """Reserve the addresses and run ``workers`` workers on them (each started
    as ``command(binds, channel_fd)``) until the first SIGINT/SIGTERM; returns
    :meth:`Supervisor.run`'s verdict. Raises :exc:`CommandError` if an address
    cannot be bound or a worker cannot start."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        reserved = await _bind_each(binds, reserve, socket.socket.close)
        try:
            addresses = [_address(sock.getsockname()) for sock in reserved]
            supervisor = Supervisor(
                functools.partial(command, [Bind(*each) for each in addresses]),
                workers, announce=functools.partial(announcer.started, addresses),
                shutdown_timeout=shutdown_timeout, worker_timeout=worker_timeout)
            return await supervisor.run(signals)
        except WorkerFailure as exc:
            raise CommandError(str(exc)) from None
        finally:
            for sock in reserved:
                sock.close()


def _worker_command(argv: Sequence[str], binds: Sequence[Bind], fd: int, *,
                    self_signed: SelfSigned | None) -> list[str]:
    """The command line of a worker that listens on ``binds`` (instead of
    ``--bind``) and has its channel on file descriptor ``fd``. The rest is this
    runner's own ``argv``, so that every option reaches the worker and is
    parsed as here; the internal options go first, so that a ``--`` in
    ``argv`` cannot make them positionals. With ``--self-signed``, every
    worker serves the certificate the runner made, ``self_signed``."""
    bound = [arg for bind in binds for arg in ("--_bound", str(bind))]
    made = [] if self_signed is None else ["--_certfile", self_signed.cert_file]
    return [sys.executable, "-m", "trio_h2", "--_worker", str(fd), *bound, *made, *argv]


def _work(args: argparse.Namespace) -> int:
    """Serve as a worker of a supervisor (``--_worker FD``): its errors go to
    the supervisor, on the channel, rather than to stderr."""
    enable_stack_dump()  # first, so that a hang while importing the app shows too
    channel = socket.socket(fileno=args.worker_channel)
    # Processes the app starts must not hold it open past this one's exit.
    channel.set_inheritable(False)
    if args.self_signed:  # the supervisor made it (see _worker_command)
        assert args.worker_certfile is not None
        args.certfile = args.worker_certfile
    with channel:
        try:
            app, ssl_context, config = _load(args)
            _run(functools.partial(_serve_as_worker, app, args.worker_bound, channel,
                                   ssl_context, config, _worker_timeout(args)))
        except CommandError as exc:
            report_failure(channel, str(exc))
            return exc.status
    return EXIT_OK


async def _serve_as_worker(app: ASGIApp, binds: Sequence[Bind], channel: socket.socket,
                           ssl_context: ssl.SSLContext | None, config: Config,
                           worker_timeout: float) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        listeners = await _bind_each(binds, open_reuseport_listeners, _close_listener)
        await serve_worker(app, listeners, channel, signals, ssl_context=ssl_context,
                           config=config, worker_timeout=worker_timeout)


async def _stop_on_signals(signals: AsyncIterator[int], stop: trio.CancelScope,
                           shutdown_timeout: float) -> None:
    """Cancel ``stop`` at the first signal; exit the process at the second."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if not stop.cancel_called:
            log.info("%s received: shutting down; in-flight streams get up to %gs "
                     "(send it again to exit now)", name, shutdown_timeout)
            stop.cancel()
        else:
            # The graceful shutdown runs shielded under its own deadline, so
            # only leaving the process cuts it short.
            log.warning("%s received again: exiting without waiting for in-flight streams",
                        name)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_FAILURE)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, unwrapping (nested) exception groups.

    Duck-typed on ``exceptions`` because ``BaseExceptionGroup`` is not a
    builtin on Python 3.10."""
    children = getattr(exc, "exceptions", None)
    if isinstance(children, tuple):
        return [leaf for child in children for leaf in _leaves(child)]
    return [exc]


def _address(sockaddr: object) -> Address:
    assert isinstance(sockaddr, tuple)
    return (str(sockaddr[0]), int(sockaddr[1]))


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

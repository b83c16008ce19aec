"""Running what the options say: one process, or a supervisor and its workers.

The runner binds every ``--bind`` address and serves them all with one
:func:`serve_listeners` call, in one process, until SIGINT or SIGTERM. The
first such signal shuts down gracefully (listeners close, GOAWAY, in-flight
streams get up to ``--shutdown-timeout`` seconds) and the exit status is 0;
a second one exits at once with status 1.

With ``--workers N`` (N > 1) this process is a supervisor instead: it checks
the same inputs, reserves the addresses and runs N worker processes, each a
``python -m trio_h2`` with the same arguments plus internal ones (where to
listen, and its channel to the supervisor). :mod:`trio_h2._io.workers` has the
mechanics and the policy; the exit statuses are the same.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TextIO, TypeVar, cast, final

import trio

from .._apps.asgi import ACCESS_LOG, ASGIApp
from .._apps.demo import DemoApp
from .._apps.lifespan import LifespanFailure
from .._apps.wsgi import DEFAULT_THREADS, WSGIApp, WSGICallable, detect_interface
from .._core.exchange import Address
from .._io.reload import SourceWatcher, check_available
from .._io.server import _address, serve_listeners
from .._io.workers import (
    REUSEPORT_SPREADS_CONNECTIONS,
    Supervisor,
    WorkerFailure,
    enable_stack_dump,
    report_failure,
    serve_worker,
)
from ._binds import (
    TCPBind,
    UnixBind,
    Unlinker,
    open_for_workers,
    open_in_worker,
    open_listeners,
)
from ._errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, PROG, CommandError, read_user_file
from ._loading import load_app, load_tls
from ._options import VERIFY_MODES, Options, loads_toml, parse_options

if TYPE_CHECKING:
    # trustme and cryptography take about 15 MiB of every process that
    # imports them: only --self-signed runs load them (make_self_signed).
    from .._io.selfsigned import SelfSigned

log = logging.getLogger("trio_h2")

__all__ = ["main"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# With --workers, several processes write to the same log: say which.
LOG_FORMAT_WORKERS = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server as the command line ``argv`` (default ``sys.argv[1:]``) says.

    Returns the exit status; ``--help`` and ``--version`` print and return 0,
    Ctrl+C before serving starts returns 130. Errors in the arguments, the
    config file, the app or the environment are printed as one line on
    stderr, ``trio_h2: error: ...``, not raised: status 2 for malformed
    input, 1 for input that could not be used. Anything else is a bug and
    propagates.
    """
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except CommandError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        # Ctrl+C before the signal handlers are installed (while importing
        # the app, say) or after they are gone: nothing is being served.
        return 128 + signal.SIGINT


def _main(argv: list[str]) -> int:
    try:
        options = parse_options(argv)
    except SystemExit as exc:  # --help or --version: argparse printed and exits
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    _check(options)
    worker = options.worker_channel is not None
    _configure_logging(options, several=worker or options.workers > 1 or options.reload)
    if worker:
        return _work(options)

    with contextlib.ExitStack() as stack:
        self_signed = None
        if options.self_signed:
            # Private (0700), and removed when the runner exits; workers
            # load the certificate from it too.
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="trio_h2-"))
            hosts = [bind.host for bind in options.bind if isinstance(bind, TCPBind)]
            from .._io.selfsigned import make_self_signed

            try:
                self_signed = make_self_signed(directory, hosts)
            except (OSError, ValueError) as exc:  # a --bind host trustme cannot name
                raise CommandError(f"--self-signed cannot make a certificate: "
                                   f"{type(exc).__name__}: {exc}") from None
        app, ssl_context = _load(options, None if self_signed is None else self_signed.cert_file)
        notes = [note for note in (_interface_note(app), _reload_note(options)) if note]
        announcer = _Announcer("demo app" if options.app is None else str(options.app),
                               tls=ssl_context is not None, http1=options.config.http1,
                               workers=options.workers, self_signed=self_signed,
                               interface="; ".join(notes) or None)
        unlinker = Unlinker()
        stack.callback(unlinker.unlink_all)
        if options.workers > 1 or options.reload:
            command = functools.partial(_worker_command, argv, self_signed=self_signed)
            clean = _run(functools.partial(_supervise, options, command, announcer, unlinker))
            return EXIT_OK if clean else EXIT_FAILURE
        _run(functools.partial(_serve, app, options, ssl_context, announcer, unlinker))
        return EXIT_OK


def _check(options: Options) -> None:
    """Combinations of options that cannot work (status 2, one line)."""
    tls = options.certfile is not None or options.self_signed
    problems = [
        (options.self_signed and (options.certfile or options.keyfile) is not None,
         "--self-signed makes its own certificate: give either it or --certfile/--keyfile, "
         "not both"),
        (options.keyfile is not None and options.certfile is None,
         "--keyfile needs --certfile (see --help)"),
        (options.keyfile_password is not None and options.certfile is None,
         "--keyfile-password needs --certfile (and --keyfile if the key is apart)"),
        (not tls and any(name in options.given for name in ("ca_certs", "verify_mode",
                                                            "ciphers")),
         "--ca-certs, --verify-mode and --ciphers need TLS (--certfile or --self-signed)"),
        (options.ca_certs is not None and options.verify_mode == "none",
         "--ca-certs needs --verify-mode optional or required (with none, no client "
         "certificate is asked for)"),
        (options.ca_certs is None and options.verify_mode != "none",
         f"--verify-mode {options.verify_mode} needs --ca-certs (the CAs that client "
         f"certificates must chain to)"),
        ("worker_timeout" in options.given and options.workers == 1 and not options.reload,
         "--worker-timeout needs --workers N with N > 1 or --reload (without workers there "
         "is no supervisor to watch them)"),
        (not options.reload and any(name in options.given for name in ("reload_dir",
                                                                       "reload_include")),
         "--reload-dir and --reload-include need --reload"),
        (options.max_requests is not None and options.workers == 1,
         "--max-requests needs --workers N with N > 1: a worker is replaced while the "
         "others serve; one process would leave nothing accepting connections while it "
         "restarts"),
        ("max_requests_jitter" in options.given and options.max_requests is None,
         "--max-requests-jitter needs --max-requests"),
        ("unix_socket_mode" in options.given
         and not any(isinstance(bind, UnixBind) for bind in options.bind),
         "--unix-socket-mode needs a --bind unix:PATH"),
    ]
    for problem, message in problems:
        if problem:
            raise CommandError(message, EXIT_USAGE)
    if ((options.workers > 1 or options.reload)
            and any(isinstance(bind, TCPBind) for bind in options.bind)
            and not REUSEPORT_SPREADS_CONNECTIONS):
        raise CommandError(f"--workers and --reload with a TCP --bind need SO_REUSEPORT as "
                           f"Linux has it (connections spread over the processes); not "
                           f"available on {sys.platform}")
    if options.reload:
        try:
            check_available()
        except ImportError as exc:
            raise CommandError(str(exc)) from None
        for directory in options.reload_dir:
            if not os.path.isdir(directory):
                raise CommandError(f"--reload-dir {directory!r} is not a directory")


def _configure_logging(options: Options, *, several: bool) -> None:
    """The log goes to ``--error-logfile`` (stderr by default) in our format,
    and the access log (the ``trio_h2.access`` logger) to ``--access-logfile``
    (stdout for ``-``) as it is, or nowhere; then ``--log-config`` applies,
    then ``--log-level`` (default ``info`` unless a ``--log-config`` is
    given), which the access log does not follow."""
    handler = _log_handler("--error-logfile", options.error_logfile, sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT_WORKERS if several else LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    access = logging.getLogger(ACCESS_LOG.name)
    if options.access_logfile is None:
        # Off, so that no exchange pays for it; a --log-config may turn it on.
        access.setLevel(logging.WARNING)
    else:
        # The line is the whole record: the format has its own time (%(t)s).
        access.addHandler(_log_handler("--access-logfile", options.access_logfile, sys.stdout))
        access.setLevel(logging.INFO)
        access.propagate = False  # not into the error log too
    if options.log_config is not None:
        # Imported only here: it costs every worker's start-up 20 ms.
        from logging import config as logging_config

        dict_config = _read_log_config(options.log_config)
        # trio_h2's logger exists already: the default (True) would silence it.
        dict_config.setdefault("disable_existing_loggers", False)
        try:
            logging_config.dictConfig(dict_config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise CommandError(f"--log-config {options.log_config!r}: {exc}",
                               EXIT_USAGE) from None
    if options.log_level is not None or options.log_config is None:
        log.setLevel((options.log_level or "info").upper())


def _log_handler(flag: str, path: str, standard: TextIO) -> logging.Handler:
    """A handler writing to ``path`` (appending), or to ``standard`` for ``-``."""
    if path == "-":
        return logging.StreamHandler(standard)
    try:
        return logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot open {flag} {path!r}: {exc.strerror or exc}") from None


def _read_log_config(path: str) -> dict[str, object]:
    """A :func:`logging.config.dictConfig` dictionary from a JSON (``.json``) or
    TOML (``.toml``) file; Hypercorn's ``json:``/``toml:`` prefixes work too."""
    kind, colon, rest = path.partition(":")
    if colon and kind in ("json", "toml"):
        path = rest
    else:
        kind = os.path.splitext(path)[1].lstrip(".").lower()
    if kind not in ("json", "toml"):
        raise CommandError(f"--log-config {path!r}: expected a .json or .toml file "
                           f"(or a json: or toml: prefix)", EXIT_USAGE)
    data = read_user_file(path, "--log-config")
    try:
        loaded: object = json.loads(data) if kind == "json" else loads_toml(data)
    except ValueError as exc:  # JSON or TOML decode errors, UnicodeDecodeError
        raise CommandError(f"--log-config {path!r} is not valid {kind.upper()}: {exc}",
                           EXIT_USAGE) from None
    if not isinstance(loaded, dict) or loaded.get("version") != 1:
        raise CommandError(f"--log-config {path!r}: expected a dictConfig table with "
                           f"version = 1", EXIT_USAGE)
    return loaded


def _load(options: Options, certfile: str | None) -> tuple[ASGIApp, ssl.SSLContext | None]:
    """The app and the TLS context that ``options`` describe (``certfile``
    instead of ``--certfile``: the one --self-signed made)."""
    app = DemoApp() if options.app is None else _adapt(load_app(options.app), options)
    certfile = certfile or options.certfile
    ssl_context = None if certfile is None else load_tls(
        certfile, options.keyfile, http1=options.config.http1,
        password=options.keyfile_password, ca_certs=options.ca_certs,
        verify_mode=VERIFY_MODES[options.verify_mode], ciphers=options.ciphers)
    return app, ssl_context


def _adapt(app: object, options: Options) -> ASGIApp:
    """``app`` as an ASGI app: WSGI ones wrapped in :class:`WSGIApp`."""
    spec = str(options.app)
    interface = detect_interface(app) if options.interface == "auto" else options.interface
    if interface is None:
        raise CommandError(f"cannot tell whether {spec!r} is an ASGI or a WSGI application "
                           f"from its signature: pass --interface asgi or --interface wsgi")
    if interface == "wsgi":
        return WSGIApp(cast(WSGICallable, app), threads=options.threads or DEFAULT_THREADS,
                       multiprocess=options.workers > 1)
    if options.threads is not None:
        raise CommandError(f"--threads applies to WSGI applications; {spec!r} is ASGI")
    return cast(ASGIApp, app)


def _interface_note(app: ASGIApp) -> str | None:
    if not isinstance(app, WSGIApp):
        return None
    return f"WSGI, {app.threads} thread{'' if app.threads == 1 else 's'}"


def _watcher(options: Options) -> SourceWatcher | None:
    if not options.reload:
        return None
    return SourceWatcher(options.reload_dir, options.reload_include)


def _reload_note(options: Options) -> str | None:
    watcher = _watcher(options)
    return None if watcher is None else watcher.describe()


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
        urls = ", ".join(self._url(address) for address in addresses)
        lines = [f"{PROG} serving {self._what} on {urls} ({self._mode})"]
        tcp = [(host, port) for host, port in addresses if port is not None]
        if self._self_signed is not None and tcp:
            host, port = tcp[0]
            url = f"https://{TCPBind(self._self_signed.name_for(host), port)}/"
            lines += self._self_signed.instructions(url)
        print("\n".join(lines), flush=True)

    def _url(self, address: Address) -> str:
        host, port = address
        if port is None:  # a Unix socket: the scheme is in the mode
            return f"unix:{host}"
        return f"{self._scheme}://{TCPBind(host, port)}"


async def _serve(app: ASGIApp, options: Options, ssl_context: ssl.SSLContext | None,
                 announcer: _Announcer, unlinker: Unlinker) -> None:
    """Bind, serve until the first SIGINT/SIGTERM, then shut down gracefully.

    Raises :exc:`CommandError` if an address cannot be bound (the listeners
    already open are closed)."""
    config = options.config
    # Installed before anything else so that a signal during startup is
    # also a graceful stop rather than KeyboardInterrupt or death by SIGTERM.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        listeners = await open_listeners(options.bind, backlog=options.backlog,
                                         unix_mode=options.unix_socket_mode, unlinker=unlinker)
        async with trio.open_nursery() as nursery:
            stop = trio.CancelScope()
            nursery.start_soon(_stop_on_signals, signals, stop, config.shutdown_timeout)
            with stop:
                # Cancelling serve_listeners is its graceful shutdown.
                await serve_listeners(app, listeners, ssl_context=ssl_context, config=config,
                                      task_status=announcer)
            nursery.cancel_scope.cancel()  # stopped: no more signals to wait for


async def _supervise(options: Options, command: Callable[[Sequence[TCPBind], Sequence[int], int],
                                                         list[str]],
                     announcer: _Announcer, unlinker: Unlinker) -> bool:
    """Reserve the addresses and run the workers on them (each started as
    ``command(tcp_binds, shared_fds, channel_fd)``) until the first
    SIGINT/SIGTERM; returns :meth:`Supervisor.run`'s verdict. Raises
    :exc:`CommandError` if an address cannot be bound or a worker cannot
    start."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        sockets = await open_for_workers(options.bind, backlog=options.backlog,
                                         unix_mode=options.unix_socket_mode, unlinker=unlinker)
        watcher = _watcher(options)
        try:
            addresses = [_address(sock.getsockname()) for sock in sockets]
            # Reserved TCP addresses do not listen; Unix and inherited sockets do,
            # and are passed to every worker.
            shared = [sock.fileno() for sock in sockets
                      if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)]
            tcp = [TCPBind(host, port) for sock, (host, port) in zip(sockets, addresses,
                                                                     strict=True)
                   if sock.fileno() not in shared and port is not None]
            supervisor = Supervisor(
                functools.partial(command, tcp, shared), options.workers,
                announce=functools.partial(announcer.started, addresses),
                shutdown_timeout=options.config.shutdown_timeout,
                worker_timeout=options.worker_timeout, pass_fds=shared,
                watch=None if watcher is None else watcher.run)
            return await supervisor.run(signals)
        except WorkerFailure as exc:
            raise CommandError(str(exc)) from None
        finally:
            for sock in sockets:
                sock.close()


def _worker_command(argv: Sequence[str], tcp: Sequence[TCPBind], fds: Sequence[int],
                    channel: int, *, self_signed: SelfSigned | None) -> list[str]:
    """The command line of a worker that listens on ``tcp`` (its own
    SO_REUSEPORT sockets) and the inherited listening sockets ``fds``
    (instead of ``--bind``), and has its channel on file descriptor
    ``channel``. The rest is this runner's own ``argv``, so that every option
    (and the config file) reaches the worker and is parsed as here; the
    internal options go first, so that a ``--`` in ``argv`` cannot make them
    positionals. With ``--self-signed``, every worker serves the certificate
    the runner made, ``self_signed``."""
    bound = [arg for bind in tcp for arg in ("--_bound", str(bind))]
    shared = [arg for fd in fds for arg in ("--_fd", str(fd))]
    made = [] if self_signed is None else ["--_certfile", self_signed.cert_file]
    return [sys.executable, "-m", "trio_h2", "--_worker", str(channel), *bound, *shared,
            *made, *argv]


def _work(options: Options) -> int:
    """Serve as a worker of a supervisor (``--_worker FD``): its errors go to
    the supervisor, on the channel, rather than to stderr."""
    enable_stack_dump()  # first, so that a hang while importing the app shows too
    assert options.worker_channel is not None
    channel = socket.socket(fileno=options.worker_channel)
    # Processes the app starts must not hold it open past this one's exit.
    channel.set_inheritable(False)
    max_requests = options.max_requests
    if max_requests is not None:  # gunicorn's jitter: randint(0, jitter), inclusive
        max_requests += random.randint(0, options.max_requests_jitter)
    with channel:
        try:
            app, ssl_context = _load(options, options.worker_certfile)
            _run(functools.partial(_serve_as_worker, app, options, channel, ssl_context,
                                   max_requests))
        except CommandError as exc:
            report_failure(channel, str(exc))
            return exc.status
    return EXIT_OK


async def _serve_as_worker(app: ASGIApp, options: Options, channel: socket.socket,
                           ssl_context: ssl.SSLContext | None,
                           max_requests: int | None) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        listeners = await open_in_worker(options.worker_bound, options.worker_fds,
                                         backlog=options.backlog)
        await serve_worker(app, listeners, channel, signals, ssl_context=ssl_context,
                           config=options.config,
                           worker_timeout=options.worker_timeout,
                           max_requests=max_requests)


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

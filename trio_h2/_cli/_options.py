"""The runner's options: the command line, the TOML config file, and how they merge.

Every option has one name, used twice: ``--max-concurrent-streams`` on the
command line is ``max_concurrent_streams`` in the file. The options are the
fields of :class:`~trio_h2.Config`, generated from the dataclass (type,
default, and help from each field's docstring), plus the runner's own
(:data:`RUNNER_OPTIONS`: where to listen, TLS files, workers, logging).

A value comes from the command line if given there, else from the file
(``-c``/``--config``) if given there, else the default. A value that does
not parse or is out of range, and a key the file should not have, is one
line naming the flag or key and the value, exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import re
import ssl
import sys
import textwrap
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast, final

from .._apps.wsgi import DEFAULT_THREADS
from .._config import Config
from .._core.limits import Budget
from .._io.reload import DEFAULT_PATTERNS, RELOAD_EXTRA
from .._io.workers import BACKLOG, WORKER_TIMEOUT
from ._binds import DEFAULT_UNIX_MODE, Bind, TCPBind
from ._errors import EXIT_USAGE, PROG, CommandError, read_user_file
from ._values import (
    BINDS,
    BUDGET,
    FILE,
    MODE,
    Kind,
    choice,
    integer,
    number,
    switch,
    text,
    texts,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["DEFAULT_BIND", "LOG_LEVELS", "OPTIONS", "VERIFY_MODES", "AppSpec", "Option",
           "Options", "loads_toml", "parse_app_spec", "parse_options"]

DEFAULT_BIND = TCPBind("127.0.0.1", 8000)
LOG_LEVELS = ("debug", "info", "warning", "error")
VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                "required": ssl.CERT_REQUIRED}


@final
@dataclass(frozen=True, slots=True)
class AppSpec:
    """``MODULE:APP``: a module to import and an attribute path inside it."""

    module: str
    attributes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.module}:{'.'.join(self.attributes)}"


def parse_app_spec(text: str) -> AppSpec:
    """``MODULE:APP`` as an :class:`AppSpec`; raises :exc:`ValueError`."""
    module, colon, attributes = text.partition(":")
    names = attributes.split(".")
    if (not colon or not all(part.isidentifier() for part in module.split("."))
            or not all(name.isidentifier() for name in names)):
        raise ValueError(
            f"invalid application {text!r}: expected MODULE:APP, as in 'myproject.asgi:app'")
    return AppSpec(module, tuple(names))


# -- the options ------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Option:
    """One option: ``--flag`` on the command line, ``name`` in the config file."""

    name: str
    kind: Kind
    default: object
    help: str
    short: str | None = None
    config_field: bool = False  # a field of Config, checked by building one
    repeat: bool = False  # --bind: each use adds one
    alias: str | None = None  # a second long flag: the name gunicorn and Hypercorn use

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _config_options() -> list[Option]:
    """An :class:`Option` for every :class:`Config` field, from its type. The
    help is read from the field docstrings only when help is shown (reading
    the source costs a worker's start-up 50 ms): see :func:`config_help`."""
    hints = typing.get_type_hints(Config, {"Budget": Budget, "Literal": typing.Literal})
    options = []
    for each in dataclasses.fields(Config):
        hint = hints[each.name]
        kind: Kind
        if hint is bool:
            kind = switch()
        elif hint is int:
            kind = integer(-(2**63), 2**63 - 1)  # Config says the real range
        elif hint is float:
            kind = number()
        elif hint is str:
            kind = text("TEXT")
        elif hint is Budget:
            kind = BUDGET
        elif typing.get_origin(hint) is typing.Literal:
            kind = choice([str(arg) for arg in typing.get_args(hint)])
        else:  # pragma: no cover - a new field type needs a Kind here
            raise TypeError(f"no command-line form for Config.{each.name}: {hint!r}")
        options.append(Option(each.name, kind, each.default, "", config_field=True,
                              alias=_CONFIG_ALIASES.get(each.name)))
    return options


# gunicorn's and Hypercorn's flag for it (their config key is the field's name).
_CONFIG_ALIASES = {"access_log_format": "--access-logformat"}


def config_help(option: Option) -> str:
    """The help of a Config field's option: its docstring's first paragraph."""
    return _summary(field_docs(Config)[option.name])


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of the dataclass ``cls`` (read from its
    source; empty where there is none or the source is not available)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {each.name: "" for each in dataclasses.fields(cls)}
    docs: dict[str, str] = {}
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    for statement, following in zip(body, [*body[1:], None], strict=True):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return {each.name: docs.get(each.name, "") for each in dataclasses.fields(cls)}


def _summary(doc: str) -> str:
    """The first paragraph of a field docstring, as plain one-line text."""
    paragraph = doc.split("\n\n")[0]
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`<]+?)(?: <[^>]*>)?`", r"\1", paragraph)
    return " ".join(text.replace("``", "").split())


RUNNER_OPTIONS = [
    Option("bind", BINDS, [DEFAULT_BIND], short="-b", repeat=True,
           help="address to listen on: HOST:PORT, [IPV6]:PORT, unix:PATH (a Unix socket; a "
                "stale socket file there is removed) or fd://N (an inherited listening "
                "socket, e.g. fd://3 under systemd socket activation); repeat for several; "
                f"port 0 picks a free port (default {DEFAULT_BIND})"),
    Option("workers", integer(1, 1024, "a number of processes"), 1, short="-w",
           help="serve with N processes under this one, which restarts a worker that exits "
                "and passes signals on; TCP addresses are shared with SO_REUSEPORT (Linux "
                "only), Unix and fd:// sockets by passing the socket (default 1: serve in "
                "this process)"),
    Option("worker_timeout", number(positive=True), WORKER_TIMEOUT,
           help=f"with --workers: a worker whose event loop sends no heartbeat for this long "
                f"is taken for hung; its stack is dumped to stderr and it is killed and "
                f"replaced (default {WORKER_TIMEOUT:g}, as gunicorn's --timeout)"),
    Option("reload", switch(), False,
           help=f"restart the worker(s) when source files change, for development: "
                f"each worker is stopped gracefully and a new one imports the code "
                f"afresh; a change that does not import is logged and waits for the next "
                f"change. Needs {RELOAD_EXTRA} (watchfiles)"),
    Option("reload_dir", texts("DIR", "a directory"), ["."], repeat=True,
           help="with --reload: a directory to watch, recursively; repeat for several "
                "(default %(default)s, the current directory)"),
    Option("reload_include", texts("PATTERN", "a file name pattern"),
           list(DEFAULT_PATTERNS), repeat=True,
           help="with --reload: the file names whose changes count, a glob pattern such as "
                "'*.toml'; repeat for several (default %(default)s)"),
    Option("interface", choice(["auto", "asgi", "wsgi"]), "auto",
           help="the interface MODULE:APP serves; auto tells an ASGI app (a coroutine "
                "function) from a WSGI one (environ, start_response) by its signature "
                "(default %(default)s)"),
    Option("threads", integer(1, 10_000, "a number of threads"), None,
           help=f"WSGI apps only: worker threads running requests at once "
                f"(default {DEFAULT_THREADS}, as trio's thread limiter)"),
    Option("max_requests", integer(1, 2**63 - 1, "a number of requests"), None,
           help="with --workers: a worker that has received this many requests shuts down "
                "gracefully and is replaced, as gunicorn and Hypercorn do (against leaks in "
                "the app; default: never)"),
    Option("max_requests_jitter", integer(0, 2**63 - 1, "a number of requests"), 0,
           help="with --max-requests: each worker's limit is raised by a random number "
                "from 0 to this, so that workers are not all replaced at once (default 0)"),
    Option("backlog", integer(1, 65535, "a number of connections"), BACKLOG,
           help="the listen queue: connections the kernel accepts before we do; Linux caps "
                "it at net.core.somaxconn (default %(default)s, as trio: as long as the "
                "kernel allows, so bursts are queued rather than dropped)"),
    Option("unix_socket_mode", MODE, DEFAULT_UNIX_MODE,
           help="file mode of unix: sockets, in octal; connecting needs write permission "
                "(default 660: the owner and its group, where a proxy in front usually is)"),
    Option("certfile", FILE, None,
           help="PEM certificate chain; enables TLS. Without --keyfile it must hold the "
                "private key too"),
    Option("keyfile", FILE, None, help="PEM private key for --certfile"),
    Option("keyfile_password", text("PASSWORD"), None,
           help="the password of an encrypted --keyfile"),
    Option("ca_certs", FILE, None,
           help="PEM CA certificates that client certificates must chain to (with "
                "--verify-mode optional or required: mutual TLS)"),
    Option("verify_mode", choice(list(VERIFY_MODES), prefix="cert_"), "none",
           help="client certificates: none (not asked for), optional (checked if sent) or "
                "required (a client without a valid one fails the handshake); Hypercorn's "
                "CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED too; default %(default)s"),
    Option("ciphers", text("CIPHERS"), None,
           help="OpenSSL cipher string for TLS 1.2, e.g. ECDHE+AESGCM; only the suites "
                "RFC 9113 allows for HTTP/2 are kept (TLS 1.3 suites are not affected). "
                "Default: every suite RFC 9113 allows"),
    Option("self_signed", switch(), False,
           help="serve TLS with a certificate for localhost (and the --bind hosts) from a "
                "CA made for this run; prints where the CA certificate is and how to make "
                "curl or Chromium trust it. For trying HTTP/2 in a browser, not for "
                "production"),
    Option("log_level", choice(LOG_LEVELS), None,
           help="level of the trio_h2 logger (default info, or what --log-config says)"),
    Option("log_config", FILE, None,
           help="a logging.config.dictConfig file, JSON (.json) or TOML (.toml), applied "
                "after the defaults"),
    Option("error_logfile", FILE, "-",
           help="where the log goes: a file (appended to) or - for stderr (default -)"),
    Option("access_logfile", FILE, None,
           help="write the access log, one line per request or WebSocket once it has ended "
                "(in --access-log-format), to this file (appended to), or - for stdout, as "
                "gunicorn and Hypercorn do. It is the trio_h2.access logger at INFO, which a "
                "--log-config can route instead (default: no access log)"),
]

OPTIONS = [*RUNNER_OPTIONS, *_config_options()]
_BY_NAME = {option.name: option for option in OPTIONS}


@final
@dataclass(frozen=True, kw_only=True)
class Options:
    """What the command line and the config file asked for, merged and checked."""

    app: AppSpec | None
    config_file: str | None
    config: Config
    bind: tuple[Bind, ...]
    workers: int
    worker_timeout: float
    reload: bool
    reload_dir: tuple[str, ...]
    reload_include: tuple[str, ...]
    interface: str
    threads: int | None
    max_requests: int | None
    max_requests_jitter: int
    backlog: int
    unix_socket_mode: int
    certfile: str | None
    keyfile: str | None
    keyfile_password: str | None
    ca_certs: str | None
    verify_mode: str
    ciphers: str | None
    self_signed: bool
    log_level: str | None
    log_config: str | None
    error_logfile: str
    access_logfile: str | None
    # What a supervisor tells its worker (see _runner._worker_command).
    worker_channel: int | None = None
    worker_bound: tuple[TCPBind, ...] = ()
    worker_fds: tuple[int, ...] = ()
    worker_certfile: str | None = None
    given: frozenset[str] = field(default_factory=frozenset)
    """Names of the options given on the command line or in the file."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block plus error line.
        raise CommandError(f"{message} (see --help)", EXIT_USAGE)


def _argument_type(option: Option) -> Callable[[str], object]:
    def convert(text: str) -> object:
        try:
            value = option.kind.from_text(text)
            if option.config_field:
                _check_field(option.name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    return convert


def _check_field(name: str, value: object) -> None:
    """Raise :exc:`ValueError` with Config's reason if ``value`` is not valid
    for the field ``name`` (every field is validated on its own)."""
    try:
        Config().replace(**{name: value})
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix(f"{name} ")) from None


def parser(*, full_help: bool = True) -> argparse.ArgumentParser:
    """The command line's parser. No option has a default here (they are
    absent from the namespace unless given), so the config file can fill in
    what the command line leaves out. Without ``full_help``, Config fields'
    options have no help text (it is only needed to show ``--help``)."""
    from .. import __version__

    result = _Parser(
        prog=PROG, argument_default=argparse.SUPPRESS,
        description="Serve an ASGI 3 application over HTTP/2 and HTTP/1.1 with trio "
                    "(python -m trio_h2, or trio-h2). Without MODULE:APP, serves a demo app.",
        epilog="Every option can also be set in the --config file, under its name with "
               "underscores (max_concurrent_streams = 200); the command line wins. Plain "
               "TCP speaks HTTP/1.1, and h2c to clients that open with the HTTP/2 preface; "
               "with --certfile or --self-signed, TLS with ALPN h2 or http/1.1. SIGINT or "
               "SIGTERM shuts down gracefully (exit status 0); a second one exits at once "
               "(status 1). Errors: status 2 for a malformed command line or config file, "
               "1 for anything that could not be used or bound.",
    )
    result.add_argument(
        "app", nargs="?", type=_app_argument, metavar="MODULE:APP", default=None,
        help="the ASGI application, e.g. 'myproject.asgi:app' or 'pkg.mod:obj.app'; "
             "MODULE is imported with the current directory first on sys.path")
    result.add_argument("-c", "--config", dest="config_file", metavar="FILE.toml",
                        help="a TOML file setting any of the options below")
    runner = result.add_argument_group("runner")
    server = result.add_argument_group("server (trio_h2.Config fields)")
    for option in OPTIONS:
        group = server if option.config_field else runner
        flags = [*filter(None, [option.short]), option.flag, *filter(None, [option.alias])]
        help_text = option.help.replace("%(default)s", _show(option.default))
        if option.config_field:
            help_text = (config_help(option) if full_help else "")
            help_text += f" (default {_show(option.default)})"
        help_text = help_text.replace("%", "%%")  # argparse %-formats help
        if option.kind.flag:
            group.add_argument(*flags, dest=option.name, action=argparse.BooleanOptionalAction,
                               help=help_text)
        else:
            group.add_argument(*flags, dest=option.name, type=_argument_type(option),
                               metavar=option.kind.metavar,
                               action="append" if option.repeat else "store", help=help_text)
    # Internal: what the supervisor tells a worker (see _runner._worker_command).
    result.add_argument("--_worker", dest="worker_channel", type=int, help=argparse.SUPPRESS)
    result.add_argument("--_bound", dest="worker_bound", action="append",
                        type=_argument_type(_BY_NAME["bind"]), help=argparse.SUPPRESS)
    result.add_argument("--_fd", dest="worker_fds", action="append", type=int,
                        help=argparse.SUPPRESS)
    result.add_argument("--_certfile", dest="worker_certfile", help=argparse.SUPPRESS)
    result.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return result


def _show(value: object) -> str:
    if isinstance(value, Budget):
        return f"{value.burst}/{value.per_second:.15g}"
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, str):
        return repr(value) if value == "" else value
    return str(value).lower() if isinstance(value, bool) else str(value)


def _app_argument(text: str) -> AppSpec:
    try:
        return parse_app_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_options(argv: Sequence[str]) -> Options:
    """The options ``argv`` and its config file ask for. Raises
    :exc:`CommandError` for anything malformed; :exc:`SystemExit` for
    ``--help`` and ``--version`` (argparse printed them)."""
    # argparse takes any prefix of --help for it.
    full_help = any(arg == "-h" or (arg.startswith("--h") and "--help".startswith(arg))
                    for arg in argv)
    namespace = vars(parser(full_help=full_help).parse_args(argv))
    config_file = namespace.pop("config_file", None)
    from_file = {} if config_file is None else read_config_file(config_file)
    values: dict[str, object] = {}
    for option in OPTIONS:
        if option.name in namespace:
            value = namespace.pop(option.name)
            if option.repeat:  # each --bind gave a list (of one)
                value = [item for chunk in cast(list[list[object]], value) for item in chunk]
            values[option.name] = value
        elif option.name in from_file:
            values[option.name] = from_file[option.name]
    given = frozenset(values)
    config = Config().replace(**{option.name: values.pop(option.name) for option in OPTIONS
                                 if option.config_field and option.name in values})
    # Any: each value was made by its option's Kind, which checked its type.
    merged: dict[str, Any] = {option.name: option.default for option in RUNNER_OPTIONS}
    merged.update(values)
    for name in ("bind", "reload_dir", "reload_include"):
        merged[name] = tuple(merged[name])
    for internal in ("worker_bound", "worker_fds"):
        merged[internal] = tuple(bind for binds in namespace.pop(internal, [])
                                 for bind in (binds if isinstance(binds, list) else [binds]))
    return Options(app=namespace.pop("app", None), config_file=config_file, config=config,
                   given=given, **merged, **namespace)


def read_config_file(path: str) -> dict[str, object]:
    """The options a TOML file sets, each converted and checked. Raises
    :exc:`CommandError` (status 1 if it cannot be read, 2 if it is not TOML,
    has a key that is not an option, or a bad value)."""
    data = read_user_file(path, "config file")
    try:
        table = loads_toml(data)
    except ValueError as exc:
        raise CommandError(f"config file {path!r} is not valid TOML: {exc}", EXIT_USAGE) from None
    values: dict[str, object] = {}
    for key, raw in table.items():
        option = _BY_NAME.get(key)
        if option is None:
            hint = (f" (did you mean {key.replace('-', '_')!r}?)"
                    if key.replace("-", "_") in _BY_NAME else "")
            raise CommandError(f"config file {path!r}: unknown key {key!r}{hint}", EXIT_USAGE)
        try:
            value = option.kind.from_toml(raw)
            if option.config_field:
                _check_field(option.name, value)
        except ValueError as exc:
            raise CommandError(f"config file {path!r}: {key} = {_toml_repr(raw)}: {exc}",
                               EXIT_USAGE) from None
        values[key] = value
    return values


def loads_toml(data: bytes) -> dict[str, object]:
    """``data`` as TOML; raises :exc:`ValueError` (TOMLDecodeError, or
    UnicodeDecodeError) if it is not."""
    table: dict[str, object] = tomllib.loads(data.decode("utf-8"))
    return table


def options_table() -> str:
    """docs/options.inc: every option's flag, TOML key, default and reason, as
    an RST list-table (a test checks that the file is this function's output)."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 24 22 14 40", "",
             "   * - Flag", "     - TOML key", "     - Default",
             "     - What, and why this default"]
    for option in OPTIONS:
        if option.config_field:
            doc = field_docs(Config)[option.name].replace("\n\n", "\n")
        else:  # (an asterisk would start emphasis in RST)
            doc = option.help.replace("%(default)s", _show(option.default)).replace("*", "\\*")
        flag = (f"``--{option.flag[2:]}`` / ``--no-{option.flag[2:]}``" if option.kind.flag
                and option.config_field else f"``{option.flag}``")
        if option.short:
            flag = f"``{option.short}``, {flag}"
        if not option.kind.flag:
            flag = flag[:-2] + f" {option.kind.metavar}``"
        if option.alias:
            flag += f", ``{option.alias}``"
        default = ("none" if option.default is None else f"{option.default:o}"
                   if option.kind is MODE else _show(option.default))
        lines += [f"   * - {flag}", f"     - ``{option.name}``", f"     - ``{default}``",
                  "     - " + "\n       ".join(doc.splitlines())]
    return "\n".join(lines) + "\n"


def _toml_repr(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)

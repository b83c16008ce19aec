"""The access log: the ``trio_h2.access`` logger's line for each exchange.

In-process servers (the ``h2_server`` fixture) spoken to over sockets by the
trio client, the WebSocket client and curl, with the logger's records
collected; and the runner's ``--access-logfile`` and ``--access-logformat``
as a real process. The format and the escaping are pure and tested alone.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trio

import trio_h2._apps.asgi
from trio_h2 import Config
from trio_h2._core.accesslog import (
    _ATOM_VALUES,
    ATOMS,
    DEFAULT_FORMAT,
    NO_RESPONSE,
    atoms_table,
    check_format,
    escape,
)
from trio_h2.testing import H2ClientFactory, H2ServerFactory, StreamReset, open_websocket

from .test_cli import TIMEOUT, curl, run_server, run_to_exit, write_module

# Every atom, tab-separated, the enclosed ones by example.
EVERY_ATOM = "\t".join(f"%({name})s" for name in ATOMS if not name.startswith("{")) + (
    "\t%({X-Test}i)s\t%({content-type}o)s\t%({TRIO_H2_TEST_VAR}e)s")
NAMES = [name for name in ATOMS if not name.startswith("{")] + ["{X-Test}i", "{content-type}o",
                                                                "{TRIO_H2_TEST_VAR}e"]

APP = """
from tests.apps import read_body

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text")})
        await receive()
        return
    body = await read_body(receive)
    status = 404 if scope["path"].startswith("/missing") else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"0123456789" + body})
"""


def parse(line: str) -> dict[str, str]:
    values = line.split("\t")
    assert len(values) == len(NAMES), line
    return dict(zip(NAMES, values, strict=True))


# -- the format, alone ------------------------------------------------------------


def test_every_documented_atom_has_a_value_and_back() -> None:
    assert {name for name in ATOMS if not name.startswith("{")} == set(_ATOM_VALUES)


def test_docs_list_every_atom() -> None:
    # Regenerate with: python -c "from trio_h2._core.accesslog import atoms_table;
    # print(atoms_table(), end='')" > docs/access_log_atoms.inc
    documented = (Path(__file__).parent.parent / "docs" / "access_log_atoms.inc").read_text()
    assert documented == atoms_table()


def test_default_format_is_gunicorns() -> None:
    assert Config().access_log_format == DEFAULT_FORMAT
    assert DEFAULT_FORMAT == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


@pytest.mark.parametrize(("log_format", "message"), [
    ("%(h)s %(nope)s", "unknown atom %(nope)"),
    ("%(h)", "incomplete format"),
    ("100% done", "is not a %-format"),
    ("%(h)d", "a real number is required"),
    ("%({X-Test}x)s", "unknown atom"),
])
def test_bad_format_is_a_value_error(log_format: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_format(log_format)
    with pytest.raises(ValueError, match=re.escape(message)):
        Config(access_log_format=log_format)


def test_escape_as_nginx() -> None:
    assert escape(b"plain /a?b=1 ~!") == "plain /a?b=1 ~!"
    assert escape(b'a"b\\c\nd\x1b[31m\x7f\xff') == "a\\x22b\\x5Cc\\x0Ad\\x1B[31m\\x7F\\xFF"


# -- in-process: every kind of exchange ------------------------------------------


class Lines(list[str]):
    """The access log's lines, formatted as a handler writes them; the
    handler runs in the trio thread, so ``grew`` can be set from it."""

    def __init__(self) -> None:
        super().__init__()
        self.grew = trio.Event()


class _Collect(logging.Handler):
    def __init__(self, lines: Lines) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.lines.grew.set()


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    lines = Lines()
    logger = logging.getLogger("trio_h2.access")
    handler = _Collect(lines)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def wait_for_lines(lines: Lines, count: int) -> Lines:
    with trio.fail_after(TIMEOUT):
        while len(lines) < count:
            lines.grew = trio.Event()
            await lines.grew.wait()
    return lines


def load_app() -> Any:
    namespace: dict[str, Any] = {}
    exec(APP, namespace)
    return namespace["app"]


async def test_h2_request_every_atom(h2_server: H2ServerFactory, h2_client: H2ClientFactory,
                                     access_lines: Lines,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_H2_TEST_VAR", "v\n1")
    server = await h2_server(load_app(), access_log_format=EVERY_ATOM)
    client = await h2_client(server)
    response = await client.request(
        "POST", "/p%20q/r?x=1&y=%22", body=b"abc",
        headers=[("x-test", "one"), ("x-test", "two"), ("referer", "http://r/"),
                 ("user-agent", "agent/1"), ("authorization", "Basic dXNlcjpwYXNz")])
    assert response.status == 200
    (line,) = await wait_for_lines(access_lines, 1)
    atoms = parse(line)
    assert atoms["h"] == "127.0.0.1" and atoms["peer"] == "127.0.0.1"
    assert atoms["l"] == "-" and atoms["u"] == "user"
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", atoms["t"])
    assert atoms["r"] == atoms["R"] == "POST /p%20q/r?x=1&y=%22 HTTP/2"
    assert atoms["m"] == "POST" and atoms["U"] == "/p q/r" and atoms["q"] == "x=1&y=%22"
    assert atoms["Uq"] == "/p%20q/r?x=1&y=%22"
    assert atoms["H"] == "HTTP/2" and atoms["S"] == "http"
    assert (atoms["s"], atoms["st"]) == ("200", "OK")
    assert atoms["B"] == atoms["b"] == "13" and atoms["received"] == "3"
    assert atoms["f"] == "http://r/" and atoms["a"] == "agent/1"
    duration = float(atoms["L"])
    assert int(atoms["T"]) == int(duration)
    assert int(atoms["M"]) == int(duration * 1000)
    assert abs(int(atoms["D"]) - duration * 1_000_000) <= 1
    assert atoms["p"] == f"<{os.getpid()}>"
    assert atoms["stream"] == str(response.stream_id) == "1"
    assert atoms["outcome"] == "ok"
    assert atoms["{X-Test}i"] == "one, two"
    assert atoms["{content-type}o"] == "text/plain"
    assert atoms["{TRIO_H2_TEST_VAR}e"] == "v\\x0A1"


async def test_reset_and_failed_exchanges(h2_server: H2ServerFactory,
                                          h2_client: H2ClientFactory,
                                          access_lines: Lines) -> None:
    started = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/fail":
            raise RuntimeError("boom")
        if scope["path"] == "/half":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"half", "more_body": True})
            raise RuntimeError("boom after the head")
        started.set()
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"

    server = await h2_server(app, access_log_format="%(r)s %(s)s %(B)s %(outcome)s")
    client = await h2_client(server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.get, "/wait")
        await started.wait()
        nursery.cancel_scope.cancel()  # the client resets the stream (CANCEL)
    assert (await client.get("/fail")).status == 500
    with pytest.raises(StreamReset):
        await client.get("/half")
    await wait_for_lines(access_lines, 3)
    assert sorted(access_lines) == sorted([
        f"GET /wait HTTP/2 {NO_RESPONSE} 0 reset",
        "GET /fail HTTP/2 500 22 error",
        "GET /half HTTP/2 200 4 error",
    ])


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
async def test_websocket_one_line_when_it_ends(h2_server: H2ServerFactory,
                                               access_lines: Lines, http2: bool) -> None:
    server = await h2_server(
        load_app(), access_log_format="%(r)s %(s)s %(S)s %(B)s %(received)s %(outcome)s")
    async with open_websocket(server.url + "/ws", http2=http2) as ws:
        await ws.send("hello")
        assert await ws.receive() == "hello"
        assert access_lines == []  # not before it ends
        await ws.close()
    (line,) = await wait_for_lines(access_lines, 1)
    # Frames: "hello" is 7 bytes from the server, 11 masked from the client;
    # the close frames, 4 and 8.
    expected = "CONNECT /ws HTTP/2 200" if http2 else "GET /ws HTTP/1.1 101"
    assert line == f"{expected} ws 11 19 ok"


async def test_off_builds_nothing(h2_server: H2ServerFactory, h2_client: H2ClientFactory,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("trio_h2.access")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    logger.manager._clear_cache()  # (isEnabledFor caches its answers)

    def built(*args: object, **kwargs: object) -> None:
        raise AssertionError("atoms built with the access log off")

    monkeypatch.setattr(trio_h2._apps.asgi, "AccessAtoms", built)
    server = await h2_server(load_app())
    client = await h2_client(server)
    assert (await client.get("/")).status == 200
    assert (await client.get("/missing")).status == 404


# -- the runner's flags -----------------------------------------------------------


def served_lines(path: Path, count: int) -> list[str]:
    """The first ``count`` lines of the log file ``path``, once written."""
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    pytest.fail(f"{path} has not {count} lines: {path.read_text()!r}")


def test_access_logfile_every_atom_over_h2_http11_and_http10(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--access-logfile", str(log_file),
                    "--access-logformat", EVERY_ATOM, cwd=tmp_path) as server:
        for flag in ("--http2-prior-knowledge", "--http1.1", "--http1.0"):
            result = curl(flag, "-H", "X-Test: t", "-A", "curl-test", server.url + "/a?b")
            assert result.stdout == "0123456789", result.stderr
        lines = served_lines(log_file, 3)
    protocols = [parse(line)["H"] for line in lines]
    assert protocols == ["HTTP/2", "HTTP/1.1", "HTTP/1.0"]
    for line, protocol in zip(lines, protocols, strict=True):
        atoms = parse(line)
        assert atoms["r"] == f"GET /a?b {protocol}"
        assert (atoms["h"], atoms["s"], atoms["b"], atoms["a"]) == ("127.0.0.1", "200", "10",
                                                                    "curl-test")
        assert (atoms["{X-Test}i"], atoms["stream"], atoms["outcome"]) == ("t", "1", "ok")
        assert atoms["p"] == f"<{server.process.pid}>"


def test_access_logfile_dash_is_stdout_in_the_default_format(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--access-logfile", "-",
                    cwd=tmp_path) as server:
        result = curl("--http2-prior-knowledge", "-A", "agent/2", "-e", "http://ref/",
                      server.url + "/missing")
        assert result.returncode == 0, result.stderr
        line = server.stdout.readline()
    assert re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "GET /missing HTTP/2" 404 10 '
                        r'"http://ref/" "agent/2"', line), line


def test_no_access_logfile_no_access_log(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--log-level", "debug",
                    cwd=tmp_path) as server:
        assert curl("--http2-prior-knowledge", server.url + "/").returncode == 0
        server.process.terminate()
        server.process.wait(timeout=TIMEOUT)
        out, err = server.stdout.rest(), server.stderr.rest()
    assert out == "" and "GET /" not in err, (out, err)


def test_log_injection_is_escaped(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    forged = '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /admin HTTP/1.1" 200 1'
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--access-logfile", str(log_file),
                    "--access-logformat", '%(h)s "%(r)s" "%(U)s" "%(a)s"',
                    cwd=tmp_path) as server:
        # A percent-encoded line break in the path (decoded by %(U)s), quotes
        # and an escape sequence in the user agent.
        result = curl("--http2-prior-knowledge", "--globoff", "-A", f'x" \x1b[2K\x7f{forged}',
                      server.url + "/a%0D%0A" + quote(forged))
        assert result.returncode == 0, result.stderr
        lines = served_lines(log_file, 1)
    assert len(lines) == 1 and lines[0].startswith('127.0.0.1 "GET /a%0D%0A'), lines
    assert '"/a\\x0D\\x0A127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \\x22GET /admin' in lines[0]
    assert '"x\\x22 \\x1B[2K\\x7F127.0.0.1' in lines[0]
    assert lines[0].count('"') == 6


def test_real_client_address_from_a_trusted_proxy(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--proxy-headers",
                    "--forwarded-allow-ips", "127.0.0.1", "--access-logfile", str(log_file),
                    "--access-logformat", "%(h)s %(peer)s %(S)s", cwd=tmp_path) as server:
        result = curl("--http1.1", "-H", "X-Forwarded-For: 203.0.113.7, 127.0.0.1",
                      "-H", "X-Forwarded-Proto: https", server.url + "/")
        assert result.returncode == 0, result.stderr
        lines = served_lines(log_file, 1)
    assert lines == ["203.0.113.7 127.0.0.1 https"]


@pytest.mark.parametrize(("args", "status", "message"), [
    (["--access-logformat", "%(h)s %(nope)s"], 2,
     "argument --access-log-format/--access-logformat: unknown atom %(nope)"),
    (["--access-log-format", "%(h)"], 2, "incomplete format"),
    (["--access-logfile", "{tmp}/no/such/dir/access.log"], 1,
     "cannot open --access-logfile '{tmp}/no/such/dir/access.log'"),
])
def test_bad_access_log_options_one_line_at_start(tmp_path: Path, args: list[str], status: int,
                                                  message: str) -> None:
    args = [arg.format(tmp=tmp_path) for arg in args]
    result = run_to_exit(*args, "--bind", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trio_h2: error: "), result.stderr
    assert message.format(tmp=tmp_path) in lines[0]


def test_access_log_format_in_the_config_file(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    (tmp_path / "server.toml").write_text(
        f'access_log_format = "%(s)s %(H)s"\naccess_logfile = "{log_file}"\n')
    with run_server("logged:app", "--bind", "127.0.0.1:0", "-c", "server.toml",
                    cwd=tmp_path) as server:
        assert curl("--http1.1", server.url + "/").returncode == 0
        assert served_lines(log_file, 1) == ["200 HTTP/1.1"]

"""The pytest plugin (trio_h2._pytest_plugin), tested the way users meet it.

Each test writes test files into a temporary directory and runs pytest on
them in a subprocess, so the plugin is loaded through the installed
``pytest11`` entry point, not through a conftest. Runs are few (each costs
about a second): one file holds many inner tests. ``-W error`` makes any
warning at teardown (an unclosed socket, an unawaited coroutine) an error,
and outcomes are compared exactly, so a clean teardown is part of passing.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

from tests.support.processes import SOURCE_ROOT

pytest_plugins = ["pytester"]

DOCS = Path(SOURCE_ROOT) / "docs" / "testing.rst"

INNER_APP = '''
import json
import ssl
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
import trio
import trio.testing
from h2.settings import SettingCodes

from trio_h2.testing import Priority

EVENTS = []
STATE = {}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            EVENTS.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/crash":
        raise RuntimeError("kaboom")
    if scope["path"] == "/forever":
        try:
            await trio.sleep_forever()
        finally:
            EVENTS.append("handler cancelled")
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    answer = json.dumps({
        "method": scope["method"],
        "scheme": scope["scheme"],
        "client": scope["client"],
        "host": headers.get("host"),
        "priority": headers.get("priority"),
        "x-test": headers.get("x-test"),
        "body": body.decode(),
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})
'''

INNER_TESTS = '''

async def test_h2c_get(h2_server, h2_client):
    server = await h2_server(app)
    assert (server.host, server.tls, server.ca) == ("127.0.0.1", False, None)
    assert server.url == f"http://127.0.0.1:{server.port}"
    with pytest.raises(ValueError, match="does not use TLS"):
        server.client_ssl_context()
    client = await h2_client(server)
    response = await client.get("/", headers=[("x-test", "yes")])
    assert response.status == 200
    assert response.header("content-type") == b"application/json"
    seen = json.loads(response.body)
    assert (seen["method"], seen["scheme"], seen["x-test"]) == ("GET", "http", "yes")
    assert seen["host"] == f"127.0.0.1:{server.port}"


async def test_tls_get(h2_server, h2_client, h2_ca):
    server = await h2_server(app, tls=True)
    assert server.tls and server.ca is h2_ca
    assert server.url == f"https://localhost:{server.port}"
    for target in (server, server.url, f"https://127.0.0.1:{server.port}"):
        client = await h2_client(target)
        seen = json.loads((await client.get("/")).body)
        assert seen["scheme"] == "https"
    assert seen["host"] == f"127.0.0.1:{server.port}"
    own = await h2_client(server.url, ssl_context=server.client_ssl_context())
    assert json.loads((await own.get("/")).body)["host"] == f"localhost:{server.port}"


async def test_post_body(h2_server, h2_client):
    server = await h2_server(app)
    client = await h2_client(server.url)
    response = await client.request("POST", "/", body=b"abc" * 50_000)
    assert response.status == 200
    seen = json.loads(response.body)
    assert (seen["method"], seen["body"]) == ("POST", "abc" * 50_000)


async def test_50_concurrent_requests_on_one_connection(h2_server, h2_client):
    arrived = []
    all_arrived = trio.Event()

    async def gathering_app(scope, receive, send):
        if scope["type"] != "http":
            return
        arrived.append(scope["client"])
        if len(arrived) == 50:
            all_arrived.set()
        await all_arrived.wait()  # so all 50 streams are open at once
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    server = await h2_server(gathering_app)
    client = await h2_client(server)
    bodies = []

    async def get(n):
        bodies.append((await client.get(f"/{n}")).body)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for n in range(50):
                nursery.start_soon(get, n)
    assert sorted(bodies) == sorted(f"/{n}".encode() for n in range(50))
    assert len(arrived) == 50 and len(set(arrived)) == 1


async def test_priorities(h2_server, h2_client):
    server = await h2_server(app)
    client = await h2_client(server)
    response = await client.get("/", priority=Priority(urgency=1, incremental=True))
    assert json.loads(response.body)["priority"] == "u=1, i"
    await client.send_priority(response.stream_id, weight=200)
    await client.send_priority(99, depends_on=0, weight=1)
    await client.send_priority_update(response.stream_id + 2, Priority(urgency=7))
    await client.send_priority_update(101, "u=0")
    response = await client.get("/", priority=Priority(weight=256, depends_on=99, exclusive=True))
    assert response.status == 200
    assert json.loads(response.body)["priority"] is None
    await client.ping()


async def test_config_reaches_the_server(h2_server, h2_client):
    server = await h2_server(app, max_concurrent_streams=7, initial_window_size=1000)
    client = await h2_client(server)
    assert client.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 7
    assert client.remote_settings[SettingCodes.INITIAL_WINDOW_SIZE] == 1000


async def test_bad_arguments(h2_server, h2_client):
    with pytest.raises(ValueError, match="max_concurrent_streams must be between"):
        await h2_server(app, max_concurrent_streams=0)
    with pytest.raises(TypeError, match="no_such_option"):
        await h2_server(app, no_such_option=1)
    server = await h2_server(app)
    for url in ("ftp://127.0.0.1:1", f"{server.url}/path", f"{server.url}?q", "http://:80",
                "http://127.0.0.1:port", "127.0.0.1:80"):
        with pytest.raises(ValueError):
            await h2_client(url)
    with pytest.raises(ValueError, match="https"):
        await h2_client(server, ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    with trio.socket.socket() as sock:  # a port where nothing listens
        await sock.bind(("127.0.0.1", 0))
        with pytest.raises(OSError):
            await h2_client(f"http://127.0.0.1:{sock.getsockname()[1]}")


async def test_window_options_pass_through(h2_server, h2_client):
    async def big_app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 1000})

    server = await h2_server(big_app)
    client = await h2_client(server, initial_window_size=100, auto_window=False)
    async with client.stream("GET", "/") as response:
        assert await anext(response) == b"x" * 100
        await client.open_window(900, stream_id=response.stream_id)
        assert await response.read() == b"x" * 900


async def test_teardown_with_a_request_in_flight(h2_server, h2_client, nursery):
    STATE["first event"] = len(EVENTS)
    server = await h2_server(app, shutdown_timeout=30)
    client = await h2_client(server)
    nursery.start_soon(client.get, "/forever")
    await trio.testing.wait_all_tasks_blocked()
    assert EVENTS[STATE["first event"]:] == ["lifespan.startup"]
    STATE["port"] = server.port
    STATE["ended"] = time.monotonic()


async def test_after_teardown():
    # The previous test's request was cancelled, its server stopped (the
    # lifespan shut down, the port is closed), and that without waiting
    # for shutdown_timeout.
    events = EVENTS[STATE["first event"]:]
    assert events == ["lifespan.startup", "handler cancelled", "lifespan.shutdown"]
    assert time.monotonic() - STATE["ended"] < 5
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", STATE["port"])


@pytest.fixture
async def bare_h2_server(nursery):
    """A bare h2 server that records how a client leaves; after the test
    it waits for the client to go, then checks it said GOAWAY first."""
    record = []
    gone = trio.Event()

    async def handle(stream):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        try:
            await stream.send_all(conn.data_to_send())
            while data := await stream.receive_some(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ConnectionTerminated):
                        record.append(("GOAWAY", event.error_code))
                await stream.send_all(conn.data_to_send())
            record.append("EOF")
        finally:
            gone.set()

    listeners = await nursery.start(trio.serve_tcp, handle, 0)
    yield listeners[0].socket.getsockname()[1]
    with trio.fail_after(5):
        await gone.wait()
    assert record == [("GOAWAY", h2.errors.ErrorCodes.NO_ERROR), "EOF"]


async def test_client_says_goaway_at_teardown(h2_client, bare_h2_server):
    client = await h2_client(f"http://127.0.0.1:{bare_h2_server}")
    await client.ping()


async def test_app_crash(h2_server, h2_client):
    server = await h2_server(app)
    client = await h2_client(server)
    response = await client.get("/crash")
    assert response.status == 200  # fails: the app raised, the client got a 500
'''


def count_tests(source: str) -> int:
    """How many ``test_*`` functions the module ``source`` defines."""
    return sum(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        for node in ast.parse(source).body
    )


def test_fixtures_in_trio_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_inner=INNER_APP + INNER_TESTS)
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    passed = count_tests(INNER_TESTS) - 1  # all but test_app_crash
    assert result.parseoutcomes() == {"passed": passed, "failed": 1}, result.stdout.str()
    result.stdout.fnmatch_lines(["FAILED test_inner.py::test_app_crash - *"])
    # The app's exception and where it was raised, from trio_h2's log record,
    # in the failing test's report.
    output = result.stdout.str()
    report = output[output.index("_ test_app_crash _"):]
    assert "assert 500 == 200" in report
    assert "Captured log call" in report
    assert 'raise RuntimeError("kaboom")' in report
    assert "RuntimeError: kaboom" in report
    assert "application raised RuntimeError" in report


def test_fixtures_with_markers_and_misuse(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=INNER_APP + '''

@pytest.mark.trio
async def test_marked(h2_server, h2_client):
    server = await h2_server(app, tls=True)
    client = await h2_client(server)
    assert (await client.get("/")).status == 200


def test_ca_without_trio(h2_ca):
    assert h2_ca.cert_pem.bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_sync_test(h2_server):
    pass


async def test_unmarked(h2_client):
    pass
''')
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"passed": 2, "errors": 2}, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_sync_test*",
        "test_sync_test uses h2_server; trio_h2's server and client fixtures only work in trio"
        " tests: make it an async def test and mark it @pytest.mark.trio, or set trio_mode = true",
        "*ERROR at setup of test_unmarked*",
        "test_unmarked uses h2_client; *",  # not h2_server, which h2_client uses
    ])


def test_fixtures_without_pytest_trio(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_no_trio='''
def test_ca(h2_ca):
    assert h2_ca


async def test_server(h2_server):
    pass


async def test_client(h2_client):
    pass
''')
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider", "-p", "no:trio")
    assert result.parseoutcomes() == {"passed": 1, "errors": 2}, result.stdout.str()
    message = (
        "trio_h2's h2_server and h2_client fixtures need pytest-trio, which is not installed or"
        " is disabled (-p no:trio): pip install pytest-trio, then mark the test"
        " @pytest.mark.trio or set trio_mode = true"
    )
    result.stdout.fnmatch_lines(["*ERROR at setup of test_server*", message,
                                 "*ERROR at setup of test_client*", message])


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_disabled="def test_ca(h2_ca):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:trio_h2", "-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"errors": 1}, result.stdout.str()
    result.stdout.fnmatch_lines(["*fixture 'h2_ca' not found*"])


def doc_files(rst: str) -> dict[str, str]:
    """The code blocks of ``rst`` that have a file name as their caption:
    those are complete files, meant to run as written."""
    block = re.compile(r"^\.\. code-block:: \w+\n   :caption: (\S+)\n\n((?:   .*\n|\n)+)", re.M)
    return {name: textwrap.dedent(body).strip() + "\n" for name, body in block.findall(rst)}


def test_docs_examples_run_as_written(pytester: pytest.Pytester) -> None:
    files = doc_files(DOCS.read_text())
    assert sorted(files) == ["pytest.ini", "test_app.py", "test_flow.py"]
    for name, text in files.items():
        (pytester.path / name).write_text(text)
    tests = sum(count_tests(text) for name, text in files.items() if name.endswith(".py"))
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"passed": tests}, result.stdout.str()
    assert tests >= 10

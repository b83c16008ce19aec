"""``python -m trio_h2 module:app`` with WSGI apps: detection, --interface, --threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import curl, h2c_get, run_server, run_to_exit, write_module
from trio_h2._io.workers import REUSEPORT_SPREADS_CONNECTIONS

FLASK_APP = """
from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def home():
    return f"flask over {request.environ['SERVER_PROTOCOL']}\\n"
"""

# Takes (*args): its signature cannot tell ASGI from WSGI.
AMBIGUOUS_APP = """
def app(*args):
    environ, start_response = args
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi via --interface\\n"]
"""

ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"asgi\\n"})
"""


def test_flask_app_is_detected_and_served(tmp_path: Path) -> None:
    write_module(tmp_path, "flaskapp", FLASK_APP)
    with run_server("flaskapp:app", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        assert server.line.endswith("(HTTP/1.1, and h2c with prior knowledge; WSGI, 40 threads)")
        assert h2c_get(server.url + "/") == "flask over HTTP/2\n"
        result = curl(server.url + "/")
        assert result.stdout == "flask over HTTP/1.1\n", result.stderr
        server.process.terminate()
        server.process.wait(timeout=20)
        errors = server.stderr.rest()
        assert "TypeError" not in errors and "lifespan" not in errors.lower(), errors


def test_threads_flag(tmp_path: Path) -> None:
    write_module(tmp_path, "flaskapp", FLASK_APP)
    with run_server("flaskapp:app", "--threads", "3", "--bind", "127.0.0.1:0",
                    cwd=tmp_path) as server:
        assert server.line.endswith("; WSGI, 3 threads)")
        assert h2c_get(server.url + "/") == "flask over HTTP/2\n"


def test_interface_flag_for_a_signature_that_cannot_tell(tmp_path: Path) -> None:
    write_module(tmp_path, "ambiguous", AMBIGUOUS_APP)
    result = run_to_exit("ambiguous:app", "--bind", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("trio_h2: error: cannot tell whether 'ambiguous:app' is an ASGI "
                             "or a WSGI application from its signature: pass --interface "
                             "asgi or --interface wsgi\n")
    with run_server("ambiguous:app", "--interface", "wsgi", "--bind", "127.0.0.1:0",
                    cwd=tmp_path) as server:
        assert h2c_get(server.url + "/") == "wsgi via --interface\n"


@pytest.mark.parametrize("args", [[], ["--interface", "asgi"]])
def test_asgi_apps_are_unchanged(tmp_path: Path, args: list[str]) -> None:
    write_module(tmp_path, "asgiapp", ASGI_APP)
    with run_server("asgiapp:app", *args, "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        assert server.line.endswith("(HTTP/1.1, and h2c with prior knowledge)")
        assert h2c_get(server.url + "/") == "asgi\n"


def test_threads_with_an_asgi_app_is_an_error(tmp_path: Path) -> None:
    write_module(tmp_path, "asgiapp", ASGI_APP)
    result = run_to_exit("asgiapp:app", "--threads", "4", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("trio_h2: error: --threads applies to WSGI applications; "
                             "'asgiapp:app' is ASGI\n")


FLAGS_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['wsgi.multithread']} {environ['wsgi.multiprocess']}\\n".encode()]
"""


@pytest.mark.skipif(not REUSEPORT_SPREADS_CONNECTIONS, reason="--workers needs Linux")
def test_workers_and_one_thread_reach_the_environ(tmp_path: Path) -> None:
    write_module(tmp_path, "flagsapp", FLAGS_APP)
    with run_server("flagsapp:app", "--workers", "2", "--threads", "1", "--bind",
                    "127.0.0.1:0", cwd=tmp_path) as server:
        assert server.line.endswith(", 2 workers; WSGI, 1 thread)")
        # wsgi.multithread False: one request at a time (PEP 3333's option
        # for apps that are not thread-safe); wsgi.multiprocess True.
        assert h2c_get(server.url + "/") == "False True\n"


def test_threads_must_be_a_positive_number(tmp_path: Path) -> None:
    result = run_to_exit("--threads", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("trio_h2: error: argument --threads: expected a number of "
                             "threads from 1 to 10000, not '0' (see --help)\n")

"""The command-line runner, run as a real process and spoken to by curl and nghttp.

Every server is started with ``--bind 127.0.0.1:0`` and the test learns its
port from the one line it prints. Every wait has a timeout and every process
is killed in a ``finally``. Nothing waits on a clock to decide an outcome:
where a request must still be running when the signal arrives, the app
blocks until the test releases it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trustme
import websockets.exceptions
import websockets.sync.client
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.support.frames import PREFACE, settings
from tests.support.processes import (
    TIMEOUT,
    curl,
    h2c_get,
    read_self_signed,
    run_server,
    run_to_exit,
    write_module,
)
from tests.support.tools import require_tool
from trio_h2._apps.demo import DemoApp
from trio_h2._io.workers import REUSEPORT_SPREADS_CONNECTIONS

# An app that, for /slow, says on stdout that it started, then blocks until
# the test creates the file "release" (checked every 10 ms, for at most
# 60 s), then answers. Other paths answer at once.
SLOW_APP = """
import os
import sys

import trio


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        print("slow request started", flush=True)
        with trio.move_on_after(60):
            while not os.path.exists("release"):
                await trio.sleep(0.01)
        print("slow request finishing", file=sys.stderr, flush=True)
    body = b"done: " + scope["path"].encode() + b"\\n"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
"""

HELLO_APP = """
import sys


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"hello from {__name__} over HTTP/{scope['http_version']}\\n".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trustme CA and a localhost certificate, in every file layout we test."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    other = ca.issue_cert("other.example")
    files = {name: directory / f"{name}.pem"
             for name in ("ca", "combined", "cert", "key", "other_key", "garbage")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_and_cert_chain_pem.write_to_path(str(files["combined"]))
    for i, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(str(files["cert"]), append=i > 0)
    cert.private_key_pem.write_to_path(str(files["key"]))
    other.private_key_pem.write_to_path(str(files["other_key"]))
    files["garbage"].write_text("this is not PEM\n")
    return files


def demo_subresources(page: str) -> list[str]:
    """The same-origin paths the demo page loads (not the pages it links
    to), and the JSON its script fetches."""
    paths = sorted(set(re.findall(r'(?:<link [^>]*href|src)="(/[^"]*)"', page)))
    assert "/static/style.css" in paths and "/static/app.js" in paths
    assert sum(path.endswith(".svg") for path in paths) >= 3
    return [*paths, "/api/info.json"]


def _nghttp_statuses(verbose: str) -> dict[str, str]:
    """``{path: status}`` from the output of ``nghttp -v``."""
    paths: dict[str, str] = {}
    stream = None
    for line in verbose.splitlines():
        if match := re.search(r"send HEADERS frame <.*stream_id=(\d+)>", line):
            stream = match[1]
        elif (match := re.fullmatch(r"\s+:path: (\S+)", line)) and stream is not None:
            paths[stream] = match[1]
    statuses = re.findall(r"recv \(stream_id=(\d+)\) :status: (\d+)", verbose)
    return {paths[stream]: status for stream, status in statuses}


# -- the demo app -------------------------------------------------------------


def test_demo_page_and_subresources_over_one_h2c_connection(tmp_path: Path) -> None:
    nghttp = require_tool("nghttp")
    with run_server("--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        assert re.fullmatch(r"trio_h2 serving demo app on http://127\.0\.0\.1:(\d+) "
                            r"\(HTTP/1\.1, and h2c with prior knowledge\)", server.line)
        assert not server.url.endswith(":0")
        page = h2c_get(server.url + "/")
        assert "HTTP/2" in page and "<!doctype html>" in page
        assert 'data-client="127.0.0.1:' in page
        expected = demo_subresources(page)
        assert "/api/info.json" in h2c_get(server.url + "/static/app.js")

        # nghttp -a fetches the page and its assets the way a browser does.
        result = subprocess.run([nghttp, "-nav", server.url + "/"], capture_output=True,
                                text=True, timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("] Connected") == 1
        fetched = _nghttp_statuses(result.stdout)
        assert fetched["/"] == "200"
        for path in expected[:-1]:  # all but the JSON that the script fetches
            assert fetched.get(path) == "200", (path, fetched)

        assert server.signal_and_wait(signal.SIGTERM) == 0
        assert server.stdout.rest() == ""  # exactly one line on stdout


def test_demo_json_and_errors(tmp_path: Path) -> None:
    with run_server("--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        info = json.loads(h2c_get(server.url + "/api/info.json"))
        assert info["http_version"] == "2"
        assert info["scheme"] == "http"
        assert info["client"].startswith("127.0.0.1:")
        assert info["server"] == server.url.removeprefix("http://")
        assert info["request_on_this_connection"] == 1

        result = curl("--http2-prior-knowledge", "-w", "%{http_code}", "-o", "/dev/null",
                      server.url + "/no/such/thing")
        assert result.stdout == "404"
        result = curl("--http2-prior-knowledge", "-w", "%{http_code}", "-o", "/dev/null",
                      "-X", "POST", "-d", "x", server.url + "/")
        assert result.stdout == "405"
        result = curl("--http2-prior-knowledge", "--head", server.url + "/static/style.css")
        assert result.stdout.startswith("HTTP/2 200")
        assert "content-type: text/css" in result.stdout


@pytest.mark.parametrize(("version", "scheme", "hint"), [
    ("2", "http", None),
    ("2", "https", None),
    ("1.1", "http", "run\n        <code>python -m trio_h2 --self-signed</code>"),
    ("1.1", "https", "did not choose h2"),
])
def test_demo_page_says_how_to_see_http2_when_not_over_it(
        version: str, scheme: str, hint: str | None) -> None:
    # The page as the demo renders it for such a scope: trio_h2 serves no
    # HTTP/1.1 yet (test_browser has the browser's view, over the wire).
    scope = {"type": "http", "http_version": version, "scheme": scheme, "method": "GET",
             "path": "/", "headers": [], "client": ("127.0.0.1", 5000)}
    page = DemoApp().respond(scope).body.decode()
    assert f'<span class="badge">HTTP/{version}</span>' in page
    if hint is None:
        assert 'class="hint"' not in page
    else:
        assert page.count('class="hint"') == 1 and hint in page


@pytest.mark.parametrize("layout", ["combined", "separate"])
def test_tls_demo_over_one_connection(tmp_path: Path, tls: dict[str, Path], layout: str) -> None:
    keys = (["--certfile", str(tls["combined"])] if layout == "combined"
            else ["--certfile", str(tls["cert"]), "--keyfile", str(tls["key"])])
    with run_server("--bind", "127.0.0.1:0", *keys, cwd=tmp_path) as server:
        match = re.fullmatch(r"trio_h2 serving demo app on https://127\.0\.0\.1:(\d+) "
                             r"\(h2 and HTTP/1\.1 over TLS, ALPN\)", server.line)
        assert match
        base = f"https://localhost:{match[1]}"
        page = curl("--cacert", str(tls["ca"]), "--fail", base + "/")
        assert page.returncode == 0, page.stderr
        assert "https: TLS" in page.stdout
        paths = ["/", *demo_subresources(page.stdout), "/missing"]
        args = []
        for path in paths:
            args += ["-o", "/dev/null", base + path]
        # One curl run: later transfers reuse the first one's connection.
        result = curl("--cacert", str(tls["ca"]), "-w",
                      "%{http_code} %{http_version} %{num_connects}\\n", *args)
        assert result.returncode == 0, result.stderr
        rows = [line.split() for line in result.stdout.splitlines()]
        assert rows == [["200", "2", "1"]] + [["200", "2", "0"]] * (len(paths) - 2) + [
            ["404", "2", "0"]]
        assert server.signal_and_wait(signal.SIGINT) == 0


def served_certificate(port: int) -> x509.Certificate:
    """The certificate the server on 127.0.0.1 ``port`` presents (unverified)."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=TIMEOUT)
    return x509.load_pem_x509_certificate(pem.encode())


def spki_sha256(certificate: x509.Certificate) -> str:
    """base64 SHA-256 of the certificate's public key, as Chromium's
    ``--ignore-certificate-errors-spki-list`` wants it."""
    der = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_self_signed_is_trusted_by_curl_and_httpx_with_the_printed_ca(tmp_path: Path) -> None:
    with run_server("--self-signed", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        assert re.fullmatch(r"trio_h2 serving demo app on https://127\.0\.0\.1:(\d+) "
                            r"\(h2 and HTTP/1\.1 over TLS, ALPN\)", server.line)
        run = read_self_signed(server)
        assert Path(run.ca_file).is_file()
        assert Path(run.ca_file).parent.parent == tmp_path  # TMPDIR, see environment
        assert Path(run.ca_file).parent.stat().st_mode & 0o077 == 0  # private directory

        # Without the CA, curl refuses the certificate (60: peer certificate
        # cannot be authenticated): the printed file is what makes it work.
        untrusted = curl("--output", "/dev/null", f"https://localhost:{run.port}/")
        assert untrusted.returncode == 60, untrusted.stderr
        # The printed command, as printed, and what it fetched over.
        result = curl(*run.curl[1:], "--write-out", "\n%{http_version}")
        assert result.returncode == 0, result.stderr
        page, _, version = result.stdout.rpartition("\n")
        assert version == "2"
        assert "HTTP/2" in page and "https: TLS" in page

        context = ssl.create_default_context(cafile=run.ca_file)
        with httpx.Client(http2=True, verify=context, timeout=TIMEOUT) as client:
            for host in ("localhost", "127.0.0.1"):
                response = client.get(f"https://{host}:{run.port}/api/info.json")
                assert response.http_version == "HTTP/2"
                info = response.json()
                assert (info["http_version"], info["scheme"]) == ("2", "https")

        certificate = served_certificate(run.port)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert [str(name.value) for name in names.value] == ["localhost", "127.0.0.1", "::1"]
        assert spki_sha256(certificate) == run.spki_sha256
        assert server.signal_and_wait(signal.SIGTERM) == 0
        # The directory goes with the runner: the key was for this run only.
        assert not Path(run.ca_file).parent.exists()


@pytest.mark.skipif(not REUSEPORT_SPREADS_CONNECTIONS,
                    reason="--workers needs Linux's SO_REUSEPORT")
def test_self_signed_workers_serve_the_supervisors_certificate(tmp_path: Path) -> None:
    # The line is printed once every worker serves, so both loaded the
    # certificate the supervisor made; each new curl is a new connection,
    # which the kernel gives to either worker.
    with run_server("--self-signed", "--workers", "2", "--bind", "127.0.0.1:0",
                    cwd=tmp_path) as server:
        assert server.line.endswith("(h2 and HTTP/1.1 over TLS, ALPN, 2 workers)")
        run = read_self_signed(server)
        for _ in range(4):
            result = curl(*run.curl[1:], "--output", "/dev/null", "--write-out",
                          "%{http_version}")
            assert (result.returncode, result.stdout) == (0, "2"), result.stderr
        assert spki_sha256(served_certificate(run.port)) == run.spki_sha256
        assert server.signal_and_wait(signal.SIGTERM) == 0
        assert not Path(run.ca_file).parent.exists()


def test_demo_over_http1_with_plain_curl(tmp_path: Path) -> None:
    with run_server("--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        # curl with no flags: HTTP/1.1 on the same port as h2c.
        page = curl("--fail", server.url + "/")
        assert page.returncode == 0, page.stderr
        assert "HTTP/1.1" in page.stdout and "cleartext HTTP/1.x" in page.stdout
        info = json.loads(curl("--fail", server.url + "/api/info.json").stdout)
        assert info["http_version"] == "1.1"
        assert json.loads(h2c_get(server.url + "/api/info.json"))["http_version"] == "2"
        result = curl("-0", "--head", server.url + "/static/style.css")
        assert result.stdout.startswith("HTTP/1.1 200 OK\n")  # (text mode: no CR)
        assert "Connection: close\n" in result.stdout  # HTTP/1.0 without keep-alive
        assert "content-type: text/css" in result.stdout
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_no_http1_serves_h2c_only(tmp_path: Path) -> None:
    with run_server("--bind", "127.0.0.1:0", "--no-http1", cwd=tmp_path) as server:
        assert re.fullmatch(r"trio_h2 serving demo app on http://127\.0\.0\.1:\d+ "
                            r"\(h2c, prior knowledge\)", server.line)
        result = curl(server.url + "/")
        assert result.returncode != 0 and "HTTP/0.9" in result.stderr
        assert json.loads(h2c_get(server.url + "/api/info.json"))["http_version"] == "2"
        assert server.signal_and_wait(signal.SIGTERM) == 0


@pytest.mark.parametrize("http1", [True, False])
def test_tls_alpn_http1(tmp_path: Path, tls: dict[str, Path], http1: bool) -> None:
    flags = [] if http1 else ["--no-http1"]
    with run_server("--bind", "127.0.0.1:0", "--certfile", str(tls["combined"]), *flags,
                    cwd=tmp_path) as server:
        mode = "h2 and HTTP/1\\.1 over TLS, ALPN" if http1 else "h2 over TLS, ALPN"
        match = re.fullmatch(rf"trio_h2 serving demo app on https://127\.0\.0\.1:(\d+) "
                             rf"\({mode}\)", server.line)
        assert match
        url = f"https://localhost:{match[1]}/api/info.json"
        result = curl("--cacert", str(tls["ca"]), "--http1.1", url)
        if http1:
            assert json.loads(result.stdout)["http_version"] == "1.1"
        else:
            assert result.returncode != 0
        result = curl("--cacert", str(tls["ca"]), url)  # ALPN h2 and http/1.1: h2 wins
        assert json.loads(result.stdout)["http_version"] == "2"
        assert server.signal_and_wait(signal.SIGTERM) == 0


# -- binding ------------------------------------------------------------------


def test_two_binds_listed_in_one_line(tmp_path: Path) -> None:
    with run_server("--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0",
                    cwd=tmp_path) as server:
        assert len(server.urls) == 2
        assert len(set(server.urls)) == 2
        for url in server.urls:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
            info = json.loads(h2c_get(url + "/api/info.json"))
            assert info["server"] == url.removeprefix("http://")
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_ipv6_bind(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with run_server("--bind", "[::1]:0", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        assert re.fullmatch(r"http://\[::1\]:\d+", server.urls[0])
        result = curl("--http2-prior-knowledge", "--globoff", server.urls[0] + "/api/info.json")
        assert json.loads(result.stdout)["client"].startswith("[::1]:")
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for binds in ([f"127.0.0.1:{port}"], ["127.0.0.1:0", f"127.0.0.1:{port}"]):
            args = [arg for bind in binds for arg in ("--bind", bind)]
            result = run_to_exit(*args, cwd=tmp_path)
            assert result.returncode == 1
            assert result.stdout == ""
            assert result.stderr == (f"trio_h2: error: cannot listen on 127.0.0.1:{port}: "
                                     "Address already in use\n")


# -- the user's app -----------------------------------------------------------


@pytest.mark.parametrize(("module", "spec"), [
    ("hello", "hello:app"),
    ("pkg.web", "pkg.web:holder.app"),
])
def test_app_imported_from_current_directory(tmp_path: Path, module: str, spec: str) -> None:
    source = HELLO_APP
    if spec.endswith("holder.app"):
        source += "\n\nclass holder:\n    app = staticmethod(app)\n"
        (tmp_path / "pkg").mkdir()
        (tmp_path / "pkg" / "__init__.py").write_text("")
    write_module(tmp_path, module, source)
    with run_server(spec, "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        assert re.fullmatch(rf"trio_h2 serving {re.escape(spec)} on http://127\.0\.0\.1:\d+ "
                            r"\(HTTP/1\.1, and h2c with prior knowledge\)", server.line)
        assert h2c_get(server.url + "/") == f"hello from {module} over HTTP/2\n"
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_console_script_also_imports_from_current_directory(tmp_path: Path) -> None:
    # The console script's sys.path[0] is its bin directory, not the current
    # one, so this checks that the runner puts the current directory first.
    script = Path(sys.executable).with_name("trio-h2")
    if not script.exists():
        pytest.skip(f"console script not installed at {script}")
    write_module(tmp_path, "hello", HELLO_APP)
    command = [str(script), "hello:app", "--bind", "127.0.0.1:0"]
    with run_server(cwd=tmp_path, command=command) as server:
        assert h2c_get(server.url + "/") == "hello from hello over HTTP/2\n"
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_lifespan_startup_failure(tmp_path: Path) -> None:
    write_module(tmp_path, "failing", """
        async def app(scope, receive, send):
            assert scope["type"] == "lifespan"
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
    """)
    result = run_to_exit("failing:app", "--bind", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "trio_h2: error: application startup failed: database unreachable\n"


# -- bad input ----------------------------------------------------------------

MODULES = {
    "boom": "x = 1 / 0\n",
    "needsdep": "import trio_h2_test_missing_dependency\n",
    "broken": "def app(:\n",
    "noapp": "application = None\n",
    "nested": "class holder:\n    pass\n",
    "notcallable": "app = 42\n",
}

BAD_INPUT = [
    # (arguments, exit status, text in the one error line)
    (["nope:app"], 1, "cannot import module 'nope': No module named 'nope'"),
    (["nope.sub:app"], 1, "cannot import module 'nope.sub': No module named 'nope'"),
    (["boom:app"], 1,
     "error while importing module 'boom': ZeroDivisionError: division by zero (at boom.py:1)"),
    (["needsdep:app"], 1, "error while importing module 'needsdep': ModuleNotFoundError: "
                          "No module named 'trio_h2_test_missing_dependency'"),
    (["broken:app"], 1, "error while importing module 'broken': SyntaxError"),
    (["noapp:app"], 1, "module 'noapp' has no attribute 'app'"),
    (["nested:holder.app"], 1, "'nested:holder' has no attribute 'app'"),
    (["notcallable:app"], 1, "'notcallable:app' is not an ASGI application"),
    (["noapp"], 2, "expected MODULE:APP"),
    (["no-app:app"], 2, "expected MODULE:APP"),
    (["--bind", "127.0.0.1"], 2, "invalid address '127.0.0.1': expected HOST:PORT"),
    (["--bind", "127.0.0.1:http"], 2, "the port must be a number from 0 to 65535"),
    (["--bind", "127.0.0.1:65536"], 2, "the port must be a number from 0 to 65535"),
    (["--bind", ":8000"], 2, "missing host"),
    (["--bind", "::1:8000"], 2, "an IPv6 address needs brackets"),
    (["--bind", "[::1:8000"], 2, "expected [IPV6]:PORT"),
    (["--bind", "[localhost]:8000"], 2, "'localhost' in brackets is not an IPv6 address"),
    (["--keyfile", "{key}"], 2, "--keyfile needs --certfile"),
    (["--self-signed", "--certfile", "{combined}"], 2,
     "--self-signed makes its own certificate: give either it or --certfile/--keyfile, "
     "not both"),
    (["--self-signed", "--keyfile", "{key}"], 2, "--self-signed makes its own certificate"),
    (["--self-signed", "--bind", "xn--zz:0"], 1,
     "--self-signed cannot make a certificate: IDNAError: Invalid A-label"),
    (["--certfile", "{tmp}/missing.pem"], 1,
     "cannot read certificate file '{tmp}/missing.pem': No such file or directory"),
    (["--certfile", "{cert}"], 1,
     "no PEM private key found in '{cert}' (pass the key with --keyfile)"),
    (["--certfile", "{garbage}"], 1, "no PEM certificate found in '{garbage}'"),
    (["--certfile", "{cert}", "--keyfile", "{garbage}"], 1, "no PEM private key found"),
    (["--certfile", "{cert}", "--keyfile", "{other_key}"], 1, "key values mismatch"),
    (["--certfile", "{cert}", "--keyfile", "{tmp}"], 1,
     "cannot read key file '{tmp}': Is a directory"),
    (["--log-level", "loud"], 2,
     "argument --log-level: expected one of debug, info, warning, error, not 'loud'"),
    (["--shutdown-timeout", "-1"], 2, "argument --shutdown-timeout: must be >= 0, not -1.0"),
    (["--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
]


@pytest.mark.parametrize(("args", "status", "message"), BAD_INPUT,
                         ids=[" ".join(case[0]) for case in BAD_INPUT])
def test_bad_input_is_one_line_without_traceback(
        tmp_path: Path, tls: dict[str, Path], args: list[str], status: int,
        message: str) -> None:
    for name, source in MODULES.items():
        write_module(tmp_path, name, source)
    names = {name: str(path) for name, path in tls.items()} | {"tmp": str(tmp_path)}
    args = [arg.format(**names) for arg in args]
    if "--bind" not in args:
        # Should a bad input not be caught, the runner serves on a free port
        # (and run_to_exit times out) rather than on port 8000.
        args += ["--bind", "127.0.0.1:0"]
    result = run_to_exit(*args, cwd=tmp_path)
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trio_h2: error: ")
    assert message.format(**names) in lines[0]


def test_help_and_version(tmp_path: Path) -> None:
    result = run_to_exit("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "MODULE:APP" in result.stdout and "--bind" in result.stdout
    result = run_to_exit("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert re.fullmatch(r"trio_h2 \d+\.\d+\.\d+\n", result.stdout)


# -- signals and shutdown -------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_lets_in_flight_request_finish(tmp_path: Path, signum: int) -> None:
    write_module(tmp_path, "slow", SLOW_APP)
    with run_server("slow:app", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        client = subprocess.Popen(
            [require_tool("curl"), "--silent", "--show-error", "--http2-prior-knowledge",
             server.url + "/slow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline() == "slow request started"
            server.process.send_signal(signum)
            name = signal.Signals(signum).name
            server.stderr.wait_for(f"{name} received: shutting down")
            (tmp_path / "release").touch()  # only now may the request finish
            body, errors = client.communicate(timeout=TIMEOUT)
        finally:
            if client.poll() is None:
                client.kill()
            client.wait(timeout=TIMEOUT)
        assert client.returncode == 0, errors
        assert body == "done: /slow\n"
        assert server.process.wait(timeout=TIMEOUT) == 0
        assert "Traceback" not in server.stderr.rest()


def test_shutdown_timeout_cuts_off_slow_streams(tmp_path: Path) -> None:
    # The request is never released: with the default 30 s the runner would
    # outlive TIMEOUT; with --shutdown-timeout 0 it exits at once.
    write_module(tmp_path, "slow", SLOW_APP)
    with run_server("slow:app", "--bind", "127.0.0.1:0", "--shutdown-timeout", "0",
                    cwd=tmp_path) as server:
        client = subprocess.Popen(
            [require_tool("curl"), "--silent", "--http2-prior-knowledge", server.url + "/slow"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline() == "slow request started"
            assert server.signal_and_wait(signal.SIGTERM) == 0
            body, _ = client.communicate(timeout=TIMEOUT)
        finally:
            if client.poll() is None:
                client.kill()
            client.wait(timeout=TIMEOUT)
        assert client.returncode != 0
        assert body == ""


def test_second_signal_exits_at_once(tmp_path: Path) -> None:
    write_module(tmp_path, "slow", SLOW_APP)
    with run_server("slow:app", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        client = subprocess.Popen(
            [require_tool("curl"), "--silent", "--http2-prior-knowledge", server.url + "/slow"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert server.stdout.readline() == "slow request started"
            server.process.send_signal(signal.SIGTERM)
            server.stderr.wait_for("SIGTERM received: shutting down")
            assert server.signal_and_wait(signal.SIGINT) == 1
            assert "SIGINT received again: exiting" in server.stderr.rest()
        finally:
            client.kill()
            client.wait(timeout=TIMEOUT)


@pytest.mark.parametrize(("level", "logged"), [("info", True), ("warning", False)])
def test_log_level(tmp_path: Path, level: str, logged: bool) -> None:
    with run_server("--bind", "127.0.0.1:0", "--log-level", level, cwd=tmp_path) as server:
        h2c_get(server.url + "/")
        assert server.signal_and_wait(signal.SIGTERM) == 0
        stderr = server.stderr.rest()
        assert ("INFO trio_h2: SIGTERM received: shutting down" in stderr) == logged
        if not logged:
            assert stderr == ""


@pytest.mark.parametrize(("flag", "message"), [
    ("--preface-timeout", "no connection preface within 1.0s"),
    ("--idle-timeout", "idle for 1.0s"),
])
def test_timeout_flags_reach_the_connection(tmp_path: Path, flag: str, message: str) -> None:
    # A connection that sends nothing (preface) or only a preface (idle) is
    # closed once the flag's 1 s has passed; the log names the reason.
    with run_server("--bind", "127.0.0.1:0", flag, "1", "--log-level", "debug",
                    cwd=tmp_path) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            if flag == "--idle-timeout":
                sock.sendall(PREFACE + settings())
            while sock.recv(65536):  # until the server closes
                pass
        server.stderr.wait_for(message)
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_sigterm_with_twenty_slow_requests_on_one_connection(tmp_path: Path) -> None:
    # The hardening issue: twenty slow requests in flight on one connection
    # when SIGTERM arrives all complete; a new connection after SIGTERM is
    # refused; the process exits by itself, with status 0.
    write_module(tmp_path, "slow", SLOW_APP)
    with run_server("slow:app", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        client = subprocess.Popen(
            [require_tool("nghttp"), "-nv", "-m", "20", server.url + "/slow"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(20):
                assert server.stdout.readline() == "slow request started"
            server.process.send_signal(signal.SIGTERM)
            server.stderr.wait_for("SIGTERM received: shutting down")
            host, port = server.url.removeprefix("http://").rsplit(":", 1)
            deadline = time.monotonic() + TIMEOUT
            while True:  # the listener closes right after the log line
                try:
                    socket.create_connection((host, int(port)), timeout=TIMEOUT).close()
                except (ConnectionRefusedError, ConnectionResetError):
                    break  # refused (or reset from the closing listener's backlog)
                assert time.monotonic() < deadline, "still accepting after SIGTERM"
                time.sleep(0.01)
            (tmp_path / "release").touch()
            out, errors = client.communicate(timeout=TIMEOUT)
        finally:
            if client.poll() is None:
                client.kill()
            client.wait(timeout=TIMEOUT)
        assert client.returncode == 0, errors
        assert len(re.findall(r"recv \(stream_id=\d+\) :status: 200", out)) == 20, out
        assert out.count("recv GOAWAY") >= 1
        assert server.process.wait(timeout=TIMEOUT) == 0


# An echo WebSocket app that says on stdout how each WebSocket ended for it.
ECHO_WS_APP = """
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})
    print("disconnect", message["code"], flush=True)
"""


def test_sigterm_closes_an_open_websocket_with_1001(tmp_path: Path) -> None:
    # The websockets library as the client: it sees the close frame's code;
    # the app sees websocket.disconnect 1001; the runner exits by itself,
    # long before --shutdown-timeout (30 s) would cut the WebSocket off.
    write_module(tmp_path, "echows", ECHO_WS_APP)
    with run_server("echows:app", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        url = server.url.replace("http://", "ws://", 1)
        with websockets.sync.client.connect(url + "/") as ws:
            ws.send("hello")
            assert ws.recv(timeout=TIMEOUT) == "hello"
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert server.process.wait(timeout=TIMEOUT) == 0
        assert server.stdout.rest() == "disconnect 1001\n"

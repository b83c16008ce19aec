"""The deployments of docs/deployment.rst, each with the file the docs show.

examples/deploy/ holds the HAProxy config, the nginx site, and the systemd
socket and service units that docs/deployment.rst includes. These tests run
the real programs (Debian's haproxy 2.6, nginx 1.22, systemd-socket-activate)
on exactly those files, with only ports, paths and certificate locations
substituted (:func:`render`), in front of trio_h2 processes started by
``run_server``. The client connects from 127.0.0.2, the proxy from 127.0.0.1:
the app must see 127.0.0.2. Then one backend gets SIGTERM while a load
generator runs through the proxy, and no request may fail.

Readiness is polled (HAProxy's runtime API, a request retried within a
bound); the load run's progress is read from the proxy (HAProxy's counters,
nginx's access log) before the signal, so the signal lands mid-run however
slow the machine is.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.processes import SOURCE_ROOT, TIMEOUT, Server, run_server
from tests.support.tools import require_tool

DEPLOY = Path(SOURCE_ROOT) / "examples" / "deploy"
APP = "examples.deploy.whoami:app"
CLIENT = "127.0.0.2"  # the client's address; the proxies connect from 127.0.0.1

# Requests of each load run: enough that the run is still going when the
# signal lands (it is sent once a few hundred have been served).
LOAD_REQUESTS = 20000

def render(name: str, substitutions: dict[str, str]) -> str:
    """examples/deploy/``name`` with each key replaced by its value; every
    key must occur in the file, so that the file and the test cannot drift."""
    text = (DEPLOY / name).read_text()
    for old, new in substitutions.items():
        assert old in text, f"{old!r} is not in examples/deploy/{name}"
        text = text.replace(old, new)
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def poll(what: str, check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Call ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def access_log_args(path: Path) -> list[str]:
    """The backend's access-log flags: the client address and request line."""
    return ["--access-logfile", str(path), "--access-logformat", "%(h)s %(r)s"]


def check_access_log(tmp_path: Path, client: str) -> None:
    """Each request for / in the backends' access logs names ``client``
    (health checks, for /health, come from the proxy itself). The proxy
    picks the backend, and a line is written once its exchange has ended,
    which may be just after the client has the response: wait for one."""
    def lines() -> list[str]:
        return [line for path in (tmp_path / "access1.log", tmp_path / "access2.log")
                if path.exists() for line in path.read_text().splitlines() if " / " in line]

    poll("an access-log line for /", lambda: bool(lines()))
    assert all(line.split()[0] == client for line in lines()), lines()


@dataclass(frozen=True)
class Seen:
    """What the example app saw of one request."""

    client: str
    http_version: str
    pid: int


def whoami(*curl_args: str) -> Seen:
    """What the example app saw of one curl request from :data:`CLIENT`."""
    result = subprocess.run(
        [require_tool("curl"), "--silent", "--show-error", "--fail", "--interface", CLIENT,
         *curl_args], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    return Seen(answer["client"][0], answer["http_version"], answer["pid"])


@contextmanager
def running(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process with its output in ``log``; stopped on the way out with
    SIGTERM, which nginx's and HAProxy's masters pass on to their workers
    (SIGKILL left nginx's worker running, orphaned), and killed if it is
    still there after ``TIMEOUT``."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(timeout=TIMEOUT)


def signal_mid_run(load: subprocess.Popen[str], backend: Server,
                   served: Callable[[], int]) -> None:
    """SIGTERM ``backend`` once ``served()`` says it answered a few hundred
    requests of the ``load`` run, which must still be running then."""
    poll("the backend's share of the load", lambda: served() >= 300 or load.poll() is not None)
    assert load.poll() is None, "the load run ended before the signal: make it longer"
    backend.process.send_signal(signal.SIGTERM)
    assert backend.process.wait(timeout=TIMEOUT) == 0  # a graceful exit
    assert "SIGTERM received" in backend.stderr.rest()


def load_result(load: subprocess.Popen[str]) -> str:
    out, _ = load.communicate(timeout=120)
    assert load.returncode == 0, out[-2000:]
    return out


def assert_no_failures(h2load_output: str) -> None:
    assert (f"{LOAD_REQUESTS} succeeded, 0 failed, 0 errored, 0 timeout"
            in h2load_output), h2load_output[-1500:]
    assert f"status codes: {LOAD_REQUESTS} 2xx," in h2load_output, h2load_output[-1500:]


@pytest.fixture(scope="module")
def site_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """HAProxy's certificate (key and chain in one file) and its CA."""
    directory = tmp_path_factory.mktemp("haproxy-tls")
    ca = trustme.CA()
    pem, ca_pem = directory / "site.pem", directory / "ca.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    return pem, ca_pem


# -- HAProxy ------------------------------------------------------------------


class HAProxy:
    """haproxy -db on examples/deploy/haproxy.cfg, and its runtime API."""

    def __init__(self, process: subprocess.Popen[bytes], admin: Path, port: int) -> None:
        self.process = process
        self.admin = admin
        self.port = port

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(str(self.admin))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers_up(self) -> bool:
        """Both backends passed their HTTP/1.1 health check."""
        if not self.admin.exists():
            return False
        # "show servers state": srv_op_state (6th field) is 2 when running.
        rows = [line.split() for line in self.command("show servers state app").splitlines()
                if line and not line.startswith("#") and len(line.split()) > 5]
        return len(rows) == 2 and all(row[5] == "2" for row in rows)

    def responses(self, server: str) -> int:
        """The 2xx responses ``server`` (app1, app2) has given."""
        csv = self.command("show stat").splitlines()
        names = csv[0].lstrip("# ").split(",")
        for line in csv[1:]:
            row = dict(zip(names, line.split(","), strict=False))
            if row.get("pxname") == "app" and row.get("svname") == server:
                return int(row["hrsp_2xx"] or 0)
        raise AssertionError(f"no server {server} in {csv!r}")


@contextmanager
def haproxy(tmp_path: Path, site_pem: Path, backends: list[Server]) -> Iterator[HAProxy]:
    port = free_port()
    admin = tmp_path / "admin.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(render("haproxy.cfg", {
        "/run/haproxy/admin.sock": str(admin),
        "127.0.0.1:8443": f"127.0.0.1:{port}",
        "/etc/haproxy/certs/site.pem": str(site_pem),
        "127.0.0.1:8001": f"127.0.0.1:{port_of(backends[0])}",
        "127.0.0.1:8002": f"127.0.0.1:{port_of(backends[1])}",
    }))
    command = [require_tool("haproxy", "haproxy"), "-db", "-f", str(config)]
    with running(command, tmp_path / "haproxy.log") as process:
        proxy = HAProxy(process, admin, port)
        poll("HAProxy's health checks marking both backends UP",
             lambda: process.poll() is not None or proxy.servers_up())
        assert process.poll() is None, (tmp_path / "haproxy.log").read_text()
        yield proxy


@contextmanager
def backends(tmp_path: Path, *flags: str) -> Iterator[list[Server]]:
    """Two trio_h2 processes serving the example app on free ports."""
    logs = [tmp_path / "access1.log", tmp_path / "access2.log"]
    with run_server(APP, "--bind", "127.0.0.1:0", *flags, *access_log_args(logs[0]),
                    cwd=tmp_path) as first, \
            run_server(APP, "--bind", "127.0.0.1:0", *flags, *access_log_args(logs[1]),
                       cwd=tmp_path) as second:
        yield [first, second]


def test_haproxy_tls_h2_to_backends_with_proxy_protocol(
        tmp_path: Path, site_pem: tuple[Path, Path]) -> None:
    pem, ca = site_pem
    h2load = require_tool("h2load")
    with backends(tmp_path, "--proxy-protocol") as servers, \
            haproxy(tmp_path, pem, servers) as proxy:
        url = f"https://localhost:{proxy.port}/"
        tls = ["--cacert", str(ca), "--resolve", f"localhost:{proxy.port}:127.0.0.1"]
        for version in ("--http2", "--http1.1"):
            seen = whoami(version, *tls, url)
            # The client's address came through PROXY v2; HAProxy spoke h2.
            assert (seen.client, seen.http_version) == (CLIENT, "2"), seen
        check_access_log(tmp_path, CLIENT)

        load = subprocess.Popen(
            [h2load, "-n", str(LOAD_REQUESTS), "-c", "4", "-m", "10", url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            signal_mid_run(load, servers[0], lambda: proxy.responses("app1"))
            before = proxy.responses("app2")
            out = load_result(load)
        finally:
            if load.poll() is None:
                load.kill()
        assert_no_failures(out)
        assert proxy.responses("app2") > before  # the rest went to the other backend


# -- nginx --------------------------------------------------------------------

# nginx's main configuration for the test (the part a distribution ships):
# everything it writes goes under the test's directory, and an access log
# names the upstream of each request.
NGINX_MAIN = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$status $upstream_addr $upstream_status';
    access_log {prefix}/access.log upstream;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"""


@contextmanager
def nginx(tmp_path: Path, upstreams: list[str]) -> Iterator[int]:
    """nginx with examples/deploy/nginx.conf as its site; yields its port."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    (prefix / "site.conf").write_text(render("nginx.conf", {
        "127.0.0.1:8080": f"127.0.0.1:{port}",
        "127.0.0.1:8001": upstreams[0],
        "127.0.0.1:8002": upstreams[1],
    }))
    (prefix / "nginx.conf").write_text(NGINX_MAIN.format(prefix=prefix))
    command = [require_tool("nginx", "nginx"), "-p", str(prefix), "-c",
               str(prefix / "nginx.conf"), "-g", "daemon off;"]
    with running(command, tmp_path / "nginx.log") as process:
        def answers() -> bool:
            assert process.poll() is None, (tmp_path / "nginx.log").read_text()
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0
        poll("nginx listening", answers)
        yield port


def upstream_log(tmp_path: Path) -> list[list[str]]:
    """nginx's access log: ``[status, upstream_addr, upstream_status]`` each."""
    path = tmp_path / "nginx" / "access.log"
    return [line.split(" ", 2) for line in path.read_text().splitlines()] \
        if path.exists() else []


def test_nginx_http11_upstreams_with_forwarded_headers(tmp_path: Path) -> None:
    h2load = require_tool("h2load")
    with backends(tmp_path, "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1") as servers:
        addresses = [f"127.0.0.1:{port_of(server)}" for server in servers]
        with nginx(tmp_path, addresses) as port:
            seen = whoami(f"http://127.0.0.1:{port}/")
            # X-Forwarded-For, believed from nginx's address only.
            assert (seen.client, seen.http_version) == (CLIENT, "1.1"), seen
            check_access_log(tmp_path, CLIENT)
            # A client that talks to a backend directly is not believed.
            direct = whoami("--header", "X-Forwarded-For: 203.0.113.9", servers[0].url + "/")
            assert direct.client == CLIENT, direct

            load = subprocess.Popen(
                [h2load, "--h1", "-n", str(LOAD_REQUESTS), "-c", "16",
                 f"http://127.0.0.1:{port}/"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                signal_mid_run(load, servers[0], lambda: sum(
                    1 for row in upstream_log(tmp_path) if row[1] == addresses[0]))
                out = load_result(load)
            finally:
                if load.poll() is None:
                    load.kill()
    assert_no_failures(out)
    # nginx resent no request that trio_h2 had received: none was reset or
    # closed unanswered (only connections refused once the listener closed,
    # which carried nothing, went to the other backend).
    lost = [line for line in (tmp_path / "nginx.log").read_text().splitlines()
            if "[error]" in line and "while reading response header" in line]
    assert not lost, lost
    rows = upstream_log(tmp_path)
    assert all(row[0] == "200" for row in rows), [row for row in rows if row[0] != "200"]
    assert rows[-1][1] == addresses[1], rows[-1]


# -- systemd socket activation --------------------------------------------------


def unit_value(name: str, key: str) -> str:
    """The (only) ``key=`` line of examples/deploy/``name``."""
    [value] = re.findall(rf"^{key}=(.*)$", (DEPLOY / name).read_text(), re.MULTILINE)
    return value


def test_systemd_socket_activation_passes_fd_3(tmp_path: Path) -> None:
    activate = require_tool("systemd-socket-activate", "systemd")
    assert unit_value("trio_h2.socket", "ListenStream") == "127.0.0.1:8000"
    port = free_port()
    # The service's command, with this interpreter and the example app.
    exec_start = shlex.split(render("trio_h2.service", {
        "/srv/app/venv/bin/python": sys.executable,
        " app:app": f" {APP}",
    }).split("ExecStart=", 1)[1].splitlines()[0])
    assert exec_start[3:5] == ["--bind", "fd://3"], exec_start
    # systemd starts services with a clean environment, as this tool does:
    # only what -E names reaches the service.
    command = [activate, "--listen", f"127.0.0.1:{port}",
               "-E", f"PYTHONPATH={SOURCE_ROOT}", *exec_start]
    with running(command, tmp_path / "service.log") as process:
        log = tmp_path / "service.log"
        poll("systemd-socket-activate listening",
             lambda: "Listening on" in log.read_text() or process.poll() is not None)
        # The first connection starts the service (it waits in the queue).
        first = whoami(f"http://127.0.0.1:{port}/")
        assert first.pid == process.pid, first  # exec'd in place, as systemd does
        assert whoami("--http2-prior-knowledge", f"http://127.0.0.1:{port}/").http_version == "2"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
    assert "SIGTERM received" in log.read_text()

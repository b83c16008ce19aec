"""Behind a proxy, over sockets: the PROXY protocol header before HTTP/1.1,
h2c and TLS (raw clients and curl's ``--haproxy-protocol``), and the
``X-Forwarded-*`` headers from trusted and untrusted peers."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support.apps import app
from tests.support.frames import PREFACE, settings
from tests.support.h1raw import RawClient
from tests.support.processes import curl, h2c_get, run_server
from tests.support.proxy_headers import inet, v2
from tests.support.rawh2 import H2Client
from tests.support.requests import h1_request, request
from tests.support.tools import curl_args, run
from tests.support.wsgiapps import wsgi_app
from trio_h2 import Config, WSGIApp
from trio_h2.testing import H2ServerFactory, H2TestServer

V1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
V2 = v2(1, 1, 1, inet("192.0.2.1", "198.51.100.2", (56324, 443)))
V2_TCP6 = v2(1, 2, 1, inet("2001:db8::1", "2001:db8::2", (40000, 8443)))
LOCAL = v2(0, 0, 0, b"")
SCOPE_GET = h1_request("GET", "/scope")


async def h1_scope(stream: trio.abc.Stream, first: bytes) -> dict[str, Any]:
    """``first`` (a PROXY header and a request for /scope), then the scope the app saw."""
    client = RawClient(stream)
    await client.send(first)
    response = await client.response()
    await client.aclose()
    assert response.status == 200, response
    scope: dict[str, Any] = json.loads(response.body)
    return scope


async def h2_scope(stream: trio.abc.Stream, header: bytes, scheme: str) -> dict[str, Any]:
    """``header``, then HTTP/2 on ``stream``: the scope of a request for /scope."""
    await stream.send_all(header)
    client = H2Client(stream)
    await client.send_raw(PREFACE + settings())
    await client.send_headers(1, request("GET", "/scope", scheme=scheme, authority="x"),
                              end_stream=True)
    response = await client.read_response(1)
    await client.aclose()
    assert response.status == 200, response
    scope: dict[str, Any] = json.loads(response.body)
    return scope


@pytest.mark.parametrize(("header", "client", "server"), [
    (V1, ["192.0.2.1", 56324], ["198.51.100.2", 443]),
    (V2, ["192.0.2.1", 56324], ["198.51.100.2", 443]),
    (V2_TCP6, ["2001:db8::1", 40000], ["2001:db8::2", 8443]),
])
async def test_proxy_header_then_http1_and_h2c(h2_server: H2ServerFactory, header: bytes,
                                               client: list[object],
                                               server: list[object]) -> None:
    h2 = await h2_server(app, proxy_protocol=True)
    # The request in the same write as the header: it must not be lost.
    scope = await h1_scope(await trio.open_tcp_stream(h2.host, h2.port), header + SCOPE_GET)
    assert (scope["client"], scope["server"], scope["http_version"]) == (client, server, "1.1")
    scope = await h2_scope(await trio.open_tcp_stream(h2.host, h2.port), header, "http")
    assert (scope["client"], scope["server"], scope["http_version"]) == (client, server, "2")


async def test_proxy_header_split_at_every_byte(h2_server: H2ServerFactory) -> None:
    h2 = await h2_server(app, proxy_protocol=True)
    stream = await trio.open_tcp_stream(h2.host, h2.port)
    for byte in V2:
        await stream.send_all(bytes([byte]))
        await trio.sleep(0.001)
    scope = await h1_scope(stream, SCOPE_GET)
    assert scope["client"] == ["192.0.2.1", 56324]


async def test_local_command_keeps_the_socket_addresses(h2_server: H2ServerFactory) -> None:
    h2 = await h2_server(app, proxy_protocol=True)
    stream = await trio.open_tcp_stream(h2.host, h2.port)
    local = stream.socket.getsockname()
    scope = await h1_scope(stream, LOCAL + SCOPE_GET)
    assert scope["client"] == [local[0], local[1]]
    assert scope["server"] == [h2.host, h2.port]


async def test_proxy_v2_then_tls(h2_server: H2ServerFactory) -> None:
    """The TLS ClientHello follows the header: the handshake reads it first."""
    h2 = await h2_server(app, tls=True, proxy_protocol=True)
    tcp = await trio.open_tcp_stream(h2.host, h2.port)
    await tcp.send_all(V2)
    tls = trio.SSLStream(tcp, h2.client_ssl_context(), server_hostname="localhost")
    await tls.do_handshake()
    scope = await h2_scope(tls, b"", "https")
    assert (scope["client"], scope["scheme"]) == (["192.0.2.1", 56324], "https")


@pytest.mark.parametrize("tls", [False, True])
async def test_curl_haproxy_protocol(h2_server: H2ServerFactory, tmp_path: Path,
                                     tls: bool) -> None:
    """curl's ``--haproxy-protocol`` sends a v1 line with its own addresses."""
    h2 = await h2_server(app, tls=tls, proxy_protocol=True)
    out = await run(*curl_args(h2, tmp_path), "--haproxy-protocol", "-w", "\n%{local_port}",
                    h2.url + "/scope")
    body, _, port = out.rpartition("\n")
    scope = json.loads(body)
    assert scope["client"] == ["127.0.0.1", int(port)]
    assert scope["server"] == ["127.0.0.1", h2.port]
    assert scope["scheme"] == ("https" if tls else "http")


@pytest.mark.parametrize("first", [
    b"PROXY TCP4 192.0.2.1 not-an-address 1 2\r\n" + SCOPE_GET,
    b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2" + b" " * 100,  # no CRLF in 107 bytes
    SCOPE_GET,  # no header at all
    v2(1, 1, 1, b"\x00" * 4),  # an address block too short
])
async def test_malformed_header_closes_with_one_line(
        h2_server: H2ServerFactory, caplog: pytest.LogCaptureFixture, first: bytes) -> None:
    caplog.set_level(logging.INFO, logger="trio_h2")
    h2 = await h2_server(app, proxy_protocol=True)
    client = await RawClient.connect(h2.host, h2.port)
    await client.send(first)
    assert await client.eof() == b""
    lines = [r.getMessage() for r in caplog.records if r.name == "trio_h2"]
    assert len(lines) == 1 and "invalid PROXY protocol header" in lines[0], lines


async def test_proxy_line_is_a_bad_request_when_off(h2_server: H2ServerFactory) -> None:
    h2 = await h2_server(app)
    client = await RawClient.connect(h2.host, h2.port)
    await client.send(V1 + SCOPE_GET)
    response = await client.response()
    assert response.status == 400


# -- X-Forwarded-For and X-Forwarded-Proto --------------------------------------------

FORWARDED = {"x-forwarded-for": "203.0.113.7, 10.1.2.3", "x-forwarded-proto": "https"}


async def httpx_scope(server: H2TestServer, headers: dict[str, str],
                      path: str = "/scope") -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(server.url + path, headers=headers)
    assert response.status_code == 200
    scope: dict[str, Any] = response.json()
    return scope


async def test_forwarded_headers_from_a_trusted_peer(h2_server: H2ServerFactory) -> None:
    """127.0.0.1 and 10.0.0.0/8 are proxies: the client is the right-most other hop."""
    server = await h2_server(app, proxy_headers=True,
                             forwarded_allow_ips="127.0.0.1, 10.0.0.0/8")
    scope = await httpx_scope(server, FORWARDED)
    assert (scope["client"], scope["scheme"]) == (["203.0.113.7", 0], "https")


async def test_forwarded_headers_over_h2c_and_websocket_scheme(
        h2_server: H2ServerFactory) -> None:
    """X-Forwarded-Proto wins over the :scheme HTTP/2 carries."""
    server = await h2_server(app, proxy_headers=True)
    stream = await trio.open_tcp_stream(server.host, server.port)
    client = H2Client(stream)
    await client.send_raw(PREFACE + settings())
    await client.send_headers(1, request("GET", "/scope", ("x-forwarded-for", "203.0.113.9"),
                                         ("x-forwarded-proto", "https"), authority="x"),
                              end_stream=True)
    response = await client.read_response(1)
    await client.aclose()
    scope = json.loads(response.body)
    assert (scope["client"], scope["scheme"]) == (["203.0.113.9", 0], "https")


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
        h2_server: H2ServerFactory) -> None:
    server = await h2_server(app, proxy_headers=True, forwarded_allow_ips="192.0.2.0/24")
    scope = await httpx_scope(server, FORWARDED)
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] != 0
    assert scope["scheme"] == "http"


async def test_forwarded_headers_ignored_when_off(h2_server: H2ServerFactory) -> None:
    server = await h2_server(app)  # forwarded_allow_ips trusts 127.0.0.1 by default
    scope = await httpx_scope(server, FORWARDED)
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"


async def test_forwarded_proto_and_proxy_protocol_together(h2_server: H2ServerFactory) -> None:
    """The trusted peer is the one the PROXY header names, not the socket's."""
    h2 = await h2_server(app, proxy_protocol=True, proxy_headers=True,
                         forwarded_allow_ips="192.0.2.1")
    request = SCOPE_GET.replace(b"\r\n\r\n", b"\r\nX-Forwarded-For: 203.0.113.5\r\n\r\n")
    scope = await h1_scope(await trio.open_tcp_stream(h2.host, h2.port), V1 + request)
    assert scope["client"] == ["203.0.113.5", 0]
    # From another proxy-reported address, the header is not believed.
    other = V1.replace(b"192.0.2.1", b"192.0.2.2")
    scope = await h1_scope(await trio.open_tcp_stream(h2.host, h2.port), other + request)
    assert scope["client"] == ["192.0.2.2", 56324]


def test_bad_forwarded_allow_ips_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.300'")):
        Config(forwarded_allow_ips="127.0.0.1, 10.0.0.300")


# -- the runner's flags ---------------------------------------------------------------


def test_runner_flags_proxy_protocol_and_proxy_headers(tmp_path: Path) -> None:
    """``--proxy-protocol``: curl without the header is closed, with it served;
    ``--proxy-headers --forwarded-allow-ips``: the demo page names the
    forwarded client."""
    with run_server("--bind", "127.0.0.1:0", "--proxy-protocol", cwd=tmp_path) as server:
        assert curl("--fail", server.url + "/api/info.json").returncode != 0
        result = curl("--fail", "--haproxy-protocol", server.url + "/api/info.json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["client"].startswith("127.0.0.1:")
    with run_server("--bind", "127.0.0.1:0", "--proxy-headers", "--forwarded-allow-ips",
                    "127.0.0.0/8", cwd=tmp_path) as server:
        page = h2c_get(server.url + "/", "-H", "X-Forwarded-For: 203.0.113.8")
        assert 'data-client="203.0.113.8:0"' in page


async def test_wsgi_environ_follows_the_forwarded_scope(h2_server: H2ServerFactory) -> None:
    server = await h2_server(WSGIApp(wsgi_app), proxy_headers=True)
    environ = await httpx_scope(server, FORWARDED, path="/environ")
    # Only 127.0.0.1 is trusted: 10.1.2.3 is the right-most hop it vouches for.
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("10.1.2.3", "https")

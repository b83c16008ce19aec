"""trio_h2 against real HTTP/2 peers: curl, nghttp and h2load, over h2c and TLS."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest
import trio

from tests.support.apps import app
from tests.support.tools import curl_args, require_tool, run
from trio_h2.testing import H2ServerFactory, H2TestServer


@pytest.fixture(params=["h2c", "tls"])
async def server(request: pytest.FixtureRequest, h2_server: H2ServerFactory) -> H2TestServer:
    return await h2_server(app, tls=request.param == "tls")


async def test_curl_get(server: H2TestServer, tmp_path: Path) -> None:
    out = await run(*curl_args(server, tmp_path), "-i", server.url + "/")
    assert out.startswith("HTTP/2 200")
    assert "hello from trio_h2" in out


async def test_curl_scope(server: H2TestServer, tmp_path: Path) -> None:
    out = await run(*curl_args(server, tmp_path), server.url + "/scope/a%20b?x=1&y=2")
    scope = json.loads(out)
    assert scope["http_version"] == "2"
    assert scope["scheme"] == ("https" if server.tls else "http")
    assert scope["path"] == "/scope/a b" and scope["raw_path"] == "/scope/a%20b"
    assert scope["query_string"] == "x=1&y=2"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["client"][0] == "127.0.0.1"
    host = "localhost" if server.tls else "127.0.0.1"
    assert scope["headers"][0] == ["host", f"{host}:{server.port}"]


async def test_curl_5mb_post_echoed_intact(server: H2TestServer, tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(5 * 1024 * 1024))
    out = tmp_path / "out.bin"
    await run(*curl_args(server, tmp_path), "--data-binary", f"@{payload}", "-o", str(out),
              server.url + "/echo")
    assert out.read_bytes() == payload.read_bytes()


async def test_curl_streamed_response(server: H2TestServer, tmp_path: Path) -> None:
    out = await run(*curl_args(server, tmp_path), server.url + "/stream?n=200")
    assert out == "".join(f"chunk {i}\n" for i in range(200))


async def test_app_error_gives_500(server: H2TestServer, tmp_path: Path) -> None:
    out = await run(*curl_args(server, tmp_path), "-o", "/dev/null", "-w", "%{http_code}",
                    server.url + "/boom")
    assert out == "500"


async def test_nghttp_get(server: H2TestServer) -> None:
    nghttp = require_tool("nghttp")
    out = await run(nghttp, "-nv", server.url + "/")
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    assert "recv GOAWAY" not in out.split("send GOAWAY")[0]


@pytest.mark.slow
async def test_h2load_3000_requests(server: H2TestServer) -> None:
    h2load = require_tool("h2load")
    out = await run(h2load, "-n", "3000", "-c", "4", "-m", "10", server.url + "/")
    assert "3000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out
    assert "status codes: 3000 2xx" in out, out


async def test_h2load_uploads_pass_the_data_frame_budget(server: H2TestServer,
                                                         tmp_path: Path) -> None:
    """1000 uploads of 20 000 bytes (h2load --data) on 2 connections: DATA
    frames as h2load cuts them, within the default data_frame_budget."""
    h2load = require_tool("h2load")
    body = tmp_path / "body.bin"
    body.write_bytes(os.urandom(20_000))
    out = await run(h2load, "-n", "1000", "-c", "2", "-m", "10", "--data", str(body),
                    server.url + "/echo")
    assert "1000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out


async def test_tls_client_without_h2_alpn_is_closed_with_a_log_line(
    h2_server: H2ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_h2")
    server = await h2_server(app, tls=True, http1=False)
    curl = curl_args(server, tmp_path)
    result = await trio.run_process([*curl[:-3], "--http1.1", *curl[-2:], server.url + "/"],
                                    capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode != 0
    assert any("did not negotiate h2" in r.getMessage() for r in caplog.records)


async def test_tls_refuses_tls_1_1(h2_server: H2ServerFactory, tmp_path: Path) -> None:
    server = await h2_server(app, tls=True)
    curl = curl_args(server, tmp_path)
    result = await trio.run_process([*curl, "--tls-max", "1.1", server.url + "/"],
                                    capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode != 0




async def test_h2load_at_the_stream_limit_is_never_refused(h2_server: H2ServerFactory) -> None:
    # h2load opens the next stream the moment one ends; a stream that ended
    # normally must not count against max_concurrent_streams while its
    # handler is still returning (it would be refused, and the refusals
    # charged to the reset budget).
    h2load = require_tool("h2load")
    server = await h2_server(app, max_concurrent_streams=4)
    out = await run(h2load, "-n", "3000", "-c", "1", "-m", "4", server.url + "/")
    assert "3000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out

"""External tools the tests run: found or skipped (failed under ``CI=true``),
run with a deadline, and the curl arguments that reach a test server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import trio

from trio_h2.testing import H2TestServer

ON_CI = os.environ.get("CI", "").lower() == "true"

CURL_TRANSPORTS = ["h2c", "tls", "http1"]
"""The transports ``curl_for`` knows."""


def require_tool(name: str, packages: str = "curl nghttp2-client") -> str:
    """Path of an external tool. Missing: skip, except on CI, where it fails."""
    # Debian installs daemons (haproxy, nginx) in /usr/sbin, which is not on
    # an unprivileged user's PATH.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (apt-get install {packages})"
        if ON_CI:
            pytest.fail(message + " and CI=true", pytrace=False)
        pytest.skip(message)
    return path


async def run(*cmd: str) -> str:
    with trio.fail_after(60):
        result = await trio.run_process(list(cmd), capture_stdout=True, capture_stderr=True,
                                        check=False)
    assert result.returncode == 0, (cmd, result.returncode, result.stderr.decode()[-2000:])
    return result.stdout.decode(errors="replace")


def curl_args(server: H2TestServer, tmp_path: Path) -> list[str]:
    curl = require_tool("curl")
    if server.tls:
        assert server.ca is not None
        cafile = tmp_path / "ca.pem"
        server.ca.cert_pem.write_to_path(str(cafile))
        return [curl, "-sS", "--http2", "--cacert", str(cafile)]
    return [curl, "-sS", "--http2-prior-knowledge"]


def curl_for(server: H2TestServer, transport: str, tmp_path: Path) -> list[str]:
    """curl arguments for ``transport``: h2c with prior knowledge, TLS with
    ALPN h2, or plain HTTP/1.1."""
    args = curl_args(server, tmp_path)
    if transport == "http1":
        return [args[0], "-sS", "--http1.1"]
    return args

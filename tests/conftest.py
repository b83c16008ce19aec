"""Shared fixtures: a trio_h2 server in the test's nursery, tool checks."""

from __future__ import annotations

import functools
import os
import shutil
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trustme

import trio_h2

ON_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """Path of an external tool. Missing: skip, except on CI, where it fails."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install curl nghttp2-client)"
        if ON_CI:
            pytest.fail(message + " and CI=true", pytrace=False)
        pytest.skip(message)
    return path


@dataclass
class RunningServer:
    host: str
    port: int
    tls: bool
    ca: trustme.CA | None

    @property
    def url(self) -> str:
        if self.tls:
            return f"https://localhost:{self.port}"
        return f"http://{self.host}:{self.port}"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def start_server(
    nursery: trio.Nursery, ca: trustme.CA
) -> Callable[..., Awaitable[RunningServer]]:
    """``await start_server(app, tls=False, **config)``: trio_h2 on 127.0.0.1:0,
    stopped (cancelled) when the test ends."""

    async def start(app: Any, *, tls: bool = False, **config: Any) -> RunningServer:
        ssl_context = None
        if tls:
            ssl_context = trio_h2.configure_h2_context(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
            ca.issue_cert("localhost", "127.0.0.1").configure_cert(ssl_context)
        addrs = await nursery.start(functools.partial(
            trio_h2.serve, app, host="127.0.0.1", port=0, ssl_context=ssl_context,
            config=trio_h2.Config(**config)))
        host, port = addrs[0]
        return RunningServer(host, port, tls, ca if tls else None)

    return start

"""The trio_h2 pytest plugin: a trio_h2 server and HTTP/2 clients as fixtures.

pytest loads this module through the ``pytest11`` entry point, so installing
trio_h2 is enough; no conftest is needed. ``-p no:trio_h2`` disables it.

``h2_server`` and ``h2_client`` are trio fixtures: they use pytest-trio's
``nursery`` fixture, and so only work in trio tests (``@pytest.mark.trio`` or
``trio_mode = true``). This module never imports pytest-trio, which is a test
extra, not a dependency; without it, those two fixtures fail with an error
that says so. ``h2_ca`` works everywhere.

Resources and their owners: each server runs in the nursery of the
``h2_server`` fixture, each client connection in a task of the ``h2_client``
fixture's nursery. ``h2_client`` uses ``h2_server``, so pytest-trio tears it
down first: after the test, clients close their connections (GOAWAY), then
servers shut down gracefully (as on cancellation of :func:`trio_h2.serve`).
"""

from __future__ import annotations

import functools
import ssl
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import trio
import trustme

from ._apps.asgi import ASGIApp
from ._config import Config
from ._io.server import serve
from ._io.tls import configure_h2_context
from .testing import (
    H2Client,
    H2ClientFactory,
    H2ServerFactory,
    H2TestServer,
    open_h2_client,
)
from .testing._servers import TEST_HOST, TLS_NAME, client_context


@pytest.fixture(scope="session")
def h2_ca() -> trustme.CA:
    """A session-wide :class:`trustme.CA`. ``h2_server(app, tls=True)`` serves
    a certificate it issued, and ``h2_client`` trusts it for ``https://`` URLs."""
    return trustme.CA()


@pytest.fixture
def h2_server(nursery: trio.Nursery, h2_ca: trustme.CA) -> H2ServerFactory:
    """``server = await h2_server(app, tls=False, **config)`` serves the ASGI
    app with trio_h2 on 127.0.0.1, on a free port, and returns an
    :class:`H2TestServer` once the app's lifespan startup has finished.

    ``config`` are :class:`trio_h2.Config` fields (invalid values raise its
    :exc:`ValueError`, unknown names :exc:`TypeError`). With ``tls=True``
    the server presents a certificate from ``h2_ca`` for ``localhost`` and
    ``127.0.0.1``. When the test is over (and ``h2_client``'s connections are
    closed), each server shuts down gracefully: GOAWAY, in-flight streams
    finish (within ``shutdown_timeout``), lifespan shutdown runs. An app that
    raises makes its request fail with 500, and trio_h2 logs the exception to
    the ``trio_h2`` logger, which pytest shows under "Captured log call".
    Needs a trio test (pytest-trio)."""

    async def start(app: ASGIApp, /, *, tls: bool = False, **config: object) -> H2TestServer:
        server_config = Config().replace(**config)
        ssl_context = None
        if tls:
            ssl_context = configure_h2_context(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
            h2_ca.issue_cert(TLS_NAME, TEST_HOST).configure_cert(ssl_context)
        addresses = await nursery.start(
            functools.partial(
                serve, app, host=TEST_HOST, port=0, ssl_context=ssl_context, config=server_config
            )
        )
        host, port = addresses[0]
        return H2TestServer(host, port, h2_ca if tls else None)

    return start


@pytest.fixture
async def h2_client(
    nursery: trio.Nursery, h2_ca: trustme.CA, h2_server: H2ServerFactory
) -> AsyncIterator[H2ClientFactory]:
    """``client = await h2_client(server_or_url, **options)`` opens one HTTP/2
    connection and returns its :class:`trio_h2.testing.H2Client`; any number
    of tasks may send requests on it at once.

    The target is an :class:`H2TestServer` (the same as its ``url``) or a URL
    ``http://host:port`` (h2c, prior knowledge) or ``https://host:port`` (TLS,
    ALPN ``h2``, trusting ``h2_ca`` unless ``ssl_context`` is given).
    ``options`` go to :func:`trio_h2.testing.open_h2_client`:
    ``ssl_context``, ``server_hostname``, ``initial_window_size``,
    ``auto_window``. Raises :exc:`ValueError` for a URL of another form, and
    what ``open_h2_client`` raises if the connection cannot be made.

    After the test, every connection is closed (GOAWAY, then the socket)
    before the ``h2_server`` servers shut down. Needs a trio test (pytest-trio).
    """
    closing = trio.Event()
    closed: list[trio.Event] = []

    async def connect(
        target: H2TestServer | str,
        /,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        initial_window_size: int = 65535,
        auto_window: bool = True,
    ) -> H2Client:
        url = target.url if isinstance(target, H2TestServer) else target
        https, host, port = _parse_url(url)
        if not https and (ssl_context is not None or server_hostname is not None):
            raise ValueError(f"ssl_context and server_hostname are for https:// URLs, not {url}")
        if https and ssl_context is None:
            ca = target.ca if isinstance(target, H2TestServer) else None
            ssl_context = client_context(ca or h2_ca)
        done = trio.Event()
        closed.append(done)
        client: H2Client = await nursery.start(
            functools.partial(
                _run_client, host, port, closing, done,
                ssl_context=ssl_context, server_hostname=server_hostname,
                initial_window_size=initial_window_size, auto_window=auto_window,
            )
        )
        return client

    yield connect
    closing.set()
    for done in closed:
        await done.wait()


async def _run_client(
    host: str,
    port: int,
    closing: trio.Event,
    done: trio.Event,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    initial_window_size: int,
    auto_window: bool,
    task_status: trio.TaskStatus[H2Client] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Hold one client connection open until ``closing`` is set. The
    connection's cancel scopes are entered and exited in this task."""
    try:
        async with open_h2_client(
            host, port, ssl_context=ssl_context, server_hostname=server_hostname,
            initial_window_size=initial_window_size, auto_window=auto_window,
        ) as client:
            task_status.started(client)
            await closing.wait()
    finally:
        done.set()


def _parse_url(url: str) -> tuple[bool, str, int]:
    """``(https, host, port)`` of an ``http(s)://host[:port]`` URL."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"expected a URL like http://host:port or https://host:port, not {url!r}")
    https = parts.scheme == "https"
    return https, parts.hostname, port or (443 if https else 80)


class _PytestTrioMissing:
    """Stands in for pytest-trio's ``nursery`` fixture when pytest-trio is
    not installed or is disabled, so that h2_server and h2_client fail with
    a message that says what to do, instead of "fixture 'nursery' not found"."""

    @pytest.fixture
    def nursery(self) -> None:
        pytest.fail(
            "trio_h2's h2_server and h2_client fixtures need pytest-trio, which is not "
            "installed or is disabled (-p no:trio): pip install pytest-trio, then mark the "
            "test @pytest.mark.trio or set trio_mode = true",
            pytrace=False,
        )


def _pytest_trio_active(config: pytest.Config) -> bool:
    plugin = sys.modules.get("pytest_trio.plugin")
    return plugin is not None and config.pluginmanager.is_registered(plugin)


def pytest_configure(config: pytest.Config) -> None:
    if not _pytest_trio_active(config):
        config.pluginmanager.register(_PytestTrioMissing(), "trio_h2-pytest-trio-missing")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # pytest-trio would say "Trio fixtures can only be used by Trio tests",
    # from deep inside its machinery, without naming the fixture or the fix.
    # (h2_client uses h2_server, so name h2_client if both are in use.)
    names = getattr(item, "fixturenames", ())
    used = next((name for name in ("h2_client", "h2_server") if name in names), None)
    if used and item.get_closest_marker("trio") is None and _pytest_trio_active(item.config):
        pytest.fail(
            f"{item.name} uses {used}; trio_h2's server and client fixtures "
            "only work in trio tests: make it an async def test and mark it "
            "@pytest.mark.trio, or set trio_mode = true",
            pytrace=False,
        )


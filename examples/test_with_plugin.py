"""Testing an app with trio_h2's pytest plugin: real HTTP/2 over a real socket.

The ``h2_server`` and ``h2_client`` fixtures come with trio_h2 (a ``pytest11``
plugin, nothing to put in conftest.py); they need pytest-trio and trio mode
(``trio_mode = true`` under ``[tool.pytest.ini_options]``, as in this
repository's pyproject.toml). See docs/testing.rst.

Run from the repository root::

    python -m pytest examples/test_with_plugin.py
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from examples.raw_asgi import app
from trio_h2.testing import H2ClientFactory, H2ServerFactory


async def test_get(h2_server: H2ServerFactory, h2_client: H2ClientFactory) -> None:
    server = await h2_server(app)
    client = await h2_client(server)
    response = await client.get("/")
    assert response.status == 200
    assert response.text == "Hello from trio_h2 over HTTP/2\n"


async def test_streamed_echo(h2_server: H2ServerFactory, h2_client: H2ClientFactory) -> None:
    server = await h2_server(app)
    client = await h2_client(server)

    async def body() -> AsyncIterator[bytes]:  # sent as the server's windows allow
        for n in range(100):
            yield f"line {n}\n".encode() * 100

    response = await client.request("POST", "/echo", body=body())
    assert response.status == 200
    assert response.body == b"".join(f"line {n}\n".encode() * 100 for n in range(100))


async def test_echo_over_tls(h2_server: H2ServerFactory, h2_client: H2ClientFactory) -> None:
    server = await h2_server(app, tls=True)  # h2_client trusts the plugin's test CA
    client = await h2_client(server.url)
    response = await client.request("POST", "/echo", body=b"over TLS")
    assert response.body == b"over TLS"


async def test_unknown_path(h2_server: H2ServerFactory, h2_client: H2ClientFactory) -> None:
    server = await h2_server(app)
    client = await h2_client(server)
    assert (await client.get("/nope")).status == 404

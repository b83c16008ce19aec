"""Real Flask and Django apps behind trio_h2.WSGIApp, unchanged, over h2c,
TLS and HTTP/1.1 (curl, httpx and trio_h2's test client)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
import flask
import httpx
import pytest
import trio
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path as django_path

from tests.support.tools import CURL_TRANSPORTS, curl_for, run
from tests.support.wsgiapps import Arrivals
from trio_h2 import WSGIApp
from trio_h2.testing import H2ServerFactory

MiB = 1024 * 1024


@dataclass
class Probe:
    """What the framework apps report back to the test, from their threads."""

    slow: Arrivals = field(default_factory=Arrivals)
    release: threading.Event = field(default_factory=threading.Event)
    stream_closed: threading.Event = field(default_factory=threading.Event)

    def parts(self, count: int) -> Iterator[bytes]:
        try:
            for i in range(count):
                yield f"part {i}\n".encode()
        finally:  # GeneratorExit when the client left: the framework closed us
            self.stream_closed.set()

    def wait_released(self) -> None:
        self.slow.arrive()
        self.release.wait(30)


def upload_digest(read: Callable[[int], bytes]) -> dict[str, object]:
    digest, size = hashlib.sha256(), 0
    while data := read(64 * 1024):
        digest.update(data)
        size += len(data)
    return {"size": size, "sha256": digest.hexdigest()}


def flask_app(probe: Probe) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/")
    def home() -> str:
        return f"hello {flask.request.environ['SERVER_PROTOCOL']}"

    @app.route("/upload", methods=["POST"])
    def upload() -> dict[str, object]:
        return upload_digest(flask.request.stream.read)

    @app.route("/stream")
    def stream() -> flask.Response:
        count = int(flask.request.args.get("n", "50"))
        return flask.Response(probe.parts(count), mimetype="text/plain")

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("flask view failed")

    @app.route("/slow")
    def slow() -> str:
        probe.wait_released()
        return "slow done"

    return app


# Django is configured once per process; the views look up the current probe.
_django_probe = Probe()


def _django_home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.META['SERVER_PROTOCOL']}")


def _django_upload(request: HttpRequest) -> HttpResponse:
    return JsonResponse(upload_digest(request.read))


def _django_stream(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    count = int(request.GET.get("n", "50"))
    return StreamingHttpResponse(_django_probe.parts(count), content_type="text/plain")


def _django_boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("django view failed")


def _django_slow(request: HttpRequest) -> HttpResponse:
    _django_probe.wait_released()
    return HttpResponse("slow done")


urlpatterns = [django_path("", _django_home), django_path("upload", _django_upload),
               django_path("stream", _django_stream), django_path("boom", _django_boom),
               django_path("slow", _django_slow)]


def django_app(probe: Probe) -> Any:
    global _django_probe
    _django_probe = probe
    if not settings.configured:
        settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], DEBUG=False,
                           SECRET_KEY="test only", MIDDLEWARE=[], INSTALLED_APPS=[],
                           LOGGING_CONFIG=None)
        django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


FRAMEWORKS = {"flask": flask_app, "django": django_app}


@pytest.fixture(params=list(FRAMEWORKS))
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("transport", CURL_TRANSPORTS)
async def test_upload_stream_and_errors_through_curl(
    h2_server: H2ServerFactory, framework: str, transport: str, tmp_path: Path
) -> None:
    server = await h2_server(WSGIApp(FRAMEWORKS[framework](Probe())), tls=transport == "tls")
    curl = curl_for(server, transport, tmp_path)
    protocol = "HTTP/1.1" if transport == "http1" else "HTTP/2"
    assert await run(*curl, server.url + "/") == f"hello {protocol}"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(5 * MiB))
    out = await run(*curl, "--data-binary", f"@{payload}", server.url + "/upload")
    assert httpx.Response(200, content=out).json() == {
        "size": 5 * MiB, "sha256": hashlib.sha256(payload.read_bytes()).hexdigest()}
    assert await run(*curl, server.url + "/stream?n=200") == "".join(
        f"part {i}\n" for i in range(200))
    assert await run(*curl, "-o", "/dev/null", "-w", "%{http_code}",
                     server.url + "/boom") == "500"


async def test_httpx_h2(h2_server: H2ServerFactory, framework: str) -> None:
    server = await h2_server(WSGIApp(FRAMEWORKS[framework](Probe())), tls=True)
    payload = os.urandom(MiB)

    def fetch() -> list[httpx.Response]:
        with httpx.Client(http2=True, verify=server.client_ssl_context(), timeout=30) as client:
            return [client.get(server.url + "/"),
                    client.post(server.url + "/upload", content=payload),
                    client.get(server.url + "/stream?n=5")]

    with trio.fail_after(60):
        home, upload, stream = await trio.to_thread.run_sync(fetch)
    assert home.http_version == "HTTP/2" and home.text == "hello HTTP/2"
    assert upload.json()["sha256"] == hashlib.sha256(payload).hexdigest()
    assert stream.text == "".join(f"part {i}\n" for i in range(5))


async def test_twenty_slow_views_on_one_connection(
    h2_server: H2ServerFactory, h2_client: Any, framework: str
) -> None:
    probe = Probe()
    server = await h2_server(WSGIApp(FRAMEWORKS[framework](probe)))
    client = await h2_client(server)
    bodies: list[bytes] = []

    async def slow() -> None:
        bodies.append((await client.get("/slow")).body)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(slow)
            await probe.slow.wait_for(20)  # all 20 views are running at once
            assert (await client.get("/")).body == b"hello HTTP/2"
            assert bodies == []
            probe.release.set()
    assert bodies == [b"slow done"] * 20


async def test_client_leaving_a_stream_closes_the_framework_iterable(
    h2_server: H2ServerFactory, h2_client: Any, framework: str
) -> None:
    probe = Probe()
    server = await h2_server(WSGIApp(FRAMEWORKS[framework](probe)))
    client = await h2_client(server)
    with trio.fail_after(20):
        async with client.stream("GET", "/stream?n=100000000") as response:
            assert (await response.__anext__()).startswith(b"part 0\n")
        # Leaving the block reset the stream (CANCEL).
        assert await trio.to_thread.run_sync(probe.stream_closed.wait, 15)
        assert (await client.get("/")).body == b"hello HTTP/2"

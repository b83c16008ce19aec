"""The demo in a real browser: headless Chromium loads it and says what it used.

The priority page (``/priority``) loads resources of MiB each at high and low
priority and reads back, from the ``trio_h2.scheduler`` scope extension,
what the server sent on its connection: with priority on, every
high-priority response finishes first (by byte order on the wire), with
``?priority=off`` (round robin) not.

Over TLS with ``--self-signed`` (trusted through the SPKI hash the runner
prints), the page, its sub-resources and app.js's fetch all travel over one
HTTP/2 connection: the page's own report (the ASGI ``http_version``), the
browser's Resource Timing (``nextHopProtocol``, which app.js puts in a table)
and Chromium's net log (ALPN result, HTTP/2 sessions) must all agree. Over
plain http:// a browser speaks HTTP/1.1, which trio_h2 does not serve yet.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from tests.support.browser import PageLoad, load_page
from tests.support.processes import read_self_signed, run_server

# What the demo page loads: itself, its stylesheet, script, logo and six
# tiles, and the JSON that app.js fetches.
DEMO_RESOURCES = {"/", "/static/style.css", "/static/app.js", "/static/logo.svg",
                  *(f"/static/tile-{n}.svg" for n in range(1, 7)), "/api/info.json"}


def resource_protocols(dom: str) -> dict[str, str]:
    """``{path: protocol}`` from the table app.js fills from Resource Timing."""
    rows = re.findall(r'<tr><td class="">([^<]*)</td><td class="(?:ok)?">([^<]*)</td>', dom)
    return dict(rows)


def test_chromium_gets_the_demo_over_h2_with_self_signed(tmp_path: Path) -> None:
    (tmp_path / "chromium").mkdir()
    with run_server("--self-signed", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        run = read_self_signed(server)
        load = load_page(f"https://localhost:{run.port}/", tmp_path / "chromium",
                         spki_sha256=run.spki_sha256)
        assert server.signal_and_wait(signal.SIGTERM) == 0
    assert load.error is None
    assert '<span class="badge">HTTP/2</span>' in load.dom
    assert "https: TLS, protocol h2 chosen by ALPN" in load.dom
    assert 'class="hint"' not in load.dom
    assert resource_protocols(load.dom) == dict.fromkeys(DEMO_RESOURCES, "h2")
    assert re.search(r'<span id="same" class="ok">same connection as the page', load.dom)
    # Chromium's own account: every TLS connection chose h2 by ALPN, and all
    # requests went over one HTTP/2 session. (It may open a spare socket in
    # advance, which it then does not use: two ALPN results, one session.)
    assert load.alpn and set(load.alpn) == {"h2"}
    assert load.http2_sessions == [f"localhost:{run.port}"]


def test_chromium_without_the_spki_hash_refuses_the_certificate(tmp_path: Path) -> None:
    # The check above is only worth something if the hash is what let it in.
    (tmp_path / "chromium").mkdir()
    with run_server("--self-signed", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        run = read_self_signed(server)
        load = load_page(f"https://localhost:{run.port}/", tmp_path / "chromium")
    assert load.error == "net::ERR_CERT_AUTHORITY_INVALID"
    assert "HTTP/2" not in load.dom


def test_chromium_gets_the_demo_over_http11_on_plain_http(tmp_path: Path) -> None:
    (tmp_path / "chromium").mkdir()
    with run_server("--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        load: PageLoad = load_page(server.url + "/", tmp_path / "chromium")
        assert server.signal_and_wait(signal.SIGTERM) == 0
    assert load.error is None, load.error
    assert '<span class="badge">HTTP/1.1</span>' in load.dom
    # ... and the page says how to see HTTP/2 in a browser.
    assert "<code>python -m trio_h2 --self-signed</code>" in load.dom
    assert resource_protocols(load.dom) == dict.fromkeys(DEMO_RESOURCES, "http/1.1")
    assert load.alpn == [] and load.http2_sessions == []


def test_chromium_websocket_over_http2_and_http11(tmp_path: Path) -> None:
    """A page opens a WebSocket and writes what came back into its DOM.
    Over TLS, Chromium finds SETTINGS_ENABLE_CONNECT_PROTOCOL on its HTTP/2
    connection and opens the WebSocket as an extended CONNECT stream (RFC
    8441): the server says HTTP/2 carries it, and the net log has one HTTP/2
    session, no second connection. Over plain http://, HTTP/1.1's 101."""
    (tmp_path / "tls").mkdir()
    (tmp_path / "plain").mkdir()
    app = "tests.support.wsapps:browser_app"
    with run_server("--self-signed", "--bind", "127.0.0.1:0", app, cwd=tmp_path) as server:
        run = read_self_signed(server)
        over_tls = load_page(f"https://localhost:{run.port}/", tmp_path / "tls",
                             spki_sha256=run.spki_sha256, virtual_time=False)
    with run_server("--bind", "127.0.0.1:0", app, cwd=tmp_path) as server:
        plain = load_page(server.url + "/", tmp_path / "plain", virtual_time=False)
    assert over_tls.error is None and plain.error is None
    assert '<p id="result" data-version="2">|2|ping from the browser</p>' in over_tls.dom
    assert set(over_tls.alpn) == {"h2"}
    assert over_tls.http2_sessions == [f"localhost:{run.port}"]
    assert '<p id="result" data-version="1.1">|1.1|ping from the browser</p>' in plain.dom


def finishing_order(dom: str) -> list[tuple[str, str, int, int]]:
    """``(path, wanted, rank, last byte's position)`` per row of the page's #order table."""
    rows = re.findall(r'<tr class="\w+" data-path="([^"]+)" data-wanted="(\w+)" '
                      r'data-rank="(\d+)" data-last-byte-at="(\d+)">', dom)
    return [(path, wanted, int(rank), int(at)) for path, wanted, rank, at in rows]


def test_chromium_priority_page_high_first_with_priority_and_not_without(
        tmp_path: Path) -> None:
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    with run_server("--self-signed", "--bind", "127.0.0.1:0", "--log-level", "info",
                    cwd=tmp_path) as server:
        run = read_self_signed(server)
        url = f"https://localhost:{run.port}/priority"
        on = load_page(url, tmp_path / "on", spki_sha256=run.spki_sha256)
        off = load_page(url + "?priority=off", tmp_path / "off", spki_sha256=run.spki_sha256)
        assert server.signal_and_wait(signal.SIGTERM) == 0
        log = server.stderr.rest()
    assert on.error is None and off.error is None
    assert on.http2_sessions == [f"localhost:{run.port}"]
    high = {"/priority/r/style.css", "/priority/r/script.js", "/priority/r/high.bin",
            "/priority/r/late.bin"}
    for load, verdict in ((on, "high-first"), (off, "mixed")):
        assert f'<p id="verdict" data-verdict="{verdict}"' in load.dom
        order = finishing_order(load.dom)
        assert [rank for _, _, rank, _ in order] == list(range(1, 9))
        assert [at for *_, at in order] == sorted(at for *_, at in order)
        assert {path for path, wanted, *_ in order if wanted == "high"} == high
        assert load.dom.count('src="/priority/r/image-') == 3  # the BMPs decoded
    # With priority: the stylesheet (the most urgent) first, and the high
    # fetch requested at the start before any low-priority response.
    ranks = {path: rank for path, _, rank, _ in finishing_order(on.dom)}
    assert ranks["/priority/r/style.css"] == 1
    assert ranks["/priority/r/high.bin"] < min(rank for path, rank in ranks.items()
                                               if path not in high)
    # Without: a 3 MiB low-priority image ends before the 4 MiB high fetch.
    ranks = {path: rank for path, _, rank, _ in finishing_order(off.dom)}
    assert ranks["/priority/r/image-1.bmp"] < ranks["/priority/r/high.bin"]
    # The server logged which signals Chromium sent (both schemes, in 2025's Chromium).
    assert log.count("priority page: ") == 2
    assert re.search(r"style\.css \(stream \d+\): priority field ('u=0'|None), RFC 7540 "
                     r"(weight 256|none)", log), log

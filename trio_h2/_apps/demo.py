"""The demo app ``python -m trio_h2`` serves when no MODULE:APP is given.

A plain ASGI 3 application with no dependencies. ``/`` is an HTML page that
shows what the ASGI scope says about the request (HTTP version, scheme,
client and server addresses, ...) and pulls a stylesheet, a script and a
few SVG images from ``/static/``; the script fetches ``/api/info.json`` and
lists, from the browser's Resource Timing, which protocol each sub-resource
came over. All of it is served by this module, so a browser (or
``nghttp -a``) fetches everything over one HTTP/2 connection; over HTTP/1.1
it is the same page, fetched over the browser's several connections. Other
paths get 404, other methods than GET and HEAD 405. A page that did not come
over HTTP/2 says how to see HTTP/2 in a browser (over TLS: ``--self-signed``).
``/priority`` shows the connection's scheduler at work (``priority_page``).

The only state is a count of requests per client address (which identifies
a connection while it is open), bounded at :data:`MAX_TRACKED_CLIENTS`, and
what admits ``/priority/record.json`` (``priority_page.RecordGate``): the
connections whose record is being sent, and a token bucket.
"""

from __future__ import annotations

import html
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, final

from . import priority_page
from .asgi import Receive, Scope, Send
from .lifespan import answer_lifespan

__all__ = ["DemoApp"]

# Forgetting the oldest client addresses past this bounds the counter's
# memory for a demo left running; 1024 open connections is plenty for a demo.
MAX_TRACKED_CLIENTS = 1024
TILES = 6

# Everything the page uses comes from this app; nothing inline, nothing
# third-party, so the policy can be strict.
_SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # So every reload shows the sub-resources travelling over the wire again.
    (b"cache-control", b"no-store"),
]


@final
@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    content_type: str
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@final
class DemoApp:
    """The demo ASGI 3 application (see the module docstring).

    Answers the lifespan protocol; raises :exc:`ValueError` for scope types
    other than ``http`` and ``lifespan`` (the server logs it and closes that
    scope, as ASGI asks).
    """

    def __init__(self) -> None:
        self._requests: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._records = priority_page.RecordGate()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"the trio_h2 demo app does not handle {scope['type']!r} scopes")
        if priority_page.handles(scope["path"]) and scope["method"] in ("GET", "HEAD"):
            await priority_page.serve(scope, receive, send, _SECURITY_HEADERS,
                                      self._records)
            return
        response = self.respond(scope)
        headers = [(b"content-type", response.content_type.encode()),
                   (b"content-length", str(len(response.body)).encode()),
                   *_SECURITY_HEADERS, *response.headers]
        await send({"type": "http.response.start", "status": response.status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    def respond(self, scope: Scope) -> _Response:
        """The response to the request ``scope`` describes (pure but for the count)."""
        path: str = scope["path"]
        number = self._count(scope.get("client"))
        static = _STATIC.get(path)
        if static is None and path not in ("/", "/api/info.json"):
            return _Response(404, "text/plain; charset=utf-8",
                             f"404 Not Found: {path}\n".encode("utf-8", "surrogateescape"))
        if scope["method"] not in ("GET", "HEAD"):
            return _Response(405, "text/plain; charset=utf-8", b"405 Method Not Allowed\n",
                             [(b"allow", b"GET, HEAD")])
        if static is not None:
            content_type, body = static
            return _Response(200, content_type, body)
        info = _info(scope, number)
        if path == "/":
            return _Response(200, "text/html; charset=utf-8", _page(info).encode())
        return _Response(200, "application/json",
                         json.dumps(info, indent=2).encode() + b"\n")

    def _count(self, client: object) -> int:
        """This request's number among those from the same client address."""
        if not isinstance(client, tuple | list) or len(client) != 2:
            return 0
        key = (str(client[0]), int(client[1]))
        number = self._requests.pop(key, 0) + 1
        self._requests[key] = number
        while len(self._requests) > MAX_TRACKED_CLIENTS:
            self._requests.popitem(last=False)
        return number


def _address(address: object) -> str | None:
    if not isinstance(address, tuple | list) or len(address) != 2:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _info(scope: Scope, number: int) -> dict[str, Any]:
    """What the scope tells about this request, as JSON-ready values."""
    return {
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "method": scope["method"],
        "path": scope["path"],
        "authority": _header(scope, b"host"),
        "client": _address(scope.get("client")),
        "server": _address(scope.get("server")),
        "request_on_this_connection": number,
        "asgi": scope.get("asgi", {}),
        "extensions": sorted(scope.get("extensions") or {}),
        "user_agent": _header(scope, b"user-agent"),
    }


def _page(info: dict[str, Any]) -> str:
    tls = info["scheme"] == "https"
    http2 = info["http_version"] == "2"
    if http2:
        transport = ("TLS, protocol h2 chosen by ALPN" if tls
                     else "cleartext h2c, with prior knowledge (no Upgrade)")
    else:
        transport = ("TLS, HTTP/1.1 (ALPN http/1.1, or none)" if tls
                     else "cleartext HTTP/1.x")
    asgi = info["asgi"]
    rows = [
        ("Protocol", f"HTTP/{info['http_version']} (ASGI http_version "
                     f"{json.dumps(info['http_version'])})"),
        ("Transport", f"{info['scheme']}: {transport}"),
        ("Request", f"{info['method']} {info['path']}"),
        ("Authority", info["authority"] or "(none)"),
        ("Client", info["client"] or "(unknown)"),
        ("Server", info["server"] or "(unknown)"),
        ("Connection", f"request #{info['request_on_this_connection']} "
                       "from this client address"),
        ("ASGI", f"{asgi.get('version', '?')} (spec {asgi.get('spec_version', '?')})"),
        ("Extensions", ", ".join(info["extensions"]) or "(none)"),
        ("User agent", info["user_agent"] or "(none)"),
    ]
    table = "\n".join(f"      <dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>"
                      for name, value in rows)
    tiles = "\n".join(
        f'      <img src="/static/tile-{n}.svg" alt="tile {n}" width="72" height="72">'
        for n in range(1, TILES + 1))
    client = html.escape(info["client"] or "", quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>trio_h2 demo</title>
  <link rel="icon" href="/static/logo.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/style.css">
  <script src="/static/app.js" defer></script>
</head>
<body data-client="{client}">
  <header>
    <img src="/static/logo.svg" alt="" width="56" height="56">
    <div>
      <h1>trio_h2 is serving you over <span class="badge">HTTP/{
          html.escape(str(info['http_version']))}</span></h1>
      <p>An HTTP/2 (and HTTP/1.1) server for trio, running its built-in ASGI demo app.</p>{
          "" if http2 else _NOT_HTTP2_TLS if tls else _NOT_HTTP2}
    </div>
  </header>
  <main>
    <section class="card">
      <h2>This request, as the ASGI scope tells it</h2>
      <dl>
{table}
      </dl>
    </section>
    <section class="card">
      <h2>Fetched by JavaScript</h2>
      <p>app.js asked for <code>/api/info.json</code>:
        <span id="same">waiting&hellip;</span></p>
      <pre id="info">loading&hellip;</pre>
      <button id="again" type="button">Fetch again</button>
    </section>
    <section class="card wide">
      <h2>Sub-resources</h2>
      <p>Served by the demo app and multiplexed on this page's connection.</p>
      <div class="tiles">
{tiles}
      </div>
      <table id="resources">
        <thead><tr><th>Resource</th><th>Protocol (as the browser saw it)</th>
          <th class="num">Time</th></tr></thead>
        <tbody><tr><td colspan="3">filled in by app.js</td></tr></tbody>
      </table>
    </section>
  </main>
  <footer>
    See <a href="/priority">priority at work</a>.
    Serve your own app with <code>python -m trio_h2 module:app</code>.
    This page comes from <code>trio_h2/_apps/demo.py</code>.
  </footer>
</body>
</html>
"""


# Browsers speak HTTP/2 only over TLS (none does h2c), so a browser on http://
# gets HTTP/1.1: say how to see HTTP/2.
_NOT_HTTP2 = """
      <p class="hint">Browsers use HTTP/2 only over TLS. To see this page over HTTP/2, run
        <code>python -m trio_h2 --self-signed</code> and open the https:// address it
        prints.</p>"""
_NOT_HTTP2_TLS = """
      <p class="hint">Your client did not choose h2 when the TLS connection was set up
        (ALPN).</p>"""

_CSS = """\
:root {
  color-scheme: light dark;
  --bg: #f5f6fa; --card: #ffffff; --text: #1d2330; --muted: #5b6475;
  --accent: #5b4cdb; --border: #e2e5ee; --ok: #00875f; --warn: #b35c00;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #12151c; --card: #1b2029; --text: #e8ebf2; --muted: #9aa3b5;
    --accent: #a29bfe; --border: #2a303c; --ok: #4cd6a8; --warn: #ffb86b;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
header, main, footer { max-width: 980px; margin: 0 auto; padding-inline: 1.5rem; }
header { display: flex; align-items: center; gap: 1rem; padding-block: 2rem 1.25rem; }
header h1 { margin: 0; font-size: 1.6rem; line-height: 1.25; }
header p { margin: .25rem 0 0; color: var(--muted); }
main {
  display: grid; gap: 1.25rem; padding-bottom: 1.5rem;
  grid-template-columns: repeat(auto-fit, minmax(320px, 1fr));
}
.card {
  background: var(--card); border: 1px solid var(--border); border-radius: 14px;
  padding: 1.25rem 1.5rem; box-shadow: 0 1px 2px rgb(0 0 0 / 4%);
}
.card.wide { grid-column: 1 / -1; }
h2 { margin: 0 0 .75rem; font-size: 1.05rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; word-break: break-word; }
code, pre, dd { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
dd, pre, code { font-size: .88rem; }
pre {
  background: var(--bg); border-radius: 8px; padding: .75rem 1rem; margin: .5rem 0 1rem;
  overflow-x: auto; max-height: 18rem;
}
button {
  font: inherit; padding: .4rem 1rem; border-radius: 8px; cursor: pointer;
  border: 1px solid var(--accent); background: transparent; color: var(--accent);
}
button:hover { background: var(--accent); color: var(--card); }
.badge {
  display: inline-block; padding: 0 .6rem; border-radius: 999px;
  background: var(--accent); color: #fff;
}
.ok { color: var(--ok); font-weight: 600; }
.hint { color: var(--warn); }
.warn { color: var(--warn); font-weight: 600; }
.tiles { display: flex; flex-wrap: wrap; gap: .75rem; margin: .75rem 0 1rem; }
.tiles img { display: block; border-radius: 16px; }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--border); }
th { color: var(--muted); font-weight: 500; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { color: var(--muted); font-size: .85rem; padding-bottom: 2rem; }
"""

_JS = """\
"use strict";

// Ask the server about this request; it arrives on the page's connection.
async function fetchInfo() {
  const out = document.getElementById("info");
  const same = document.getElementById("same");
  try {
    const response = await fetch("/api/info.json", { cache: "no-store" });
    const info = await response.json();
    out.textContent = JSON.stringify(info, null, 2);
    if (info.client && info.client === document.body.dataset.client) {
      same.textContent = "same connection as the page (request #" +
        info.request_on_this_connection + " from " + info.client + ")";
      same.className = "ok";
    } else {
      same.textContent = "another connection (" + info.client + ")";
      same.className = "warn";
    }
  } catch (error) {
    out.textContent = "fetch failed: " + error;
  }
  showResources();
}

// Which protocol the browser used for the page and each sub-resource.
function showResources() {
  const entries = [
    ...performance.getEntriesByType("navigation"),
    ...performance.getEntriesByType("resource"),
  ];
  const rows = entries.map((entry) => {
    const row = document.createElement("tr");
    const url = new URL(entry.name);
    for (const [text, cls] of [
      [url.pathname + url.search, ""],
      [entry.nextHopProtocol || "(not reported)", entry.nextHopProtocol === "h2" ? "ok" : ""],
      [Math.round(entry.duration) + " ms", "num"],
    ]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      cell.className = cls;
      row.append(cell);
    }
    return row;
  });
  document.querySelector("#resources tbody").replaceChildren(...rows);
}

document.getElementById("again").addEventListener("click", fetchInfo);
window.addEventListener("load", fetchInfo);
"""

_LOGO = """\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">
  <title>trio_h2</title>
  <g fill-opacity="0.82">
    <circle cx="32" cy="23" r="15" fill="#5b4cdb"/>
    <circle cx="22" cy="40" r="15" fill="#00b38a"/>
    <circle cx="42" cy="40" r="15" fill="#0a84e0"/>
  </g>
</svg>
"""


def _tile(number: int) -> str:
    hue = (number - 1) * 360 // TILES
    return f"""\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 96" width="96" height="96">
  <defs>
    <linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
      <stop offset="0" stop-color="hsl({hue}, 75%, 62%)"/>
      <stop offset="1" stop-color="hsl({hue + 35}, 70%, 42%)"/>
    </linearGradient>
  </defs>
  <rect width="96" height="96" rx="20" fill="url(#g)"/>
  <circle cx="48" cy="48" r="30" fill="#fff" fill-opacity="0.16"/>
  <text x="48" y="62" text-anchor="middle" fill="#fff" font-size="40" font-weight="700"
        font-family="system-ui, sans-serif">{number}</text>
</svg>
"""


# path -> (content type, body)
_STATIC: dict[str, tuple[str, bytes]] = {
    "/static/style.css": ("text/css; charset=utf-8", _CSS.encode()),
    "/static/app.js": ("text/javascript; charset=utf-8", _JS.encode()),
    "/static/logo.svg": ("image/svg+xml", _LOGO.encode()),
    **{f"/static/tile-{n}.svg": ("image/svg+xml", _tile(n).encode())
       for n in range(1, TILES + 1)},
}

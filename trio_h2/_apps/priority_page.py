"""The demo's priority page: ``/priority`` (and ``/priority?priority=off``).

The page loads a mix of generated resources that are big enough (MiB each)
for their transfers to overlap: a stylesheet, a script and ``fetch()`` calls
the browser sends as high priority, images and a ``fetch()`` it sends as
low, and a late high-priority ``fetch()`` issued 50 ms after the others.
Low ones are requested first. When all have arrived, the page's script
(``static/priority.js``) fetches ``/priority/record.json``: what this
connection's sender sent, frame by frame, from the ``trio_h2.scheduler``
scope extension, with each resource's finishing position in the
connection's bytes and the verdict (:func:`summarize`). It draws that as a
waterfall.

``/priority`` starts the connection's record afresh and honours priorities;
``?priority=off`` makes the scheduler ignore them for this connection
(round robin). Over HTTP/1.1 there is no scheduler: the page says so.
"""

from __future__ import annotations

import html
import json
import logging
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, final

from .._core.limits import Budget, TokenBucket
from .._core.sendlog import SchedulerControl, SendRecord
from .._io.connection import SEND_BATCH
from .asgi import Receive, Scope, Send

log = logging.getLogger("trio_h2")

MiB = 1 << 20
# Each body goes out in pieces of this size: several frames per hand-over,
# and the scheduler decides before each frame (one piece, never the whole body).
CHUNK = 64 * 1024
# The images: 24-bit BMPs, which browsers decode without a library here.
IMAGE_SIDE = 1024  # 1024 x 1024 x 3 bytes: 3 MiB
IMAGE_HUES = (200, 265, 330)
# A low-priority response may still finish before a high-priority one whose
# request arrived when it had this little left: one batch being written
# (SEND_BATCH, 128 KiB) and one framed before the new stream's handler
# offered its first chunk. The scheduler had no say over these bytes.
COMMITTED = 2 * SEND_BATCH


@final
@dataclass(frozen=True, slots=True)
class Resource:
    """One thing the page loads. ``wanted``: the priority the page asks the
    browser for (``high`` or ``low``); the browser's own signals are in the record."""

    name: str
    label: str
    how: str
    wanted: str
    content_type: str
    size: int
    hue: int = 0
    """Images: the hue of their gradient."""

    @property
    def path(self) -> str:
        return f"/priority/r/{self.name}"


def _image_size(side: int) -> int:
    return 54 + _row_bytes(side) * side


def _row_bytes(side: int) -> int:
    return (side * 3 + 3) // 4 * 4


# In the order the page requests them: the low ones first (the browser may
# send them in its own order). Sizes such that, shared round robin, an image
# (3 MiB) finishes before the big high fetch (4 MiB); 21 MiB in all.
RESOURCES = (
    Resource("low.bin", "fetch(), priority: \"low\"", "fetch", "low",
             "application/octet-stream", 4 * MiB),
    *(Resource(f"image-{n}.bmp", f"image {n}, fetchpriority=\"low\"", "img", "low",
               "image/bmp", _image_size(IMAGE_SIDE), hue)
      for n, hue in enumerate(IMAGE_HUES, 1)),
    Resource("style.css", "stylesheet", "css", "high", "text/css; charset=utf-8",
             1 * MiB),
    Resource("script.js", "script, fetchpriority=\"high\"", "script", "high",
             "text/javascript; charset=utf-8", 3 * MiB // 2),
    Resource("high.bin", "fetch(), priority: \"high\"", "fetch", "high",
             "application/octet-stream", 4 * MiB),
    Resource("late.bin", "fetch(), priority: \"high\", issued late", "late", "high",
             "application/octet-stream", 3 * MiB // 2),
)
_BY_PATH = {resource.path: resource for resource in RESOURCES}

RECORD_PATH = "/priority/record.json"
# Building a record.json costs up to 40 ms of CPU (a full record: sendlog's
# MAX_SENDS frames and MAX_STREAMS notes, measured on a loaded 2-core
# machine), for a HEAD of a few bytes; a page load asks for one. So the
# server builds at most this many at once and then this many a second, for
# all connections: a browser's page loads never meet it, and clients that
# ask in a loop cost at most a sixth of a core. Past it, 429.
RECORD_BUDGET = Budget(burst=16, per_second=4)
# The log line of each record.json names the first request of each of the
# page's resources, its priority field cut to this many characters: Chromium
# sends "u=0" to "u=4, i", and a line costs what an access-log line does, not
# MAX_STREAMS x MAX_PATH bytes (77 KB a line, measured, for a HEAD of a few
# bytes).
FIELD_LOGGED = 40

_STATIC = {"/priority/page.css": ("priority.css", "text/css; charset=utf-8"),
           "/priority/page.js": ("priority.js", "text/javascript; charset=utf-8")}


def handles(path: str) -> bool:
    return path == "/priority" or path.startswith("/priority/")


@final
class RecordGate:
    """Who may have :data:`RECORD_PATH` built now; one per server (the
    demo app's), shared by its connections.

    * One at a time per connection. The JSON is built whole before it is
      sent, up to ~0.7 MB (MAX_SENDS frames, and MAX_STREAMS notes of
      MAX_PATH bytes each, JSON-escaped), and held until the client has
      taken it: a client that asked on every stream and never read held
      max_concurrent_streams of them until send_timeout (measured: 53 MB a
      connection from 40 KB of requests). One at a time, a connection holds
      one, as it holds one record (the log).
    * :data:`RECORD_BUDGET` for the whole server, for the CPU.
    """

    __slots__ = ("_bucket", "_refusing", "_sending")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sending: set[SchedulerControl] = set()
        self._bucket = TokenBucket(RECORD_BUDGET, clock)
        self._refusing = False

    def admit(self, control: SchedulerControl, client: object) -> bool:
        """Whether ``control``'s connection may have its record built now;
        if so, :meth:`done` follows once it is sent. A refusal is logged
        once, when refusals begin."""
        if control in self._sending:
            why = "asked for again while the last is still being sent on this connection"
        elif not self._bucket.spend():
            why = (f"asked for more than {RECORD_BUDGET.per_second:g} a second "
                   f"(burst {RECORD_BUDGET.burst}) on this server")
        else:
            self._sending.add(control)
            self._refusing = False
            return True
        if not self._refusing:
            log.info("%s: priority page: %s %s: 429 until it is served again", client,
                     RECORD_PATH, why)
            self._refusing = True
        return False

    def done(self, control: SchedulerControl) -> None:
        self._sending.discard(control)


async def serve(scope: Scope, receive: Receive, send: Send,
                headers: list[tuple[bytes, bytes]], records: RecordGate) -> None:
    """Answer a GET or HEAD for one of the page's paths (``handles``);
    ``headers`` go on every response; ``records`` admits each
    :data:`RECORD_PATH` (the caller keeps it across requests)."""
    path: str = scope["path"]
    control: SchedulerControl | None = scope["extensions"].get("trio_h2.scheduler")
    if path == "/priority":
        off = b"priority=off" in scope["query_string"].split(b"&")
        if control is not None:
            control.ignore_priorities(off)
            control.start_recording()
        await _send(send, 200, "text/html; charset=utf-8", headers,
                    [_page(control is not None, off).encode()])
    elif path == RECORD_PATH and control is not None:
        if not records.admit(control, scope.get("client")):
            await _send(send, 429, "text/plain; charset=utf-8", headers,
                        [b"429 Too Many Requests: try again in a moment\n"])
            return
        try:
            await _send_record(send, headers, control.record())
        finally:
            records.done(control)
    elif path == RECORD_PATH:  # not HTTP/2: nothing recorded
        await _send_record(send, headers, None)
    elif path in _STATIC:
        name, content_type = _STATIC[path]
        body_bytes = files(__package__).joinpath("static").joinpath(name).read_bytes()
        await _send(send, 200, content_type, headers, [body_bytes])
    elif path in _BY_PATH:
        resource = _BY_PATH[path]
        await _send(send, 200, resource.content_type, headers, _body(resource),
                    size=resource.size)
    else:
        await _send(send, 404, "text/plain; charset=utf-8", headers, [b"404 Not Found\n"])


async def _send_record(send: Send, headers: list[tuple[bytes, bytes]],
                       record: SendRecord | None) -> None:
    body = {"record": None if record is None else record.to_json(),
            "summary": None if record is None else summarize(record)}
    if record is not None:
        log.info("priority page: %s", describe_signals(record))
    await _send(send, 200, "application/json", headers, [json.dumps(body).encode()])


async def _send(send: Send, status: int, content_type: str, headers: list[tuple[bytes, bytes]],
                chunks: Iterator[bytes] | list[bytes], *, size: int | None = None) -> None:
    if size is None:
        chunks = list(chunks)
        size = sum(map(len, chunks))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(size).encode()), *headers]})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


# ------------------------------------------------------------------ bodies

def _body(resource: Resource) -> Iterator[bytes]:
    """``resource.size`` bytes in pieces of :data:`CHUNK`, made as they go
    (nothing stored). The stylesheet and the script are one comment, which
    costs the browser next to nothing to parse."""
    if resource.how == "img":
        yield from _bmp(resource.hue, IMAGE_SIDE)
        return
    head, tail = (b"/*\n", b"\n*/\n") if resource.how in ("css", "script") else (b"", b"")
    line = b"trio_h2 priority demo: filler that makes this response big enough to watch\n"
    filler = (line * (CHUNK // len(line) + 1))[:CHUNK]
    size = resource.size
    for start in range(0, size, CHUNK):
        piece = filler[:min(CHUNK, size - start)]
        if start == 0:
            piece = head + piece[len(head):]
        if start + CHUNK >= size:
            piece = piece[:len(piece) - len(tail)] + tail
        yield piece


def _bmp(hue: int, side: int) -> Iterator[bytes]:
    """A ``side`` x ``side`` 24-bit BMP, a gradient across ``hue`` (every
    row alike, bottom-up as BMP stores them), in pieces of about :data:`CHUNK`."""
    row_size = _row_bytes(side)
    pixels = row_size * side
    yield (b"BM" + struct.pack("<IHHI", 54 + pixels, 0, 0, 54)
           + struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, pixels, 2835, 2835, 0, 0))
    row = bytearray()
    for x in range(side):
        red, green, blue = _hsl(hue + 60 * x // side, 0.7, 0.35 + 0.3 * x / side)
        row += bytes((blue, green, red))
    row += bytes(row_size - len(row))
    rows_per_piece = max(CHUNK // row_size, 1)
    piece = bytes(row) * rows_per_piece
    whole, rest = divmod(side, rows_per_piece)
    for _ in range(whole):
        yield piece
    if rest:
        yield bytes(row) * rest


def _hsl(hue: int, saturation: float, lightness: float) -> tuple[int, int, int]:
    chroma = (1 - abs(2 * lightness - 1)) * saturation
    h = (hue % 360) / 60
    x = chroma * (1 - abs(h % 2 - 1))
    red, green, blue = [(chroma, x, 0.0), (x, chroma, 0.0), (0.0, chroma, x),
                        (0.0, x, chroma), (x, 0.0, chroma), (chroma, 0.0, x)][int(h)]
    m = lightness - chroma / 2
    return (round((red + m) * 255), round((green + m) * 255), round((blue + m) * 255))


# ----------------------------------------------------------------- verdict

def summarize(record: SendRecord) -> dict[str, Any]:
    """Each of the page's resources in the record: where in the connection's
    bytes its request arrived and its first and last DATA went out, and its
    place in the finishing order; and the verdict.

    The verdict is ``high-first`` if every high-priority response finished
    (by byte order, not time) before every low-priority one that was still
    more than :data:`COMMITTED` bytes from its end when the high one's request
    arrived; ``mixed`` if not; ``incomplete`` if a resource is missing."""
    paths = {note.stream_id: note.path for note in record.streams}
    opened = {note.stream_id: note.opened_at for note in record.streams}
    position = 0
    seen: dict[str, dict[str, Any]] = {}
    arrivals = sorted((time, stream_id) for stream_id, time in opened.items())
    arrived_at: dict[int, int] = {}
    for sent in record.sends:
        while arrivals and arrivals[0][0] < sent.time:
            arrived_at[arrivals.pop(0)[1]] = position
        position += sent.size
        resource = _BY_PATH.get(paths.get(sent.stream_id, ""))
        if resource is None:
            continue
        entry = seen.setdefault(resource.path, {
            "path": resource.path, "label": resource.label, "wanted": resource.wanted,
            "size": resource.size, "stream_id": sent.stream_id, "bytes": 0,
            "arrived_at": arrived_at.get(sent.stream_id, position - sent.size),
            "first_byte_at": position - sent.size, "first_time": sent.time})
        entry["bytes"] += sent.size
        entry["last_byte_at"], entry["last_time"] = position, sent.time
    done = [entry for entry in seen.values() if entry["bytes"] >= entry["size"]]
    done.sort(key=lambda entry: entry["last_byte_at"])
    for rank, entry in enumerate(done, 1):
        entry["rank"] = rank
    if len(done) < len(RESOURCES):
        verdict = "incomplete"
    else:
        high = [e for e in done if e["wanted"] == "high"]
        low = [e for e in done if e["wanted"] == "low"]
        overtaken = any(down["last_byte_at"] < up["last_byte_at"]
                        and down["last_byte_at"] - up["arrived_at"] > COMMITTED
                        for up in high for down in low)
        verdict = "mixed" if overtaken else "high-first"
    return {"verdict": verdict, "resources": done, "total_bytes": position}


def describe_signals(record: SendRecord) -> str:
    """One line: the priority signals the first request of each of the
    page's resources carried (fields cut to :data:`FIELD_LOGGED` characters)."""
    parts = []
    described: set[Resource] = set()
    for note in record.streams:
        resource = _BY_PATH.get(note.path)
        if resource is None or resource in described:
            continue
        described.add(resource)
        field = note.priority_field
        if field is not None and len(field) > FIELD_LOGGED:
            field = field[:FIELD_LOGGED] + "..."
        rfc7540 = ("none" if note.rfc7540 is None else
                   f"weight {note.rfc7540.weight} on {note.rfc7540.depends_on}"
                   f"{' exclusive' if note.exclusive else ''}")
        parts.append(f"{resource.name} (stream {note.stream_id}): priority field "
                     f"{field!r}, RFC 7540 {rfc7540}")
    return "; ".join(parts) or "no request of the page recorded"


# -------------------------------------------------------------------- page

def _page(http2: bool, off: bool) -> str:
    mode = "off" if off else "on"
    items = "\n".join(
        f'        <li data-path="{r.path}" data-how="{r.how}" data-wanted="{r.wanted}"'
        f' data-size="{r.size}">{html.escape(r.label)}</li>' for r in RESOURCES)
    other = "/priority" if off else "/priority?priority=off"
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>trio_h2: priority at work</title>
  <link rel="icon" href="/static/logo.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/style.css">
  <link rel="stylesheet" href="/priority/page.css">
  <script src="/priority/page.js" defer></script>
</head>
<body data-priority="{mode}" data-http2="{'yes' if http2 else 'no'}">
  <header>
    <img src="/static/logo.svg" alt="" width="48" height="48">
    <div>
      <h1>Priority at work <span class="badge {mode}">priority {mode}</span></h1>
      <p>What this connection's sender sent, frame by frame, while your browser loaded
        {len(RESOURCES)} resources of 1 to 4 MiB at once.
        <a href="{other}">Load it with priority {"on" if off else "off"}</a>.</p>
    </div>
  </header>
  <main>
    <section class="card wide">
      <p id="status">{"loading&hellip;" if http2 else _NOT_HTTP2}</p>
      <p id="verdict" data-verdict="pending"></p>
      <div id="waterfall"></div>
      <p id="scheme" class="note"></p>
    </section>
    <section class="card wide">
      <h2>How to read it</h2>
      <p>Each row is one response; each coloured block is DATA that trio_h2's sender
        put on the wire for it, placed by where those bytes fall in everything the
        connection sent (the axis below; above it, when each MiB went out), coloured by
        the urgency the browser asked for (RFC 9218: 0 is the most urgent). The dotted
        line starts where the request arrived. Rows are in the order the browser sent
        its requests. The page asks for the low-priority resources first, then the high
        ones, and one more high-priority fetch 50 ms later.</p>
      <p>With priority on, trio_h2's scheduler picks the stream before every DATA frame:
        the high-priority responses go out first, and the late one overtakes the low
        ones already under way. With priority off (<code>?priority=off</code>), the
        scheduler ignores what the browser asked for and serves the ready streams round
        robin, one 16 KiB turn each in the order they became ready: everything crawls
        along together, and the first requested finish first.</p>
      <ol id="resources">
{items}
      </ol>
    </section>
  </main>
  <footer>trio_h2's demo app: <code>trio_h2/_apps/priority_page.py</code>.
    <a href="/">The demo's start page</a>.</footer>
</body>
</html>
"""


_NOT_HTTP2 = """This page needs HTTP/2, where one connection carries every response and
        trio_h2's scheduler decides between them. Browsers use HTTP/2 only over TLS: run
        <code>python -m trio_h2 --self-signed</code> and open the https:// address it prints,
        at <code>/priority</code>."""

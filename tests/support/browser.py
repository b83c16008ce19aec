"""Headless Chromium as a test client: load a URL, get back the DOM and what
Chromium's network log says about the connections it made.

One Chromium run per call, with a throwaway profile, no background traffic
(no QUIC, sync, component updates or first-run pages), and a deadline: on
timeout its whole process group is killed and the test fails. Running as
root (as in a container) needs ``--no-sandbox``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.tools import require_tool

# A load of the demo takes about 2 s here; this is a liveness bound on a
# loaded 2-core machine, not a speed test.
CHROMIUM_TIMEOUT = 60.0
# --dump-dom prints the DOM at the load event, before app.js's fetch of
# /api/info.json and its table of protocols. Virtual time only advances while
# nothing is loading, so this budget waits for the fetch, not for 20 s; a
# WebSocket's round trip does not hold virtual time back, so the budget is
# what it gets on a loaded machine (5 s was not always enough).
VIRTUAL_TIME_BUDGET_MS = 20000

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass(frozen=True)
class PageLoad:
    """What one headless Chromium run saw."""

    dom: str
    """The DOM after scripts ran (empty if the load failed)."""
    error: str | None
    """Chromium's network error (``net::ERR_...``) if the page failed to load."""
    alpn: list[str]
    """The protocol each TLS connection negotiated by ALPN, from the net log."""
    http2_sessions: list[str]
    """The ``host:port`` of each HTTP/2 session Chromium opened, from the net log."""


def load_page(url: str, directory: Path, *, spki_sha256: str | None = None,
              virtual_time: bool = True) -> PageLoad:
    """Load ``url`` in headless Chromium and return what it saw.

    ``directory`` (empty, the test's own) holds the profile and the net log.
    ``spki_sha256`` is the base64 SHA-256 of a certificate's public key to
    accept although no CA vouches for it (``--self-signed`` prints it).
    ``virtual_time``: dump the DOM once the page's virtual time budget has
    run (its scripts' timers, fetches); otherwise at the load event, which a
    page can hold with a subresource it answers when its work is done
    (Chromium defers some of a page's work, WebSocket messages among it,
    while a fetch holds its virtual time). Missing Chromium skips the test
    (fails it under CI=true); a run past :data:`CHROMIUM_TIMEOUT` fails it.
    """
    chromium = require_tool("chromium", "chromium")
    net_log = directory / "net-log.json"
    command = [chromium, *FLAGS, f"--user-data-dir={directory / 'profile'}",
               f"--log-net-log={net_log}"]
    if virtual_time:
        command.append(f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}")
    if spki_sha256 is not None:
        command.append(f"--ignore-certificate-errors-spki-list={spki_sha256}")
    # Its own session, so that a timeout kills the renderers and helpers too.
    process = subprocess.Popen([*command, "--dump-dom", url], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        dom, log = process.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish loading {url} within {CHROMIUM_TIMEOUT}s")
    failed = re.search(r"Page load failed: (net::\w+)", log)
    events = _net_log_events(net_log)
    return PageLoad(
        dom=dom,
        error=failed[1] if failed else None,
        alpn=[str(params["next_proto"]) for name, params in events
              if name == "SSL_CONNECT" and "next_proto" in params],
        # The session's begin event names the host; its end event has no params.
        http2_sessions=[str(params["host"]) for name, params in events
                        if name == "HTTP2_SESSION" and "host" in params],
    )


def _net_log_events(path: Path) -> list[tuple[str, dict[str, object]]]:
    """``(event type name, params)`` for each event of a Chromium net log."""
    log = json.loads(path.read_text())
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    return [(names[event["type"]], event.get("params", {})) for event in log["events"]]

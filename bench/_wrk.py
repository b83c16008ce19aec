"""Run wrk for a fixed time and read its summary: the HTTP/1.1 loads.

wrk, not ``h2load --h1``: h2load miscounts responses whose reason phrase is
empty, which h11 (Hypercorn, uvicorn) sends. One wrk thread (``-t 1``), as
h2load runs one: on a 2-core machine the server has the other core.
Connections are kept alive, one request at a time on each (wrk does not
pipeline).

wrk has no warm-up time, so :func:`run` runs it twice, for the warm-up and
then for the measured period, on new connections each time; its durations
are whole seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench._loadgen import LoadResult
from bench._loadgen import run as run_tool

# "  5000 requests in 4.00s, 560.55KB read", then "Requests/sec:   1249.51",
# which wrk divides by the time it ran, not by the -d it was given.
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE)
# wrk counts statuses over 399 under this name.
_ERROR_STATUS = re.compile(r"^\s*Non-2xx or 3xx responses: (\d+)", re.MULTILINE)


def upload_script(directory: Path, size: int) -> Path:
    """A wrk script that POSTs ``size`` bytes (wrk adds the content-length)."""
    script = directory / "upload.lua"
    script.write_text('wrk.method = "POST"\n'
                      'wrk.headers["Content-Type"] = "application/octet-stream"\n'
                      f'wrk.body = string.rep("u", {size})\n')
    return script


def whole_seconds(seconds: float) -> int:
    """What wrk runs for when asked for ``seconds`` (0: no warm-up): it takes
    whole seconds, and refuses "0.5s"."""
    return max(1, round(seconds)) if seconds > 0 else 0


def command(url: str, *, clients: int, duration: float, script: Path | None = None) -> list[str]:
    argv = ["wrk", "--threads", "1", "--connections", str(clients),
            "--duration", f"{whole_seconds(duration)}s"]
    if script is not None:
        argv += ["--script", str(script)]
    return [*argv, url]


def parse(argv: list[str], output: str, returncode: int) -> LoadResult:
    """Read wrk's summary; a socket error or a 4xx/5xx is listed in ``problems``."""
    problems = []
    if returncode != 0:
        problems.append(f"wrk exited with status {returncode}")
    requests, rate = _REQUESTS.search(output), _RATE.search(output)
    if requests is None or rate is None:
        problems.append("wrk printed no summary")
        return LoadResult(argv, 0.0, problems, output)
    total = int(requests.group(1))
    sockets = _SOCKET_ERRORS.search(output)
    connect, read, write, timeout = (int(n) for n in sockets.groups()) if sockets else (0,) * 4
    statuses = _ERROR_STATUS.search(output)
    error_status = int(statuses.group(1)) if statuses else 0
    if total == 0:
        problems.append("no request completed")
    if connect or read or write or timeout:
        # A read error is also a connection the server closed under wrk.
        problems.append(f"socket errors in {total} requests: connect {connect}, read {read}, "
                        f"write {write}, timeout {timeout}")
    if error_status:
        problems.append(f"{error_status} of {total} responses were 4xx or 5xx")
    counts = {"requests": total, "connect_errors": connect, "read_errors": read,
              "write_errors": write, "timeouts": timeout, "error_status": error_status}
    return LoadResult(argv, float(rate.group(1)), problems, output, counts)


def run(url: str, *, clients: int, duration: float, warm_up: float, timeout: float,
        script: Path | None = None) -> LoadResult:
    """The warm-up, whose figures are dropped, then the measured run."""
    if warm_up > 0:
        run_tool(command(url, clients=clients, duration=warm_up, script=script), timeout,
                 parse)
    return run_tool(command(url, clients=clients, duration=duration, script=script), timeout,
                    parse)

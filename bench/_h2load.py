"""Run h2load for a fixed time and read its summary.

Duration mode (``-D`` after ``--warm-up-time``) measures both servers over the same
wall-clock time, however fast each one is, so a slow server costs the bench no
extra time and a fast one is not measured over a fraction of a second.
"""

from __future__ import annotations

import re

from bench._loadgen import LoadResult
from bench._loadgen import run as run_tool

# "finished in 4.00s, 7333.33 req/s, 243.51KB/s": h2load divides by the main
# duration (-D), not by the total time it prints.
_FINISHED = re.compile(r"^finished in \S+, ([\d.]+) req/s", re.MULTILINE)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout", re.MULTILINE)
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.MULTILINE)

# Both servers must do the same cryptographic work: left to themselves, OpenSSL
# picked AES-256-GCM with trio_h2 and AES-128-GCM with Hypercorn.
TLS13_CIPHER = "TLS_AES_128_GCM_SHA256"


def _ms(seconds: float) -> str:
    # h2load takes whole numbers with a unit; "0.5" is refused, "500ms" is not.
    return f"{round(seconds * 1000)}ms"


def command(url: str, *, clients: int, streams: int, duration: float, warm_up: float,
            upload: str | None = None) -> list[str]:
    argv = ["h2load", "--duration", _ms(duration), "--warm-up-time", _ms(warm_up),
            "--clients", str(clients), "--max-concurrent-streams", str(streams)]
    if upload is not None:
        argv += ["--data", upload]
    if url.startswith("https:"):
        argv += ["--tls13-ciphers", TLS13_CIPHER]
    return [*argv, url]


def parse(argv: list[str], output: str, returncode: int) -> LoadResult:
    """Read h2load's summary; anything short of all-2xx is listed in ``problems``."""
    problems = []
    if returncode != 0:
        problems.append(f"h2load exited with status {returncode}")
    finished, requests, status = (pattern.search(output)
                                  for pattern in (_FINISHED, _REQUESTS, _STATUS))
    if finished is None or requests is None or status is None:
        problems.append("h2load printed no summary")
        return LoadResult(argv, 0.0, problems, output)
    total, _, _, succeeded, failed, errored, timeout = (int(n) for n in requests.groups())
    non_2xx = sum(int(n) for n in status.groups()[1:])
    if succeeded == 0:
        problems.append("no request succeeded")
    if failed or errored or timeout:
        # h2load counts a reset stream or a closed connection as errored, and
        # every errored or timed-out request as failed too.
        problems.append(f"{failed} of {total} requests failed ({errored} errored, "
                        f"{timeout} timed out)")
    if non_2xx:
        problems.append(f"{non_2xx} of {total} responses were not 2xx")
    counts = {"succeeded": succeeded, "failed": failed, "errored": errored,
              "timeout": timeout, "non_2xx": non_2xx}
    return LoadResult(argv, float(finished.group(1)), problems, output, counts)


def run(argv: list[str], timeout: float) -> LoadResult:
    return run_tool(argv, timeout, parse)

"""Server CPU time per request (or per MiB), and trio task steps, per load.

Throughput on a 2-core machine that h2load shares is noisy; the CPU time the
server process spends on a fixed number of requests is a steadier measure of
one change. For each load this starts ``bench/_cpu_server.py`` (trio_h2 on
``bench._apps:app`` with a trio instrument), sends the requests with h2load,
and reads the server's user + system time from ``/proc``. The instrument
counts task steps and passes of trio's event loop (one ``epoll_wait`` each);
it costs both sides of a comparison the same.

With ``--against DIR`` (another checkout of trio_h2, for example
``git worktree add /tmp/base HEAD~1``) it alternates DIR and this checkout
and prints both, medians of ``--repeat`` runs.

The ``h1-`` loads are HTTP/1.1 on plain TCP, driven by wrk (one thread,
keep-alive, one request at a time per connection) for ``H1_SECONDS``; the
figure is the CPU time divided by the requests wrk completed.

With ``--access-log`` it alternates the server without and with the access
log (``trio_h2.access`` at INFO, the default format, to a file) instead.

Run: ``python bench/cpu_cost.py`` (every load, h2c and HTTP/1.1), ``--tls``,
``--only c100``, ``--only h1-`` (every HTTP/1.1 load), ``--against /tmp/base
--repeat 3``, ``--only c10 --access-log --repeat 3``. Needs h2load
(nghttp2-client), wrk and Linux.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _wrk
from bench._apps import DOWNLOAD_SIZE, MiB
from bench._cpu_server import ACCESS_LOG_VARIABLE
from bench._servers import ROOT, cpu_seconds, free_port, make_tls


@dataclass(frozen=True, slots=True)
class Load:
    name: str
    path: str
    h2load: tuple[str, ...]
    requests: int  # h2load; wrk runs for H1_SECONDS instead
    unit: str  # "request" or "MiB"
    wrk: bool = False  # HTTP/1.1, with wrk --connections h2load[0]


# wrk runs for a time, not a number of requests: long enough for thousands.
H1_SECONDS = 3

LOADS = [
    Load("c1", "/", ("-c1", "-m100"), 40_000, "request"),
    Load("c10", "/", ("-c10", "-m10"), 40_000, "request"),
    Load("c100", "/", ("-c100", "-m1"), 20_000, "request"),
    Load("download", "/download", ("-c1", "-m4"), 2_000, "MiB"),
    Load("echo", "/echo", ("-c1", "-m4"), 1_000, "MiB"),
    Load("h1-c1", "/", ("1",), 0, "request", wrk=True),
    Load("h1-c10", "/", ("10",), 0, "request", wrk=True),
    Load("h1-c100", "/", ("100",), 0, "request", wrk=True),
    Load("h1-download", "/download", ("1",), 0, "MiB", wrk=True),
    Load("h1-echo", "/echo", ("1",), 0, "MiB", wrk=True),
]

UPLOAD_SIZE = 1 * MiB
# Figures are per MiB: one download or one echo is 1 MiB.
assert DOWNLOAD_SIZE == UPLOAD_SIZE


@dataclass(frozen=True, slots=True)
class Cost:
    cpu_us: float  # per request or per MiB
    steps: float
    iterations: float


def _drive(load: Load, url: str, upload: Path, script: Path) -> int:
    """Run the load generator; return how many requests completed."""
    if load.wrk:
        argv = _wrk.command(url, clients=int(load.h2load[0]), duration=H1_SECONDS,
                            script=script if load.path == "/echo" else None)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        result = _wrk.parse(argv, done.stdout + done.stderr, done.returncode)
        if result.problems:
            raise RuntimeError(f"wrk: {'; '.join(result.problems)}:\n{result.output}")
        return result.counts["requests"]
    argv = ["h2load", "-n", str(load.requests), *load.h2load, url]
    if load.path == "/echo":
        argv[1:1] = ["-d", str(upload)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if f"{load.requests} succeeded" not in done.stdout:
        raise RuntimeError(f"h2load: not every request succeeded:\n{done.stdout}")
    return load.requests


def measure(load: Load, tree: Path, tls_files: list[str], upload: Path, script: Path,
            access_log: Path | None = None) -> Cost:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"}
    if access_log is not None:
        env[ACCESS_LOG_VARIABLE] = str(access_log)
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_cpu_server.py"),
                               str(port), *tls_files], env=env, cwd=tree,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the server in {tree} did not start")
        scheme = "https" if tls_files else "http"
        before = cpu_seconds(server.pid)
        n = _drive(load, f"{scheme}://127.0.0.1:{port}{load.path}", upload, script)
        after = cpu_seconds(server.pid)
        server.send_signal(2)  # SIGINT: the counts
        counts = json.loads(server.stdout.readline())
        if not counts["trio_h2"].startswith(str(tree)):
            raise RuntimeError(f"{tree}: imported {counts['trio_h2']} instead")
    finally:
        server.kill()
        server.wait()
    return Cost((after - before) * 1e6 / n, counts["steps"] / n, counts["iterations"] / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="LOAD",
                        help="a load's name, or a prefix ending in - (h1-); repeatable: "
                             f"{', '.join(load.name for load in LOADS)}")
    parser.add_argument("--tls", action="store_true", help="over TLS instead of h2c")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="another trio_h2 checkout to compare with")
    parser.add_argument("--access-log", action="store_true",
                        help="this checkout without, then with, the access log")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    trees = [ROOT] if args.against is None else [args.against.resolve(), ROOT]
    # Each run: a tree, and where its access log goes (None: off).
    variants: list[tuple[Path, bool]] = [(tree, False) for tree in trees]
    if args.access_log:
        variants = [(ROOT, False), (ROOT, True)]
    loads = [load for load in LOADS
             if not args.only or any(load.name == only or (only.endswith("-") and
                                                            load.name.startswith(only))
                                     for only in args.only)]
    if args.tls:
        loads = [load for load in loads if not load.wrk]  # HTTP/1.1 runs on plain TCP
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        upload = directory / "upload.bin"
        upload.write_bytes(os.urandom(UPLOAD_SIZE))
        script = _wrk.upload_script(directory, UPLOAD_SIZE)
        tls_files: list[str] = []
        if args.tls:
            tls = make_tls(directory)
            tls_files = [str(tls.certfile), str(tls.keyfile)]
        print(f"{'load':10} {'tree':32} {'CPU us':>10} {'per':8} {'steps':>7} {'loops':>7}")
        for load in loads:
            runs: dict[tuple[Path, bool], list[Cost]] = {variant: [] for variant in variants}
            for _ in range(args.repeat):
                for tree, logged in variants:  # alternating, so a slow spell hits both
                    log_file = directory / "access.log" if logged else None
                    runs[tree, logged].append(measure(load, tree, tls_files, upload, script,
                                                      log_file))
                    time.sleep(0.2)
            for (tree, logged), costs in runs.items():
                name = f"{load.name}{' TLS' if args.tls else ''}"
                label = str(tree)[-32:] if not args.access_log else (
                    f"access log {'on' if logged else 'off'}")
                print(f"{name:10} {label:32} "
                      f"{statistics.median(c.cpu_us for c in costs):10,.0f} {load.unit:8} "
                      f"{statistics.median(c.steps for c in costs):7.1f} "
                      f"{statistics.median(c.iterations for c in costs):7.1f}", flush=True)


if __name__ == "__main__":
    main()

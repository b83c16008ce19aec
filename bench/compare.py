"""trio_h2 against Hypercorn's trio worker and uvicorn, on the same raw ASGI app.

Two suites of loads. HTTP/2 (h2c and TLS), driven by h2load, compares trio_h2
with Hypercorn's trio worker. HTTP/1.1 (plain TCP, keep-alive), driven by wrk,
compares trio_h2 with Hypercorn's trio worker and with uvicorn (``--http h11``,
on asyncio), and with two floors (``bench/_floor_server.py``): trio and h11
serving the same app with nothing else, in the design card's shape (reader,
handler, sender, zero-buffer channels) and inline (one task per connection).
They tell how much of trio_h2's cost is trio_h2's own. For each load, and each
of ``--repeat`` rounds, starts a fresh server of each kind in turn (A B A B
..., or A B C A B C ...), drives it for ``--duration`` seconds after
``--warm-up`` seconds, and samples the server's peak RSS. Prints the medians and the
ratios trio_h2 / each other server per load; a full run also writes, per suite,
a plot (``docs/_static/``), a reST table included by ``docs/performance.rst``
and the same table in Markdown (``docs/performance_results*.inc`` and ``.md``).
The app is ``bench/_apps.py``.

Each server is one process running Python, so at most one core; the load
generator (one thread) has the other core of a 2-core machine; nothing is
pinned. Hypercorn runs with ``workers = 0`` (in-process) and
``keep_alive_max_requests`` raised, or it would close a connection after 1000
requests.

Run: ``nox -s bench -- compare`` or, with ``pip install hypercorn uvicorn matplotlib``,
``python bench/compare.py`` (``--quick`` for a smoke test, ``--help`` for more).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _h2load, _loadgen, _report, _wrk
from bench._apps import DOWNLOAD_SIZE, MiB
from bench._servers import (
    Memory,
    Server,
    Tls,
    floor_argv,
    hypercorn_argv,
    make_tls,
    rss,
    trio_h2_argv,
    trio_h2_has_workers,
    uvicorn_argv,
)

UPLOAD_SIZE = 1 * MiB


@dataclass(frozen=True, slots=True)
class Suite:
    """The loads of one protocol: which servers they compare (trio_h2 first;
    the ratios are trio_h2 / each other one), with which load generator, and
    where the results go: ``docs/{stem}.inc`` and ``.md``, ``docs/_static/{plot}``."""

    key: str
    title: str
    servers: tuple[str, ...]
    client: str
    targets: dict[str, float]  # the ratio aimed for, against each other server
    stem: str
    plot: str
    peak_load: str  # the load whose peak RSS is the one at 100 connections


H2 = Suite("h2", "HTTP/2", ("trio_h2", "Hypercorn"), "h2load", {"Hypercorn": 3.0},
           "performance_results", "performance.png", "get-c100-m1")
# Issue 12: at least twice Hypercorn's trio worker, and no slower than uvicorn.
# The floors have no target: they are the least trio and h11 cost, in two shapes.
FLOORS = ("floor-design", "floor-inline")
HTTP1 = Suite("http1", "HTTP/1.1", ("trio_h2", "Hypercorn", "uvicorn", *FLOORS), "wrk",
              {"Hypercorn": 2.0, "uvicorn": 1.0}, "performance_results_http1",
              "performance_http1.png", "h1-get-c100")
SUITES = (H2, HTTP1)


@dataclass(frozen=True, slots=True)
class Load:
    key: str
    title: str
    path: str
    clients: int
    streams: int
    unit: str  # "req/s", or "MiB/s" of body for the 1 MiB loads
    upload: bool = False
    tls: bool = False
    suite: Suite = H2

    def per_request_mib(self) -> float:
        if self.unit == "req/s":
            return 1.0
        return (UPLOAD_SIZE if self.upload else DOWNLOAD_SIZE) / MiB


_PLAIN = [
    Load("get-c1-m100", "GET, -c 1 -m 100", "/", 1, 100, "req/s"),
    Load("get-c10-m10", "GET, -c 10 -m 10", "/", 10, 10, "req/s"),
    Load("get-c100-m1", "GET, -c 100 -m 1", "/", 100, 1, "req/s"),
    Load("download", "1 MiB download, -c 1 -m 4", "/download", 1, 4, "MiB/s"),
    Load("upload", "1 MiB echo upload, -c 1 -m 4", "/echo", 1, 4, "MiB/s", upload=True),
]
# One request at a time on each keep-alive connection; ``streams`` is 1.
_HTTP1 = [
    Load("h1-get-c1", "GET, -c 1", "/", 1, 1, "req/s", suite=HTTP1),
    Load("h1-get-c10", "GET, -c 10", "/", 10, 1, "req/s", suite=HTTP1),
    Load("h1-get-c100", "GET, -c 100", "/", 100, 1, "req/s", suite=HTTP1),
    Load("h1-download", "1 MiB download, -c 1", "/download", 1, 1, "MiB/s", suite=HTTP1),
    Load("h1-upload", "1 MiB echo upload, -c 1", "/echo", 1, 1, "MiB/s", upload=True,
         suite=HTTP1),
]
LOADS = _PLAIN + [Load(f"{load.key}-tls", f"{load.title}, TLS", load.path, load.clients,
                       load.streams, load.unit, load.upload, tls=True) for load in _PLAIN
                  ] + _HTTP1


@dataclass(slots=True)
class Run:
    """One server under one load, once.

    ``problems`` are what the load generator saw go wrong; any makes it a failed
    run, left out of the medians. ``exit_status`` is set if the server process
    ended before we stopped it: with no ``problems`` as well, it ended only after
    the measured period, as the load generator hung up (had it ended sooner,
    requests would have failed). ``client`` is the load generator's result.
    """

    server: str
    load: str
    repeat: int
    value: float
    idle_rss: int
    peak_rss: int
    problems: list[str]
    exit_status: int | None = None
    server_errors: list[str] = field(default_factory=list)  # see Server.errors
    client: dict[str, Any] = field(default_factory=dict)


def server_for(name: str, tls: Tls | None, workers: int, directory: Path, log: Path) -> Server:
    if name == "trio_h2":
        return Server(name, trio_h2_argv(tls, workers), log)
    if name == "uvicorn":
        assert tls is None, "uvicorn serves the plain-TCP HTTP/1.1 loads only"
        return Server(name, uvicorn_argv(workers), log)
    if name in FLOORS:
        assert tls is None and workers == 1, "a floor serves plain TCP in one process"
        return Server(name, floor_argv(name.removeprefix("floor-")), log)
    return Server(name, hypercorn_argv(tls, workers, directory), log)


@dataclass(frozen=True, slots=True)
class Uploads:
    """The 1 MiB request body, as each load generator takes it."""

    file: Path  # h2load --data
    script: Path  # wrk --script


def drive(url: str, load: Load, args: argparse.Namespace, uploads: Uploads) -> _loadgen.LoadResult:
    """Load ``url`` with the suite's load generator."""
    timeout = args.duration + args.warm_up + 60
    if load.suite.client == "wrk":
        return _wrk.run(url, clients=load.clients, duration=args.duration,
                        warm_up=args.warm_up, timeout=timeout,
                        script=uploads.script if load.upload else None)
    argv = _h2load.command(url, clients=load.clients, streams=load.streams,
                           duration=args.duration, warm_up=args.warm_up,
                           upload=str(uploads.file) if load.upload else None)
    return _h2load.run(argv, timeout)


def run_once(name: str, load: Load, repeat: int, args: argparse.Namespace, tls: Tls,
             directory: Path, uploads: Uploads) -> Run:
    log = directory / f"{name}-{load.key}-{repeat}.log"
    server = server_for(name, tls if load.tls else None, args.workers, directory, log)
    try:
        server.start()
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1]
        return Run(name, load.key, repeat, 0.0, 0, 0, [f"{name} did not start: {last}"])
    try:
        idle = rss(server.pid)
        with Memory(server.pid) as memory:
            result = drive(server.url + load.path, load, args, uploads)
        time.sleep(0.5)  # a crash as the client hangs up still counts against this run
        status = server.exit_status()
    finally:
        server.stop()
    return Run(name, load.key, repeat, result.requests_per_second * load.per_request_mib(),
               idle, memory.peak, list(result.problems), status, server.errors(),
               result.to_json())


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(runs: list[Run], loads: list[Load]) -> list[dict[str, Any]]:
    """Per load and server: the median over clean runs, and what went wrong in the
    others; ``ratios``: trio_h2's median over each other server's."""
    rows = []
    for load in loads:
        row: dict[str, Any] = {"load": load.key, "title": load.title, "unit": load.unit,
                               "suite": load.suite.key, "tls": load.tls}
        for name in load.suite.servers:
            mine = [run for run in runs if run.load == load.key and run.server == name]
            clean = [run for run in mine if not run.problems]
            row[name] = {
                "median": median([run.value for run in clean]),
                "min": min((run.value for run in clean), default=None),
                "max": max((run.value for run in clean), default=None),
                "runs": len(mine),
                "failed_runs": len(mine) - len(clean),
                "problems": sorted({p for run in mine for p in run.problems}),
                "peak_rss": median([run.peak_rss for run in clean or mine]),
                "runs_with_errors": sum(1 for run in mine if run.server_errors),
                "exits": sorted({run.exit_status for run in mine
                                 if run.exit_status is not None}),
                "runs_with_exit": sum(1 for run in mine if run.exit_status is not None),
                "errors": sorted({e for run in mine for e in run.server_errors}),
            }
        ours = row["trio_h2"]["median"]
        row["ratios"] = {}
        for name in load.suite.servers[1:]:
            theirs = row[name]["median"]
            row["ratios"][name] = ours / theirs if ours is not None and theirs else None
        rows.append(row)
    return rows


def idle_rss(runs: list[Run], suite: Suite) -> dict[str, float | None]:
    """Median RSS right after start-up, over the suite's plain-TCP runs."""
    plain = {load.key for load in LOADS if load.suite == suite and not load.tls}
    return {name: median([run.idle_rss for run in runs
                          if run.server == name and run.load in plain])
            for name in suite.servers}


def revision() -> str:
    """The commit of this checkout, and whether trio_h2/ differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "trio_h2"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} with uncommitted changes to trio_h2/" if dirty else commit


def _tool_version(argv: list[str]) -> str:
    """The first line a tool prints about itself, less wrk's copyright."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return f"no {argv[0]}"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].split(" Copyright")[0] if lines else f"{argv[0]}, version unknown"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    return {
        "cpus": os.cpu_count(),
        "cpu": model.group(1) if model else platform.processor(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "trio": version("trio"), "h2": version("h2"), "h11": version("h11"),
        "trio_h2": revision(),
        "hypercorn": _package_version("hypercorn"), "uvicorn": _package_version("uvicorn"),
        "h2load": _tool_version(["h2load", "--version"]), "wrk": _tool_version(["wrk", "-v"]),
        "load_average": Path("/proc/loadavg").read_text().split()[0],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, help="rounds of A B per load (default 3)")
    parser.add_argument("--duration", type=float,
                        help="seconds measured per run, after the warm-up (default 4)")
    parser.add_argument("--warm-up", type=float, help="seconds of warm-up (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 round of 1 s runs; leaves the docs alone")
    parser.add_argument("--only", metavar="SUBSTRING", action="append",
                        help="only the loads whose key contains it (repeatable); keys: "
                             + ", ".join(load.key for load in LOADS))
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes for every server, if trio_h2 has --workers")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every run here")
    parser.add_argument("--from-json", type=Path, metavar="FILE",
                        help="measure nothing: report the runs that --json saved in FILE")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction,
                        help="write the plot and table into docs/ (default: for a full run)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeat = args.repeat or (1 if quick else 3)
    args.duration = args.duration or (1.0 if quick else 4.0)
    args.warm_up = args.warm_up if args.warm_up is not None else (0.5 if quick else 1.0)
    if args.docs is None:
        args.docs = bool(args.from_json) or (not quick and not args.only)
    if args.workers != 1 and not trio_h2_has_workers():
        parser.error("this trio_h2 has no --workers option")
    return args


def measure(args: argparse.Namespace, loads: list[Load]) -> list[Run]:
    runs: list[Run] = []
    total = args.repeat * sum(len(load.suite.servers) for load in loads)
    with tempfile.TemporaryDirectory(prefix="trio_h2-bench-") as temp:
        directory = Path(temp)
        tls = make_tls(directory)
        uploads = Uploads(directory / "upload.bin", _wrk.upload_script(directory, UPLOAD_SIZE))
        uploads.file.write_bytes(os.urandom(UPLOAD_SIZE))
        # Rounds outermost: a slow spell on the machine spreads over every load.
        for repeat in range(args.repeat):
            for load in loads:
                for name in load.suite.servers:
                    run = run_once(name, load, repeat, args, tls, directory, uploads)
                    runs.append(run)
                    print(_report.progress(len(runs), total, run, load), flush=True)
    return runs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        about, settings = saved["machine"], saved["settings"]
        runs = [Run(**run) for run in saved["runs"]]
        loads = [load for load in LOADS if any(run.load == load.key for run in runs)]
    else:
        loads = [load for load in LOADS
                 if not args.only or any(part in load.key for part in args.only)]
        started = time.monotonic()
        about = machine()
        runs = measure(args, loads)
        about["elapsed_s"] = round(time.monotonic() - started)
        about["load_average_end"] = Path("/proc/loadavg").read_text().split()[0]
        settings = {"repeat": args.repeat, "duration_s": args.duration,
                    "warm_up_s": args.warm_up, "workers": args.workers}
    rows = summarise(runs, loads)
    # The suites this run measured, each with its rows and idle RSS.
    tables = [_report.Table(suite, [row for row in rows if row["suite"] == suite.key],
                            idle_rss(runs, suite))
              for suite in SUITES if any(load.suite == suite for load in loads)]
    for table in tables:
        print(f"\n{table.suite.title}\n")
        print(_report.text_table(table))
    print(f"\n{about['elapsed_s']} s in all")
    if args.json:
        args.json.write_text(json.dumps({"machine": about, "settings": settings,
                                         "summary": rows,
                                         "idle_rss": {table.suite.key: table.idle
                                                      for table in tables},
                                         "runs": [asdict(run) for run in runs]}, indent=1))
        print(f"every run: {args.json}")
    if args.docs:
        docs = Path(__file__).resolve().parent.parent / "docs"
        for table in tables:
            stem, plot = table.suite.stem, table.suite.plot
            _report.plot(table, docs / "_static" / plot)
            (docs / f"{stem}.inc").write_text(_report.rest(table, about, settings))
            (docs / f"{stem}.md").write_text(_report.markdown(table, about, settings))
            print(f"wrote docs/_static/{plot}, docs/{stem}.inc and docs/{stem}.md")


if __name__ == "__main__":
    main()

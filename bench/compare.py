"""trio_h2 against Hypercorn's trio worker, on the same raw ASGI app, with h2load.

For each load, and each of ``--repeat`` rounds, starts a fresh trio_h2 and then a
fresh Hypercorn (A B A B ...), drives each with h2load for ``--duration``
seconds after ``--warm-up`` seconds, and samples the server's peak RSS. Prints
the medians and the ratio trio_h2/Hypercorn per load; a full run also writes
``docs/_static/performance.png``, ``docs/performance_results.inc`` (included
by ``docs/performance.rst``) and the same table in Markdown,
``docs/performance_results.md``. The app is ``bench/_apps.py``.

Each server is one process running Python, so at most one core; h2load (one
thread) has the other core of a 2-core machine. Hypercorn runs with
``workers = 0`` (in-process) and ``keep_alive_max_requests`` raised, or it
would send GOAWAY after 1000 requests on a connection.

Run: ``nox -s bench -- compare`` or, with ``pip install hypercorn matplotlib``,
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
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _h2load, _report
from bench._apps import DOWNLOAD_SIZE, MiB
from bench._servers import (
    Memory,
    Server,
    Tls,
    hypercorn_argv,
    make_tls,
    rss,
    trio_h2_argv,
    trio_h2_has_workers,
)

SERVERS = ("trio_h2", "Hypercorn")
UPLOAD_SIZE = 1 * MiB


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
LOADS = _PLAIN + [Load(f"{load.key}-tls", f"{load.title}, TLS", load.path, load.clients,
                       load.streams, load.unit, load.upload, tls=True) for load in _PLAIN]
PEAK_CONNECTIONS_LOAD = "get-c100-m1"


@dataclass(slots=True)
class Run:
    """One server under one load, once.

    ``problems`` are what h2load saw go wrong; any makes it a failed run, left out
    of the medians. ``exit_status`` is set if the server process ended before we
    stopped it: with no ``problems`` as well, it ended only after the measured
    period, as h2load hung up (had it ended sooner, requests would have failed).
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
    h2load: dict[str, Any] = field(default_factory=dict)


def server_for(name: str, tls: Tls | None, workers: int, directory: Path, log: Path) -> Server:
    if name == "trio_h2":
        return Server(name, trio_h2_argv(tls, workers), log)
    return Server(name, hypercorn_argv(tls, workers, directory), log)


def run_once(name: str, load: Load, repeat: int, args: argparse.Namespace, tls: Tls,
             directory: Path, upload_file: Path) -> Run:
    log = directory / f"{name}-{load.key}-{repeat}.log"
    server = server_for(name, tls if load.tls else None, args.workers, directory, log)
    try:
        server.start()
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1]
        return Run(name, load.key, repeat, 0.0, 0, 0, [f"{name} did not start: {last}"])
    try:
        idle = rss(server.pid)
        argv = _h2load.command(server.url + load.path, clients=load.clients,
                               streams=load.streams, duration=args.duration,
                               warm_up=args.warm_up,
                               upload=str(upload_file) if load.upload else None)
        with Memory(server.pid) as memory:
            result = _h2load.run(argv, timeout=args.duration + args.warm_up + 60)
        time.sleep(0.5)  # a crash as h2load hangs up still counts against this run
        status = server.exit_status()
    finally:
        server.stop()
    return Run(name, load.key, repeat, result.requests_per_second * load.per_request_mib(),
               idle, memory.peak, list(result.problems), status, server.errors(),
               result.to_json())


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(runs: list[Run], loads: list[Load]) -> list[dict[str, Any]]:
    """Per load and server: the median over clean runs, and what went wrong in the others."""
    rows = []
    for load in loads:
        row: dict[str, Any] = {"load": load.key, "title": load.title, "unit": load.unit}
        for name in SERVERS:
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
        ours, theirs = row["trio_h2"]["median"], row["Hypercorn"]["median"]
        row["ratio"] = ours / theirs if ours is not None and theirs else None
        rows.append(row)
    return rows


def idle_rss(runs: list[Run]) -> dict[str, float | None]:
    """Median RSS right after start-up, over the plain-TCP runs."""
    plain = {load.key for load in LOADS if not load.tls}
    return {name: median([run.idle_rss for run in runs
                          if run.server == name and run.load in plain]) for name in SERVERS}


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


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    h2load = subprocess.run(["h2load", "--version"], capture_output=True, text=True,
                            check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": model.group(1) if model else platform.processor(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "trio": version("trio"), "h2": version("h2"), "trio_h2": revision(),
        "hypercorn": version("hypercorn"), "h2load": h2load,
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
                        help="worker processes for both servers, if trio_h2 has --workers")
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
    total = args.repeat * len(loads) * len(SERVERS)
    with tempfile.TemporaryDirectory(prefix="trio_h2-bench-") as temp:
        directory = Path(temp)
        tls = make_tls(directory)
        upload_file = directory / "upload.bin"
        upload_file.write_bytes(os.urandom(UPLOAD_SIZE))
        # Rounds outermost: a slow spell on the machine spreads over every load.
        for repeat in range(args.repeat):
            for load in loads:
                for name in SERVERS:
                    run = run_once(name, load, repeat, args, tls, directory, upload_file)
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
    idle = idle_rss(runs)
    print()
    print(_report.text_table(rows, idle, PEAK_CONNECTIONS_LOAD))
    print(f"\n{about['elapsed_s']} s in all")
    if args.json:
        args.json.write_text(json.dumps({"machine": about, "settings": settings,
                                         "summary": rows, "idle_rss": idle,
                                         "runs": [asdict(run) for run in runs]}, indent=1))
        print(f"every run: {args.json}")
    if args.docs:
        docs = Path(__file__).resolve().parent.parent / "docs"
        _report.plot(rows, docs / "_static" / "performance.png")
        (docs / "performance_results.inc").write_text(
            _report.rest(rows, idle, about, settings))
        (docs / "performance_results.md").write_text(
            _report.markdown(rows, idle, about, settings))
        print("wrote docs/_static/performance.png, docs/performance_results.inc "
              "and docs/performance_results.md")


if __name__ == "__main__":
    main()

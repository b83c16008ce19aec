"""Start trio_h2, Hypercorn or uvicorn on ``bench._apps:app`` and watch its memory.

Each server is a subprocess of its own CLI, bound to port 0, with its output in a
log file; the URL it prints tells us the port. :class:`Memory` samples the
resident set of the server (and of any worker processes it spawned) while a
load runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import trustme

ROOT = Path(__file__).resolve().parent.parent
APP = "bench._apps:app"
KiB, MiB = 1024, 1024 * 1024
_URL = re.compile(r"(https?)://127\.0\.0\.1:(\d+)")
# Log lines at WARNING and above, less the time and the client's port, so that
# one message repeated across connections is reported once.
_LEVEL = re.compile(r"\b(WARNING|ERROR|CRITICAL)\]?:? +(.*)$", re.MULTILINE)
_PEER = re.compile(r"127\.0\.0\.1:\d+: ")
# The last line of each traceback, e.g.
# "trio.BusyResourceError: another task is currently sending data on this SocketStream".
_EXCEPTION = re.compile(r"^[\s|]*([\w.]+(?:Error|Exception|Exit)(?::.*)?)$", re.MULTILINE)

# Hypercorn's default, 1000, makes it send GOAWAY after 1000 requests on a
# connection: `-c 1 -m 100` then fails every request past the first thousand.
# trio_h2 has no such limit, so neither server gets one here.
HYPERCORN_KEEP_ALIVE_MAX_REQUESTS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Tls:
    certfile: Path
    keyfile: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for servers that
    cannot be given port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_tls(directory: Path) -> Tls:
    """A trustme certificate for 127.0.0.1; h2load does not verify it."""
    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    tls = Tls(directory / "cert.pem", directory / "key.pem")
    tls.certfile.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(tls.keyfile))
    return tls


def trio_h2_has_workers() -> bool:
    help_text = subprocess.run([sys.executable, "-m", "trio_h2", "--help"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    return "--workers" in help_text


def trio_h2_argv(tls: Tls | None, workers: int) -> list[str]:
    argv = [sys.executable, "-m", "trio_h2", APP, "--bind", "127.0.0.1:0",
            "--log-level", "warning"]
    if workers != 1:
        argv += ["--workers", str(workers)]
    if tls is not None:
        argv += ["--certfile", str(tls.certfile), "--keyfile", str(tls.keyfile)]
    return argv


def hypercorn_argv(tls: Tls | None, workers: int, directory: Path) -> list[str]:
    config = directory / "hypercorn.toml"
    # workers = 0 serves in the hypercorn process itself, as trio_h2 does;
    # 1 would spawn a single worker process beside an idle supervisor.
    config.write_text(f"workers = {0 if workers == 1 else workers}\n"
                      f"keep_alive_max_requests = {HYPERCORN_KEEP_ALIVE_MAX_REQUESTS}\n")
    # --log-level info: its only message is the "Running on" line that names the
    # port; the access log stays off, as trio_h2 has none.
    argv = [sys.executable, "-m", "hypercorn", "--config", str(config), "--worker-class",
            "trio", "--bind", "127.0.0.1:0", "--log-level", "info"]
    if tls is not None:
        argv += ["--certfile", str(tls.certfile), "--keyfile", str(tls.keyfile)]
    return [*argv, APP]


def uvicorn_argv(workers: int) -> list[str]:
    """uvicorn on asyncio (not uvloop) with h11 (not httptools): the pure-Python
    HTTP/1.1 it offers, to compare with trio_h2's, which is h11 too."""
    # --log-level info: its "Uvicorn running on" line names the port; the
    # access log off, as trio_h2 has none.
    argv = [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", "0",
            "--http", "h11", "--loop", "asyncio", "--log-level", "info", "--no-access-log"]
    if workers != 1:
        argv += ["--workers", str(workers)]
    return argv


def floor_argv(shape: str) -> list[str]:
    """``bench/_floor_server.py``: trio and h11 with nothing else, in ``shape``
    ("design" or "inline")."""
    return [sys.executable, "-m", "bench._floor_server", shape]


class Server:
    """A running server; ``url`` is known once :meth:`start` returns."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 20.0) -> None:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(self.argv, cwd=ROOT, stdout=log,
                                             stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _URL.search(self.log.read_text(errors="replace"))
            if found:
                self.url = f"{found.group(1)}://127.0.0.1:{found.group(2)}"
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start; its output:\n{self.log_text()}")

    def exit_status(self) -> int | None:
        """None while the server runs."""
        assert self._process is not None
        return self._process.poll()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after 10 s."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def errors(self) -> list[str]:
        """What the server logged at WARNING or above, and its exceptions, each once."""
        text = self.log_text()
        found = [f"{level} {_PEER.sub('', message)}" for level, message in _LEVEL.findall(text)]
        if "Traceback (most recent call last)" in text:
            found += _EXCEPTION.findall(text)
        return sorted(set(found))


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Hypercorn's worker processes, if any)."""
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids += [int(child) for child in (task / "children").read_text().split()]
        index += 1
    return pids


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def rss(pid: int, field: str = "VmRSS:") -> int:
    """Bytes resident in ``pid`` and its descendants; ``field="VmHWM:"`` for the peak."""
    total = 0
    for each in _tree(pid):
        with contextlib.suppress(OSError):  # a process that just exited
            total += _status_kib(each, field)
    return total * KiB


class Memory:
    """Peak resident set (VmHWM) of a server's processes, sampled every 0.1 s.

    Sampling, and not one reading at the end, because the server may exit
    before the end; the kernel's VmHWM keeps the peak between samples.
    """

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        stopped = False
        while not stopped:
            stopped = self._stop.wait(0.1)
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss(self._pid, "VmHWM:"))

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

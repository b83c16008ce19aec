"""``python -m trio_h2`` as a real process: started with ``--bind
127.0.0.1:0``, its port learnt from the one line it prints, every wait with a
timeout, every process killed on the way out; curl against it; and the
helpers that tell ``--workers`` processes apart."""

from __future__ import annotations

import os
import re
import select
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import trio_h2
from tests.support.tools import require_tool

# Seconds any one step may take: starting the server, one client run, exit.
TIMEOUT = 20.0

LINE = re.compile(r"trio_h2 serving (?P<what>\S+(?: app)?) on (?P<urls>.+) \((?P<mode>[^)]+)\)")


class _Lines:
    """Reads lines from a pipe with a deadline (``select`` on the raw fd)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False

    def readline(self, timeout: float = TIMEOUT) -> str:
        """The next line, ``""`` at end of file; fails the test after ``timeout``."""
        while b"\n" not in self._buffer and not self._eof:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                pytest.fail(f"no complete line within {timeout}s (have {self._buffer!r})")
            chunk = os.read(self._fd, 65536)
            self._eof = not chunk
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> list[str]:
        """Read lines until one contains ``text``; returns the lines read."""
        lines = []
        while True:
            line = self.readline(timeout)
            lines.append(line)
            if text in line:
                return lines
            if not line and self._eof:
                pytest.fail(f"{text!r} never appeared; got {lines!r}")

    def rest(self) -> str:
        """Everything until end of file (the process must have exited)."""
        chunks = [self._buffer]
        while chunk := os.read(self._fd, 65536):
            chunks.append(chunk)
        self._buffer = b""
        return b"".join(chunks).decode()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    stdout: _Lines
    stderr: _Lines
    line: str
    urls: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls[0]

    def signal_and_wait(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=TIMEOUT)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_h2", *args]


# The trio_h2 under test (this checkout or worktree) goes first on the
# runner's path: run from tmp_path, `python -m trio_h2` would otherwise import
# whichever trio_h2 is installed.
SOURCE_ROOT = str(Path(trio_h2.__file__).resolve().parent.parent)


def environment(cwd: Path) -> dict[str, str]:
    """The runner's environment: the trio_h2 under test, and temporary files
    (--self-signed's directory) in the test's own directory, so that a runner
    killed by the test leaves nothing behind in /tmp."""
    path = [SOURCE_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "TMPDIR": str(cwd)}


@contextmanager
def run_server(*args: str, cwd: Path, command: list[str] | None = None,
               pass_fds: tuple[int, ...] = ()) -> Iterator[Server]:
    """Start the runner (inheriting ``pass_fds``) and wait for its line; kill
    it on the way out."""
    process = subprocess.Popen(command or _command(*args), cwd=cwd, env=environment(cwd),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               pass_fds=pass_fds)
    assert process.stdout is not None and process.stderr is not None
    try:
        stdout = _Lines(process.stdout.fileno())
        stderr = _Lines(process.stderr.fileno())
        line = stdout.readline()
        if not line:
            process.wait(timeout=TIMEOUT)
            pytest.fail(f"runner exited with {process.returncode} before serving: "
                        f"{stderr.rest()!r}")
        match = LINE.fullmatch(line)
        assert match, line
        urls = match["urls"].split(", ")
        yield Server(process, stdout, stderr, line, urls)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=TIMEOUT)
        process.stdout.close()
        process.stderr.close()


def run_to_exit(*args: str, cwd: Path,
                pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(*args), cwd=cwd, env=environment(cwd), capture_output=True,
                          text=True, timeout=TIMEOUT, pass_fds=pass_fds)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("curl"), "--silent", "--show-error", *args],
                          capture_output=True, text=True, timeout=TIMEOUT)


def h2c_get(url: str, *args: str) -> str:
    result = curl("--http2-prior-knowledge", "--fail", url, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def write_module(directory: Path, name: str, source: str) -> None:
    path = directory.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


@dataclass
class SelfSignedRun:
    """What ``--self-signed`` printed after the serving line."""

    port: int
    ca_file: str
    curl: list[str]
    """The curl command line, as printed."""
    chromium: str
    """The Chromium command line, as printed (with a shell ``$(mktemp -d)``)."""
    spki_sha256: str


def read_self_signed(server: Server) -> SelfSignedRun:
    """Read and check the lines ``--self-signed`` prints after the serving line."""
    port = int(server.url.rsplit(":", 1)[1])
    lines = [server.stdout.readline() for _ in range(4)]
    match = re.fullmatch(r"self-signed certificate for localhost, 127\.0\.0\.1, ::1; its CA "
                         r"\(made for this run only\) is in (?P<ca>\S+)", lines[0])
    assert match, lines
    ca_file = match["ca"]
    assert lines[1] == f"  curl --cacert {ca_file} https://localhost:{port}/"
    spki = re.fullmatch(r"  chromium --user-data-dir=\$\(mktemp -d\) "
                        rf"--ignore-certificate-errors-spki-list=(\S+) https://localhost:{port}/",
                        lines[2])
    assert spki, lines[2]
    assert lines[3] == f"  or import {ca_file} as a trusted authority in your browser " \
                       "(a new one each run)"
    return SelfSignedRun(port, ca_file, shlex.split(lines[1]), lines[2].strip(), spki[1])


# Answers every request with the pid of the process that serves it. /slow
# first says on stdout that it started, then blocks until the test creates
# the file "release" (for at most 60 s). /hang says on stdout that it hangs,
# then spins in the event loop's thread without ever yielding to trio. Its
# lifespan startup fails while the file "fail-startup" exists.
PID_APP = """
import os

import trio


def spin_forever():
    while True:
        pass


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        if os.path.exists("fail-startup"):
            await send({"type": "lifespan.startup.failed", "message": "fail-startup exists"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/slow":
        print(f"slow request started in {os.getpid()}", flush=True)
        with trio.move_on_after(60):
            while not os.path.exists("release"):
                await trio.sleep(0.01)
    if scope["path"] == "/hang":
        print(f"hanging in {os.getpid()}", flush=True)
        spin_forever()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": f"{os.getpid()}\\n".encode()})
"""

# Fresh connections a test may open while waiting to meet a given worker.
ATTEMPTS = 60


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (empty once it has exited)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            found.update(int(child) for child in (task / "children").read_text().split())
    return found


def served_by(url: str, *curl_args: str) -> int:
    """The pid of the worker that served a GET over a new connection."""
    result = curl(*(curl_args or ["--http2-prior-knowledge"]), "--fail", url + "/")
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def meet_workers(url: str, done: Callable[[set[int]], bool], *curl_args: str) -> set[int]:
    """The pids met over fresh connections, until ``done(pids)`` (bounded)."""
    seen: set[int] = set()
    for _ in range(ATTEMPTS):
        seen.add(served_by(url, *curl_args))
        if done(seen):
            return seen
    pytest.fail(f"{ATTEMPTS} connections met only the workers {sorted(seen)}")

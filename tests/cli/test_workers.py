"""``--workers N``: a supervisor and N worker processes on one port, as real processes.

Servers are started as in ``test_cli`` (``run_server`` reads the one line);
the app answers with the pid of the worker that served the request, which is
how a test tells the workers apart. Which worker gets a new connection is the
kernel's choice (a hash over the connection's ports), so where a test needs
to see a given worker it opens fresh connections until it does, a bounded
number of times: with two workers, 60 connections all going to the other one
has a probability of 2**-60. Every process a test starts, workers included,
is killed in a ``finally``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import trustme

from tests.support.processes import (
    PID_APP,
    TIMEOUT,
    Server,
    children,
    meet_workers,
    run_server,
    run_to_exit,
    write_module,
)
from tests.support.tools import require_tool
from trio_h2._io.workers import (
    RESTART_LIMIT,
    RESTART_WINDOW,
    REUSEPORT_SPREADS_CONNECTIONS,
    may_restart,
)

pytestmark = pytest.mark.skipif(not REUSEPORT_SPREADS_CONNECTIONS,
                                reason="--workers needs Linux's SO_REUSEPORT")

def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return re.search(r"^State:\s+Z", status, re.MULTILINE) is None


def wait_until_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            pytest.fail(f"still running after {TIMEOUT}s: {sorted(filter(alive, pids))}")
        time.sleep(0.05)


@contextmanager
def run_workers(*args: str, cwd: Path) -> Iterator[Server]:
    """``run_server`` with ``pid:app`` and ``--workers 2``; on the way out the
    workers are killed too (``run_server`` only kills the supervisor)."""
    write_module(cwd, "pid", PID_APP)
    with run_server("pid:app", "--bind", "127.0.0.1:0", "--workers", "2", *args,
                    cwd=cwd) as server:
        try:
            yield server
        finally:
            workers = children(server.process.pid)
            server.process.kill()
            for pid in workers:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def start_slow_request(url: str, path: str = "/slow") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [require_tool("curl"), "--silent", "--show-error", "--http2-prior-knowledge",
         url + path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(client: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return client.communicate(timeout=TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
        client.wait(timeout=TIMEOUT)


def test_workers_share_one_port_and_the_load(tmp_path: Path) -> None:
    with run_workers(cwd=tmp_path) as server:
        assert re.fullmatch(r"trio_h2 serving pid:app on http://127\.0\.0\.1:\d+ "
                            r"\(HTTP/1\.1, and h2c with prior knowledge, 2 workers\)", server.line)
        assert len(server.urls) == 1
        workers = children(server.process.pid)
        assert len(workers) == 2

        result = subprocess.run([require_tool("h2load"), "-n", "2000", "-c", "20", "-m", "1",
                                 server.url + "/"], capture_output=True, text=True,
                                timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
        assert "2000 total, 2000 started, 2000 done, 2000 succeeded" in result.stdout, (
            result.stdout)

        assert meet_workers(server.url, lambda seen: len(seen) == 2) == workers
        assert server.signal_and_wait(signal.SIGTERM) == 0
        assert server.stdout.rest() == ""  # exactly one line on stdout
        wait_until_gone(workers)


def test_every_worker_gets_the_options(tmp_path: Path) -> None:
    # Workers parse the runner's own arguments: here, each loads the certificate.
    ca = trustme.CA()
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "combined.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with run_workers("--certfile", "combined.pem", cwd=tmp_path) as server:
        match = re.fullmatch(r"trio_h2 serving pid:app on https://127\.0\.0\.1:(\d+) "
                             r"\(h2 and HTTP/1\.1 over TLS, ALPN, 2 workers\)", server.line)
        assert match, server.line
        workers = children(server.process.pid)
        assert meet_workers(f"https://localhost:{match[1]}", lambda seen: len(seen) == 2,
                            "--cacert", str(tmp_path / "ca.pem"), "--http2") == workers
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_a_killed_worker_is_replaced(tmp_path: Path) -> None:
    with run_workers(cwd=tmp_path) as server:
        first = meet_workers(server.url, lambda seen: len(seen) == 2)
        victim, survivor = sorted(first)
        os.kill(victim, signal.SIGKILL)
        lines = server.stderr.wait_for(" serving")
        assert re.search(rf"WARNING trio_h2\[{server.process.pid}\]: worker \d \(pid {victim}\) "
                         r"was killed by SIGKILL; starting a new one$", "\n".join(lines),
                         re.MULTILINE), lines
        match = re.search(r"worker \d \(pid (\d+)\) serving$", lines[-1])
        assert match, lines
        replacement = int(match[1])
        assert children(server.process.pid) == {survivor, replacement}

        # Every request succeeds (served_by checks), and the new worker serves some.
        meet_workers(server.url, lambda seen: replacement in seen)
        assert server.signal_and_wait(signal.SIGTERM) == 0
        stderr = "\n".join(lines) + server.stderr.rest()
        assert stderr.count("was killed by") == 1, stderr
        assert "Traceback" not in stderr
        wait_until_gone({survivor, replacement})


def test_sigterm_lets_in_flight_request_finish_on_its_worker(tmp_path: Path) -> None:
    with run_workers(cwd=tmp_path) as server:
        workers = children(server.process.pid)
        client = start_slow_request(server.url)
        try:
            started = server.stdout.readline()
            match = re.fullmatch(r"slow request started in (\d+)", started)
            assert match and int(match[1]) in workers, started
            server.process.send_signal(signal.SIGTERM)
            server.stderr.wait_for("SIGTERM received: stopping 2 workers")
            # The other worker, with nothing in flight, is done at once.
            wait_until_gone(workers - {int(match[1])})
            assert server.process.poll() is None
            (tmp_path / "release").touch()  # only now may the request finish
        finally:
            body, errors = finish(client)
        assert client.returncode == 0, errors
        assert body == f"{match[1]}\n"
        assert server.process.wait(timeout=TIMEOUT) == 0
        assert "Traceback" not in server.stderr.rest()
        assert not any(alive(pid) for pid in workers)


def test_second_signal_kills_the_workers(tmp_path: Path) -> None:
    with run_workers(cwd=tmp_path) as server:
        workers = children(server.process.pid)
        client = start_slow_request(server.url)
        try:
            assert server.stdout.readline().startswith("slow request started")
            server.process.send_signal(signal.SIGTERM)
            server.stderr.wait_for("SIGTERM received: stopping 2 workers")
            assert server.signal_and_wait(signal.SIGINT) == 1
        finally:
            finish(client)
        assert client.returncode != 0
        assert "SIGINT received again: killing the workers" in server.stderr.rest()
        assert not any(alive(pid) for pid in workers)


def test_workers_stop_when_the_supervisor_is_gone(tmp_path: Path) -> None:
    with run_workers(cwd=tmp_path) as server:
        workers = children(server.process.pid)
        server.process.kill()
        wait_until_gone(workers)


def test_a_hung_worker_is_dumped_killed_and_replaced(tmp_path: Path) -> None:
    # A worker whose event loop spins in the app sends no more heartbeats:
    # after --worker-timeout the supervisor dumps its stack, kills it and
    # starts a new one, with one log line; the other worker and the
    # supervisor carry on. The timeout also covers a worker's start (as
    # gunicorn's does), which takes seconds on a loaded 2-core machine.
    timeout = 5.0
    with run_workers("--worker-timeout", f"{timeout:g}", cwd=tmp_path) as server:
        workers = children(server.process.pid)
        client = start_slow_request(server.url, "/hang")
        try:
            match = re.fullmatch(r"hanging in (\d+)", server.stdout.readline())
            assert match and int(match[1]) in workers, match
            victim = int(match[1])
            lines = server.stderr.wait_for(" serving")
        finally:
            finish(client)
        assert client.returncode != 0  # its worker was killed under it
        stderr = "\n".join(lines)
        silences = re.findall(rf"^.* WARNING trio_h2\[{server.process.pid}\]: worker \d "
                              rf"\(pid {victim}\) sent no heartbeat for ([0-9.]+)s \(its "
                              r"event loop is stuck; its stack is dumped above\) and was "
                              r"killed; starting a new one$", stderr, re.MULTILINE)
        assert len(silences) == 1, stderr
        assert float(silences[0]) >= timeout
        # faulthandler's dump, before that line, names the function that spins.
        dump = stderr[:stderr.index("sent no heartbeat")]
        assert re.search(r'File ".*pid\.py", line \d+ in spin_forever\n', dump), stderr

        match = re.search(r"worker \d \(pid (\d+)\) serving$", lines[-1])
        assert match, lines
        replacement = int(match[1])
        survivor = (workers - {victim}).pop()
        assert children(server.process.pid) == {survivor, replacement}
        assert not alive(victim)
        meet_workers(server.url, lambda seen: replacement in seen)
        assert server.process.poll() is None
        assert server.signal_and_wait(signal.SIGTERM) == 0
        rest = server.stderr.rest()
        assert "heartbeat" not in rest and "Traceback" not in stderr + rest, rest
        wait_until_gone({survivor, replacement})


def test_busy_and_idle_workers_keep_beating(tmp_path: Path) -> None:
    # The heartbeat runs in the trio loop with the requests: a loop that
    # answers h2load flat out, or one that waits for connections, still beats,
    # so a short --worker-timeout kills no worker. (4 s: a beat every second;
    # shorter would also time a worker's start, seconds on a loaded machine.)
    with run_workers("--worker-timeout", "4", cwd=tmp_path) as server:
        workers = children(server.process.pid)
        result = subprocess.run([require_tool("h2load"), "-D", "4", "-c", "20", "-m", "10",
                                 server.url + "/"], capture_output=True, text=True,
                                timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
        # -D stops clients mid-request: "started" may exceed "done".
        assert re.search(r"requests: \d+ total, \d+ started, (\d+) done, \1 succeeded, "
                         r"0 failed, 0 errored", result.stdout), result.stdout
        time.sleep(5)  # idle: longer than a worker timeout
        assert children(server.process.pid) == workers
        assert server.signal_and_wait(signal.SIGTERM) == 0
        stderr = server.stderr.rest()
        assert "heartbeat" not in stderr and "killed" not in stderr, stderr


def test_a_worker_that_keeps_failing_is_given_up(tmp_path: Path) -> None:
    with run_workers(cwd=tmp_path) as server:
        victim, survivor = sorted(children(server.process.pid))
        (tmp_path / "fail-startup").touch()  # from now on, a new worker cannot start
        os.kill(victim, signal.SIGKILL)
        assert server.process.wait(timeout=TIMEOUT) == 1
        stderr = server.stderr.rest()
        failures = re.findall(r"worker \d \(pid \d+\) exited with status 1: application "
                              r"startup failed: fail-startup exists; (.*)$", stderr, re.MULTILINE)
        assert failures == ["starting a new one"] * (RESTART_LIMIT - 1) + [
            f"restarted {RESTART_LIMIT} times within {RESTART_WINDOW:g}s already: giving up, "
            "stopping the other workers"], stderr
        assert not alive(survivor)


def test_restart_budget() -> None:
    restarts: deque[float] = deque()
    # RESTART_LIMIT restarts, one a second; one more is refused until the
    # oldest is RESTART_WINDOW seconds old.
    assert all(may_restart(restarts, 100.0 + n) for n in range(RESTART_LIMIT))
    assert not may_restart(restarts, 100.0 + RESTART_WINDOW - 0.001)
    assert may_restart(restarts, 100.0 + RESTART_WINDOW)
    assert not may_restart(restarts, 100.0 + RESTART_WINDOW)
    assert list(restarts) == [100.0 + n for n in range(1, RESTART_LIMIT)] + [
        100.0 + RESTART_WINDOW]


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(("args", "status", "message"), [
    (["--workers", "0"], 2, "argument -w/--workers: expected a number of processes from 1 "
                            "to 1024, not '0'"),
    (["--workers", "two"], 2, "argument -w/--workers: expected a number of processes, "
                              "not 'two'"),
    (["--workers", "2", "--worker-timeout", "0"], 2,
     "argument --worker-timeout: expected a number of seconds > 0, not '0'"),
    (["--worker-timeout", "5"], 2, "--worker-timeout needs --workers N with N > 1"),
    (["nope:app", "--workers", "2"], 1, "cannot import module 'nope'"),
    (["pid:app", "--workers", "2"], 1, "application startup failed: fail-startup exists"),
], ids=["zero", "not-a-number", "zero-timeout", "timeout-without-workers", "import-error",
        "lifespan-startup-failed"])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], status: int,
                               message: str) -> None:
    # The lifespan startup fails in each worker; the supervisor says so once.
    write_module(tmp_path, "pid", PID_APP)
    (tmp_path / "fail-startup").touch()
    result = run_to_exit(*args, "--bind", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trio_h2: error: ")
    assert message in lines[0]

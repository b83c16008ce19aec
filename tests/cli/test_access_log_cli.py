"""The runner's ``--access-logfile`` and ``--access-logformat``, as a real
process spoken to by curl."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.access_log import APP, EVERY_ATOM, parse
from tests.support.processes import TIMEOUT, curl, run_server, run_to_exit, write_module


def served_lines(path: Path, count: int) -> list[str]:
    """The first ``count`` lines of the log file ``path``, once written."""
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    pytest.fail(f"{path} has not {count} lines: {path.read_text()!r}")


def test_access_logfile_every_atom_over_h2_http11_and_http10(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--access-logfile", str(log_file),
                    "--access-logformat", EVERY_ATOM, cwd=tmp_path) as server:
        for flag in ("--http2-prior-knowledge", "--http1.1", "--http1.0"):
            result = curl(flag, "-H", "X-Test: t", "-A", "curl-test", server.url + "/a?b")
            assert result.stdout == "0123456789", result.stderr
        lines = served_lines(log_file, 3)
    protocols = [parse(line)["H"] for line in lines]
    assert protocols == ["HTTP/2", "HTTP/1.1", "HTTP/1.0"]
    for line, protocol in zip(lines, protocols, strict=True):
        atoms = parse(line)
        assert atoms["r"] == f"GET /a?b {protocol}"
        assert (atoms["h"], atoms["s"], atoms["b"], atoms["a"]) == ("127.0.0.1", "200", "10",
                                                                    "curl-test")
        assert (atoms["{X-Test}i"], atoms["stream"], atoms["outcome"]) == ("t", "1", "ok")
        assert atoms["p"] == f"<{server.process.pid}>"


def test_access_logfile_dash_is_stdout_in_the_default_format(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--access-logfile", "-",
                    cwd=tmp_path) as server:
        result = curl("--http2-prior-knowledge", "-A", "agent/2", "-e", "http://ref/",
                      server.url + "/missing")
        assert result.returncode == 0, result.stderr
        line = server.stdout.readline()
    assert re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "GET /missing HTTP/2" 404 10 '
                        r'"http://ref/" "agent/2"', line), line


def test_no_access_logfile_no_access_log(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--log-level", "debug",
                    cwd=tmp_path) as server:
        assert curl("--http2-prior-knowledge", server.url + "/").returncode == 0
        server.process.terminate()
        server.process.wait(timeout=TIMEOUT)
        out, err = server.stdout.rest(), server.stderr.rest()
    assert out == "" and "GET /" not in err, (out, err)


def test_log_injection_is_escaped(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    forged = '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /admin HTTP/1.1" 200 1'
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--access-logfile", str(log_file),
                    "--access-logformat", '%(h)s "%(r)s" "%(U)s" "%(a)s"',
                    cwd=tmp_path) as server:
        # A percent-encoded line break in the path (decoded by %(U)s), quotes
        # and an escape sequence in the user agent.
        result = curl("--http2-prior-knowledge", "--globoff", "-A", f'x" \x1b[2K\x7f{forged}',
                      server.url + "/a%0D%0A" + quote(forged))
        assert result.returncode == 0, result.stderr
        lines = served_lines(log_file, 1)
    assert len(lines) == 1 and lines[0].startswith('127.0.0.1 "GET /a%0D%0A'), lines
    assert '"/a\\x0D\\x0A127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \\x22GET /admin' in lines[0]
    assert '"x\\x22 \\x1B[2K\\x7F127.0.0.1' in lines[0]
    assert lines[0].count('"') == 6


def test_real_client_address_from_a_trusted_proxy(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--proxy-headers",
                    "--forwarded-allow-ips", "127.0.0.1", "--access-logfile", str(log_file),
                    "--access-logformat", "%(h)s %(peer)s %(S)s", cwd=tmp_path) as server:
        result = curl("--http1.1", "-H", "X-Forwarded-For: 203.0.113.7, 127.0.0.1",
                      "-H", "X-Forwarded-Proto: https", server.url + "/")
        assert result.returncode == 0, result.stderr
        lines = served_lines(log_file, 1)
    assert lines == ["203.0.113.7 127.0.0.1 https"]


@pytest.mark.parametrize(("args", "status", "message"), [
    (["--access-logformat", "%(h)s %(nope)s"], 2,
     "argument --access-log-format/--access-logformat: unknown atom %(nope)"),
    (["--access-log-format", "%(h)"], 2, "incomplete format"),
    (["--access-logfile", "{tmp}/no/such/dir/access.log"], 1,
     "cannot open --access-logfile '{tmp}/no/such/dir/access.log'"),
])
def test_bad_access_log_options_one_line_at_start(tmp_path: Path, args: list[str], status: int,
                                                  message: str) -> None:
    args = [arg.format(tmp=tmp_path) for arg in args]
    result = run_to_exit(*args, "--bind", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trio_h2: error: "), result.stderr
    assert message.format(tmp=tmp_path) in lines[0]


def test_access_log_format_in_the_config_file(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    (tmp_path / "server.toml").write_text(
        f'access_log_format = "%(s)s %(H)s"\naccess_logfile = "{log_file}"\n')
    with run_server("logged:app", "--bind", "127.0.0.1:0", "-c", "server.toml",
                    cwd=tmp_path) as server:
        assert curl("--http1.1", server.url + "/").returncode == 0
        assert served_lines(log_file, 1) == ["200 HTTP/1.1"]


def test_log_config_routes_the_access_logger(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    (tmp_path / "logging.toml").write_text(
        'version = 1\n'
        '[handlers.access]\nclass = "logging.FileHandler"\nfilename = "routed.log"\n'
        '[loggers."trio_h2.access"]\nlevel = "INFO"\nhandlers = ["access"]\n'
        'propagate = false\n')
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--log-config", "logging.toml",
                    "--access-logformat", "%(r)s %(s)s", cwd=tmp_path) as server:
        assert curl("--http2-prior-knowledge", server.url + "/routed").returncode == 0
        assert served_lines(tmp_path / "routed.log", 1) == ["GET /routed HTTP/2 200"]


def test_workers_write_their_lines_to_one_file(tmp_path: Path) -> None:
    write_module(tmp_path, "logged", APP)
    log_file = tmp_path / "access.log"
    with run_server("logged:app", "--bind", "127.0.0.1:0", "--workers", "2",
                    "--access-logfile", str(log_file), "--access-logformat", "%(p)s %(U)s",
                    cwd=tmp_path) as server:
        for n in range(6):
            assert curl("--http1.1", f"{server.url}/{n}").returncode == 0
        lines = served_lines(log_file, 6)
    assert sorted(line.split()[1] for line in lines) == [f"/{n}" for n in range(6)]
    assert f"<{server.process.pid}>" not in {line.split()[0] for line in lines}

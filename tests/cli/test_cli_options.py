"""The runner's options as Hypercorn users type them: the config file, every
Config field as a flag, unix: and fd:// binds, TLS options, --max-requests,
logging. Each is seen where it has an effect: on the wire, in ``ss``, in the
log, in the scope the app gets. Servers are run as in ``test_cli``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
from contextlib import suppress
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from tests.support.processes import (
    PID_APP,
    SOURCE_ROOT,
    TIMEOUT,
    children,
    curl,
    h2c_get,
    meet_workers,
    run_server,
    run_to_exit,
    write_module,
)
from tests.support.tools import require_tool
from trio_h2._cli._options import OPTIONS, options_table, parser
from trio_h2._config import Config
from trio_h2._io.workers import REUSEPORT_SPREADS_CONNECTIONS

ROOT_PATH_APP = """
import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"root_path": scope["root_path"], "path": scope["path"],
                       "server": scope["server"], "client": scope["client"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def nghttp_settings(url: str) -> dict[str, int]:
    """The settings in the server's first SETTINGS frame, as ``nghttp -v`` shows them."""
    result = subprocess.run([require_tool("nghttp"), "-nv", url], capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    first = result.stdout.split("recv SETTINGS frame", 1)[1].split("send SETTINGS frame")[0]
    return {name: int(value) for name, value in re.findall(r"\[(\w+)\(0x\w+\):(\d+)\]", first)}


# -- the config file and the generated flags ---------------------------------------


def test_config_file_reaches_the_wire_and_the_command_line_wins(tmp_path: Path) -> None:
    (tmp_path / "trio_h2.toml").write_text(
        'bind = "127.0.0.1:0"\nmax_concurrent_streams = 7\nmax_frame_size = 32768\n'
        "reset_budget = {burst = 50, per_second = 5}\n")
    with run_server("-c", "trio_h2.toml", cwd=tmp_path) as server:
        settings = nghttp_settings(server.url + "/")
        assert settings["SETTINGS_MAX_CONCURRENT_STREAMS"] == 7
        assert settings["SETTINGS_MAX_FRAME_SIZE"] == 32768
        assert server.signal_and_wait(signal.SIGTERM) == 0
    with run_server("--config", "trio_h2.toml", "--max-concurrent-streams", "9",
                    cwd=tmp_path) as server:
        settings = nghttp_settings(server.url + "/")
        assert settings["SETTINGS_MAX_CONCURRENT_STREAMS"] == 9
        assert settings["SETTINGS_MAX_FRAME_SIZE"] == 32768
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_every_config_field_is_a_flag_and_a_key() -> None:
    flags = {action.dest for action in parser()._actions}
    names = {field.name for field in dataclasses.fields(Config)}
    assert names <= flags
    assert names <= {option.name for option in OPTIONS}
    for option in OPTIONS:
        assert option.flag == "--" + option.name.replace("_", "-")


def test_the_documented_table_is_the_code() -> None:
    # Regenerate with: python -c "from trio_h2._cli._options import options_table;
    # print(options_table(), end='')" > docs/options.inc
    documented = (Path(SOURCE_ROOT) / "docs" / "options.inc").read_text()
    assert documented == options_table()
    for option in OPTIONS:
        assert f"``{option.name}``" in documented


def test_flags_reach_the_scope_and_the_settings(tmp_path: Path) -> None:
    write_module(tmp_path, "rootpath", ROOT_PATH_APP)
    with run_server("rootpath:app", "--bind", "127.0.0.1:0", "--root-path", "/api",
                    "--initial-window-size", "1000", "--no-rfc7540-priorities",
                    cwd=tmp_path) as server:
        scope = json.loads(h2c_get(server.url + "/items"))
        assert scope["root_path"] == "/api" and scope["path"] == "/api/items"
        settings = nghttp_settings(server.url + "/")
        assert settings["SETTINGS_INITIAL_WINDOW_SIZE"] == 1000
        assert settings["SETTINGS_NO_RFC7540_PRIORITIES"] == 1
        assert server.signal_and_wait(signal.SIGTERM) == 0


# -- binding ---------------------------------------------------------------------------


def test_unix_socket(tmp_path: Path) -> None:
    write_module(tmp_path, "rootpath", ROOT_PATH_APP)
    path = tmp_path / "app.sock"
    # A stale socket (its process died: nobody listens) is replaced.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    with run_server("rootpath:app", "--bind", f"unix:{path}", "--bind", "127.0.0.1:0",
                    cwd=tmp_path) as server:
        assert server.urls[0] == f"unix:{path}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        for flags in (["--http2-prior-knowledge"], []):
            result = curl("--unix-socket", str(path), *flags, "--fail",
                          "http://localhost/x", "--write-out", "\n%{http_version}")
            assert result.returncode == 0, result.stderr
            body, _, version = result.stdout.rpartition("\n")
            assert version == ("2" if flags else "1.1")
            scope = json.loads(body)
            assert scope["server"] == [str(path), None] and scope["client"] is None
        # Someone listens on it: a second runner must not take it over.
        second = run_to_exit("--bind", f"unix:{path}", cwd=tmp_path)
        assert second.returncode == 1
        assert second.stderr == (f"trio_h2: error: cannot listen on unix:{path}: another "
                                 "process is listening on it\n")
        assert server.signal_and_wait(signal.SIGTERM) == 0
    assert not path.exists()  # removed on the way out


def test_unix_socket_mode_and_a_file_in_the_way(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    with run_server("--bind", f"unix:{path}", "--unix-socket-mode", "600",
                    cwd=tmp_path) as server:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert server.signal_and_wait(signal.SIGTERM) == 0
    path.write_text("not a socket")
    result = run_to_exit("--bind", f"unix:{path}", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, (
        f"trio_h2: error: cannot listen on unix:{path}: the file exists and is not a "
        "socket (not removed)\n"))
    assert path.read_text() == "not a socket"


@pytest.mark.parametrize("workers", [1, 2])
def test_inherited_listening_socket(tmp_path: Path, workers: int) -> None:
    # As systemd's socket activation: the socket is made and listening before
    # the runner starts, and reaches it as a file descriptor.
    write_module(tmp_path, "pid", PID_APP)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        fd = listening.fileno()
        with run_server("pid:app", "--bind", f"fd://{fd}", "--workers", str(workers),
                        cwd=tmp_path, pass_fds=(fd,)) as server:
            try:
                assert server.urls == [f"http://127.0.0.1:{port}"]
                listening.close()  # the runner (and its workers) hold their own copies
                pids = meet_workers(server.url, lambda seen: len(seen) == workers)
                if workers > 1:
                    assert pids == children(server.process.pid)
                assert server.signal_and_wait(signal.SIGTERM) == 0
            finally:
                kill(children(server.process.pid))


@pytest.mark.skipif(not REUSEPORT_SPREADS_CONNECTIONS, reason="--workers needs Linux")
def test_unix_socket_shared_by_workers(tmp_path: Path) -> None:
    write_module(tmp_path, "pid", PID_APP)
    path = tmp_path / "app.sock"
    with run_server("pid:app", "--bind", f"unix:{path}", "--workers", "2",
                    cwd=tmp_path) as server:
        workers = children(server.process.pid)
        try:
            seen = set()
            for _ in range(200):
                result = curl("--unix-socket", str(path), "--fail", "http://localhost/")
                assert result.returncode == 0, result.stderr
                seen.add(int(result.stdout))
                if seen == workers:
                    break
            assert seen == workers
            assert server.signal_and_wait(signal.SIGTERM) == 0
        finally:
            kill(workers)
    assert not path.exists()


def kill(pids: set[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(("make", "message"), [
    ("udp", "is a SOCK_DGRAM socket, not a stream socket"),
    ("unlistening", "is a socket that is not listening"),
    ("file", "is not a socket"),
    ("closed", "is not open (was it passed to this process?)"),
])
def test_inherited_fd_that_cannot_serve(tmp_path: Path, make: str, message: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp, \
            open(tmp_path / "file", "w") as file:
        fd = {"udp": udp.fileno(), "unlistening": tcp.fileno(), "file": file.fileno(),
              "closed": 1000}[make]
        result = run_to_exit("--bind", f"fd://{fd}", cwd=tmp_path,
                             pass_fds=() if make == "closed" else (fd,))
    assert result.returncode == 1
    assert result.stderr == f"trio_h2: error: cannot listen on fd://{fd}: file descriptor " \
                            f"{fd} {message}\n"


def test_backlog_is_the_listen_queue(tmp_path: Path) -> None:
    ss = require_tool("ss")
    path = tmp_path / "app.sock"
    with run_server("--bind", "127.0.0.1:0", "--bind", f"unix:{path}", "--backlog", "7",
                    cwd=tmp_path) as server:
        port = server.url.rsplit(":", 1)[1]
        # For a listening socket, ss's Send-Q column is its backlog.
        tcp = subprocess.run([ss, "-Hltn", f"sport = :{port}"], capture_output=True,
                             text=True, timeout=TIMEOUT).stdout.split()
        assert tcp[2] == "7", tcp
        unix = subprocess.run([ss, "-Hlx", f"src {path}"], capture_output=True, text=True,
                              timeout=TIMEOUT).stdout.split()
        assert unix[3] == "7", unix
        assert server.signal_and_wait(signal.SIGTERM) == 0


# -- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca, client_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = client_ca.issue_cert("client@example.org")
    stranger = trustme.CA().issue_cert("client@example.org")
    files = {name: directory / f"{name}.pem" for name in (
        "ca", "client_ca", "server", "server_key", "encrypted_key", "client", "stranger")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client_ca.cert_pem.write_to_path(str(files["client_ca"]))
    for i, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(files["server"]), append=i > 0)
    server.private_key_pem.write_to_path(str(files["server_key"]))
    key = load_pem_private_key(server.private_key_pem.bytes(), password=None)
    files["encrypted_key"].write_bytes(key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"s3cret")))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    stranger.private_key_and_cert_chain_pem.write_to_path(str(files["stranger"]))
    return files


def _tls_args(pki: dict[str, Path], *extra: str) -> list[str]:
    return ["--bind", "127.0.0.1:0", "--certfile", str(pki["server"]), "--keyfile",
            str(pki["server_key"]), *extra]


def test_mutual_tls_required(tmp_path: Path, pki: dict[str, Path]) -> None:
    # Hypercorn's spelling of "required".
    args = _tls_args(pki, "--ca-certs", str(pki["client_ca"]), "--verify-mode",
                     "CERT_REQUIRED")
    with run_server(*args, cwd=tmp_path) as server:
        url = f"https://localhost:{server.url.rsplit(':', 1)[1]}/api/info.json"
        with_cert = curl("--cacert", str(pki["ca"]), "--cert", str(pki["client"]), url)
        assert with_cert.returncode == 0, with_cert.stderr
        assert json.loads(with_cert.stdout)["http_version"] == "2"
        # Refused in the handshake, never answered. Over TLS 1.2 curl sees the
        # alert in the handshake (35); over TLS 1.3 the server checks the
        # certificate after curl has sent its Finished (and maybe its
        # request), so curl's error depends on timing.
        refused = [curl("--cacert", str(pki["ca"]), "--tls-max", "1.2", url),
                   curl("--cacert", str(pki["ca"]), url),
                   curl("--cacert", str(pki["ca"]), "--cert", str(pki["stranger"]), url)]
        assert refused[0].returncode == 35, refused[0]
        for result in refused:
            assert result.returncode != 0 and result.stdout == "", result
        assert server.signal_and_wait(signal.SIGTERM) == 0
        log = server.stderr.rest()
        assert log.count("TLS handshake failed") == 3, log
        assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in log
        assert "CERTIFICATE_VERIFY_FAILED" in log


def test_mutual_tls_optional(tmp_path: Path, pki: dict[str, Path]) -> None:
    args = _tls_args(pki, "--ca-certs", str(pki["client_ca"]), "--verify-mode", "optional")
    with run_server(*args, cwd=tmp_path) as server:
        url = f"https://localhost:{server.url.rsplit(':', 1)[1]}/"
        assert curl("--cacert", str(pki["ca"]), "--fail", "-o", "/dev/null", url).returncode == 0
        with_cert = curl("--cacert", str(pki["ca"]), "--cert", str(pki["client"]), "--fail",
                         "-o", "/dev/null", url)
        assert with_cert.returncode == 0, with_cert.stderr
        stranger = curl("--cacert", str(pki["ca"]), "--cert", str(pki["stranger"]),
                        "--tls-max", "1.2", url)
        assert stranger.returncode == 35, stranger
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_ciphers_narrow_tls12(tmp_path: Path, pki: dict[str, Path]) -> None:
    chosen = "ECDHE-ECDSA-CHACHA20-POLY1305"
    with run_server(*_tls_args(pki, "--ciphers", f"{chosen}:AES128-SHA"),
                    cwd=tmp_path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.cipher()[0] == chosen
        # A TLS 1.2 client offering only suites outside the list is refused.
        context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
                pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="localhost")
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_keyfile_password(tmp_path: Path, pki: dict[str, Path]) -> None:
    args = ["--bind", "127.0.0.1:0", "--certfile", str(pki["server"]),
            "--keyfile", str(pki["encrypted_key"])]
    with run_server(*args, "--keyfile-password", "s3cret", cwd=tmp_path) as server:
        url = f"https://localhost:{server.url.rsplit(':', 1)[1]}/"
        result = curl("--cacert", str(pki["ca"]), "--fail", "-o", "/dev/null", url)
        assert result.returncode == 0, result.stderr
        assert server.signal_and_wait(signal.SIGTERM) == 0
    wrong = run_to_exit(*args, "--keyfile-password", "wrong", cwd=tmp_path)
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("trio_h2: error: cannot load TLS certificate")
    assert len(wrong.stderr.splitlines()) == 1


# -- workers: --max-requests -----------------------------------------------------------


@pytest.mark.skipif(not REUSEPORT_SPREADS_CONNECTIONS, reason="--workers needs Linux")
def test_max_requests_replaces_a_worker(tmp_path: Path) -> None:
    write_module(tmp_path, "pid", PID_APP)
    path = tmp_path / "app.sock"
    # One shared Unix socket: every request reaches one of the two workers,
    # and three requests to a worker retire it.
    with run_server("pid:app", "--bind", f"unix:{path}", "--workers", "2",
                    "--max-requests", "3", cwd=tmp_path) as server:
        first = children(server.process.pid)
        served = []
        try:
            for _ in range(12):
                result = curl("--unix-socket", str(path), "--fail", "http://localhost/")
                assert result.returncode == 0, result.stderr
                served.append(int(result.stdout))
            assert server.signal_and_wait(signal.SIGTERM) == 0
        finally:
            kill(first | children(server.process.pid))
        log = server.stderr.rest()
        # No worker served more than three; 12 requests needed at least 4 workers.
        assert max(served.count(pid) for pid in set(served)) <= 3
        assert len(set(served)) >= 4
        assert log.count("retired after its --max-requests; starting a new one") >= 2
        assert "giving up" not in log


# -- logging ---------------------------------------------------------------------------


def test_log_config_and_error_logfile(tmp_path: Path) -> None:
    (tmp_path / "logging.json").write_text(json.dumps({
        "version": 1,
        "formatters": {"plain": {"format": "CUSTOM %(levelname)s %(message)s"}},
        "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stderr"}},
        "loggers": {"trio_h2": {"handlers": ["err"], "level": "INFO", "propagate": False}},
    }))
    with run_server("--bind", "127.0.0.1:0", "--log-config", "logging.json",
                    cwd=tmp_path) as server:
        assert server.signal_and_wait(signal.SIGTERM) == 0
        assert server.stderr.rest().startswith("CUSTOM INFO SIGTERM received: shutting down")
    with run_server("--bind", "127.0.0.1:0", "--error-logfile", "errors.log",
                    cwd=tmp_path) as server:
        assert server.signal_and_wait(signal.SIGTERM) == 0
        assert server.stderr.rest() == ""
    assert "INFO trio_h2: SIGTERM received" in (tmp_path / "errors.log").read_text()


# -- bad values: one line, exit status 2 ---------------------------------------------

BAD_VALUES = [
    (["--bind", "unix:"], "argument -b/--bind: invalid address 'unix:': expected unix:PATH"),
    (["--bind", "fd://x"], "invalid address 'fd://x': expected fd://N"),
    (["--max-concurrent-streams", "0"],
     "argument --max-concurrent-streams: must be between 1 and 2147483647, not 0"),
    (["--max-concurrent-streams", "many"],
     "argument --max-concurrent-streams: expected a whole number, not 'many'"),
    (["--initial-window-size", "2147483648"], "argument --initial-window-size: must be between"),
    (["--idle-timeout", "0"], "argument --idle-timeout: must be a number of seconds > 0"),
    (["--idle-timeout", "nan"], "argument --idle-timeout: expected a number of seconds, "
                                "not 'nan'"),
    (["--reset-budget", "10"], "argument --reset-budget: expected BURST/PER_SECOND"),
    (["--reset-budget", "0/1"], "argument --reset-budget: expected BURST/PER_SECOND"),
    (["--lifespan", "maybe"], "argument --lifespan: expected one of auto, on, off, "
                              "not 'maybe'"),
    (["--root-path", "/api/"], "argument --root-path: must not end with '/': '/api/'"),
    (["--backlog", "0"], "argument --backlog: expected a number of connections from 1 to "
                         "65535, not '0'"),
    (["--unix-socket-mode", "999"], "argument --unix-socket-mode: expected an octal file "
                                    "mode such as 660, not '999'"),
    (["--unix-socket-mode", "600"], "--unix-socket-mode needs a --bind unix:PATH"),
    (["--max-requests", "0"], "argument --max-requests: expected a number of requests from 1"),
    (["--max-requests", "10"], "--max-requests needs --workers N with N > 1"),
    (["--max-requests-jitter", "-1"], "argument --max-requests-jitter: expected a number of "
                                      "requests from 0"),
    (["--workers", "2", "--max-requests-jitter", "5"],
     "--max-requests-jitter needs --max-requests"),
    (["--verify-mode", "sometimes"], "argument --verify-mode: expected one of none, "
                                     "optional, required, not 'sometimes'"),
    (["--verify-mode", "required", "--self-signed"], "--verify-mode required needs --ca-certs"),
    (["--ca-certs", "{ca}", "--self-signed"], "--ca-certs needs --verify-mode optional or "
                                              "required"),
    (["--ciphers", "ECDHE+AESGCM"], "--ca-certs, --verify-mode and --ciphers need TLS"),
    (["--ciphers", "AES128-SHA", "--self-signed"],
     "--ciphers: cipher string 'AES128-SHA' leaves no TLS 1.2 cipher suite that RFC 9113 "
     "allows"),
    (["--keyfile-password", "x"], "--keyfile-password needs --certfile"),
    (["--certfile", "{server}", "--keyfile", "{encrypted_key}"],
     "the private key in '{encrypted_key}' is encrypted: give its password with "
     "--keyfile-password"),
    (["--log-level", "verbose"], "argument --log-level: expected one of debug, info"),
    (["--log-config", "logging.ini"], "--log-config 'logging.ini': expected a .json or .toml "
                                      "file"),
    (["--log-config", "bad.json"], "--log-config 'bad.json' is not valid JSON"),
    (["--log-config", "noversion.toml"], "--log-config 'noversion.toml': expected a "
                                         "dictConfig table with version = 1"),
    (["--log-config", "badhandler.json"], "--log-config 'badhandler.json': Unable to "
                                          "configure handler 'x'"),
    (["--http1=yes"], "argument --http1/--no-http1: ignored explicit argument 'yes'"),
    (["-c", "unknown.toml"], "config file 'unknown.toml': unknown key 'max_streams'"),
    (["-c", "dashes.toml"], "config file 'dashes.toml': unknown key 'max-concurrent-streams' "
                            "(did you mean 'max_concurrent_streams'?)"),
    (["-c", "badvalue.toml"], "config file 'badvalue.toml': max_concurrent_streams = 0: "
                              "must be between 1 and 2147483647, not 0"),
    (["-c", "badtype.toml"], "config file 'badtype.toml': idle_timeout = \"soon\": expected "
                             "a number of seconds, not 'soon'"),
    (["-c", "badbool.toml"], "config file 'badbool.toml': http1 = 1: expected true or false"),
    (["-c", "badbind.toml"], "config file 'badbind.toml': bind = 8000: expected an address "
                             "or a list of addresses"),
    (["-c", "notoml.toml"], "config file 'notoml.toml' is not valid TOML"),
]

FILES = {
    "unknown.toml": "max_streams = 10\n",
    "dashes.toml": "max-concurrent-streams = 10\n",
    "badvalue.toml": "max_concurrent_streams = 0\n",
    "badtype.toml": 'idle_timeout = "soon"\n',
    "badbool.toml": "http1 = 1\n",
    "badbind.toml": "bind = 8000\n",
    "notoml.toml": "this is = = not toml\n",
    "bad.json": "{not json",
    "noversion.toml": "[loggers]\n",
    "badhandler.json": json.dumps({"version": 1, "handlers": {"x": {"class": "no.Such"}}}),
}


@pytest.mark.parametrize(("args", "message"), BAD_VALUES,
                         ids=[" ".join(case[0]) for case in BAD_VALUES])
def test_bad_value_is_one_line_exit_2(tmp_path: Path, pki: dict[str, Path], args: list[str],
                                      message: str) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    names = {name: str(path) for name, path in pki.items()}
    args = [arg.format(**names) for arg in args]
    if not any(arg.startswith(("--bind", "-c")) for arg in args):
        args += ["--bind", "127.0.0.1:0"]
    result = run_to_exit(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trio_h2: error: ")
    assert message.format(**names) in lines[0]

"""``--reload``: the runner as a real process, its app module edited on disk,
spoken to by curl. Each wait for the new code polls with a bound; nothing
asserts how long a restart takes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.support.processes import Server, curl, run_server, run_to_exit, write_module

# Seconds the new code may take to answer after a change: watchfiles'
# debounce (1.6 s), the old worker's graceful stop and a new python process
# importing the app, on a loaded machine.
RELOAD_LIMIT = 60.0

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200}})
    await send({{"type": "http.response.body", "body": {answer!r}}})
"""

# An app whose answer is read, at import, from conf/answer.txt.
CONFIGURED_APP = """
from pathlib import Path

ANSWER = Path("conf/answer.txt").read_bytes()

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": ANSWER})
"""


def answer(server: Server) -> str | None:
    result = curl("--max-time", "5", server.url + "/")
    return result.stdout if result.returncode == 0 else None


def wait_for_answer(server: Server, expected: str) -> None:
    """Poll until the server answers ``expected`` (while a worker restarts,
    connections are refused)."""
    deadline = time.monotonic() + RELOAD_LIMIT
    seen = None
    while time.monotonic() < deadline:
        seen = answer(server)
        if seen == expected:
            return
        time.sleep(0.2)
    pytest.fail(f"still answering {seen!r}, not {expected!r}, {RELOAD_LIMIT}s after the edit")


def test_edit_reloads_and_a_syntax_error_waits_for_the_next_edit(tmp_path: Path) -> None:
    write_module(tmp_path, "edited", APP.format(answer=b"one"))
    with run_server("edited:app", "--reload", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        assert "reloading on changes to *.py in ." in server.line
        assert answer(server) == "one"
        write_module(tmp_path, "edited", APP.format(answer=b"two"))
        wait_for_answer(server, "two")
        assert any("edited.py changed: restarting the worker" in line
                   for line in server.stderr.wait_for("serving"))

        write_module(tmp_path, "edited", APP.format(answer=b"two") + "\ndef broken(:\n")
        lines = server.stderr.wait_for("waiting for a source change")
        failure = [line for line in lines if "ERROR" in line]
        assert len(failure) == 1, lines
        assert "SyntaxError" in failure[0] and "edited.py, line" in failure[0]
        assert "Traceback" not in "\n".join(lines)
        assert server.process.poll() is None  # the supervisor waits

        write_module(tmp_path, "edited", APP.format(answer=b"three"))
        wait_for_answer(server, "three")
        assert server.signal_and_wait(signal.SIGTERM) == 0


def test_reload_dir_and_include(tmp_path: Path) -> None:
    write_module(tmp_path, "configured", CONFIGURED_APP)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "answer.txt").write_text("first")
    with run_server("configured:app", "--reload", "--reload-dir", "conf",
                    "--reload-include", "*.txt", "--bind", "127.0.0.1:0",
                    cwd=tmp_path) as server:
        assert "reloading on changes to *.txt in conf" in server.line
        assert answer(server) == "first"
        (tmp_path / "conf" / "answer.txt").write_text("second")
        wait_for_answer(server, "second")
        assert server.signal_and_wait(signal.SIGTERM) == 0


BAD = [
    (["--reload-dir", "."], 2, "--reload-dir and --reload-include need --reload"),
    (["--reload-include", "*.txt"], 2, "--reload-dir and --reload-include need --reload"),
    (["--reload", "--reload-dir", "nowhere"], 1, "--reload-dir 'nowhere' is not a directory"),
    (["--reload", "--reload-include", ""], 2,
     "argument --reload-include: expected a file name pattern, not an empty string"),
]


@pytest.mark.parametrize(("args", "status", "message"), BAD, ids=[" ".join(a) for a, *_ in BAD])
def test_bad_reload_options_one_line(tmp_path: Path, args: list[str], status: int,
                                     message: str) -> None:
    result = run_to_exit(*args, "--bind", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trio_h2: error: "), result.stderr
    assert message in lines[0]


def test_reload_without_watchfiles_names_the_extra(tmp_path: Path) -> None:
    # The current directory is first on the runner's path: this watchfiles
    # is the one it finds, and it does not import.
    (tmp_path / "watchfiles.py").write_text("raise ImportError('not installed')\n")
    result = run_to_exit("--reload", "--bind", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ("trio_h2: error: --reload needs the watchfiles package: "
                             "pip install 'trio_h2[reload]'\n")


def test_reload_config_file_key(tmp_path: Path) -> None:
    write_module(tmp_path, "edited", APP.format(answer=b"one"))
    (tmp_path / "dev.toml").write_text('reload = true\nreload_include = ["*.py"]\n')
    with run_server("edited:app", "-c", "dev.toml", "--bind", "127.0.0.1:0",
                    cwd=tmp_path) as server:
        assert "reloading on changes to *.py in ." in server.line
        write_module(tmp_path, "edited", APP.format(answer=b"two"))
        wait_for_answer(server, "two")

"""Regenerate docs/_static/priority-on.png and priority-off.png.

Starts ``python -m trio_h2 --self-signed`` (this checkout's trio_h2) on a free
port, and has headless Chromium load ``/priority`` and
``/priority?priority=off`` and take a screenshot of each::

    python docs/priority_screenshots.py

Needs ``chromium`` on PATH. Each load is a fresh browser and connection, so
the waterfall shows one page load; the late request's place varies from run
to run with how busy the machine is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "docs" / "_static"
# The page's header and waterfall card at the width the docs show.
WINDOW = "1100,640"


def main() -> None:
    chromium = shutil.which("chromium") or sys.exit("chromium is not on PATH")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, "-m", "trio_h2", "--self-signed", "--bind", "127.0.0.1:0"],
            stdout=subprocess.PIPE, text=True, env={**env, "TMPDIR": tmp})
        assert server.stdout is not None
        try:
            port = spki = None
            for line in server.stdout:
                if found := re.search(r"https://127\.0\.0\.1:(\d+)", line):
                    port = port or found[1]
                if found := re.search(r"--ignore-certificate-errors-spki-list=(\S+)", line):
                    spki = found[1]
                    break
            assert port and spki, "the runner did not print its address and SPKI hash"
            for name, query in (("priority-on.png", ""), ("priority-off.png",
                                                          "?priority=off")):
                profile = tempfile.mkdtemp(dir=tmp)
                subprocess.run(
                    [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                     f"--user-data-dir={profile}", f"--ignore-certificate-errors-spki-list={spki}",
                     "--virtual-time-budget=20000", f"--window-size={WINDOW}",
                     f"--screenshot={STATIC / name}",
                     f"https://localhost:{port}/priority{query}"],
                    check=True, capture_output=True, timeout=120)
                print(f"wrote {STATIC / name}")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()

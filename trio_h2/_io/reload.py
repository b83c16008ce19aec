"""``--reload``: watching the source files, for the supervisor to replace its workers.

The watching is `watchfiles <https://watchfiles.helpmanual.io/>`__'s (uvicorn's
choice too; inotify on Linux, through its Rust core), an optional dependency:
``pip install trio_h2[reload]``. It runs on trio through anyio. What it
watches: every file under the watched directories (the current directory by
default, recursively) whose name matches one of the patterns (``*.py`` by
default), skipping what watchfiles' default filter skips (``.git``,
``__pycache__``, virtual environments, editors' temporary files). Changes
are collected for watchfiles' debounce (1.6 s), so that an editor's or a
``git checkout``'s many writes make one restart.

What a change does is the supervisor's (:meth:`~._io.workers.Supervisor.reload`):
each worker is stopped gracefully and a new one, importing the code afresh,
takes its place.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import final

__all__ = ["DEFAULT_PATTERNS", "RELOAD_EXTRA", "SourceWatcher", "check_available"]

DEFAULT_PATTERNS = ("*.py",)
RELOAD_EXTRA = "trio_h2[reload]"
# How many changed files the log line names; the rest are counted.
NAMED_CHANGES = 3


def check_available() -> None:
    """Raise :exc:`ImportError` saying which extra to install if watchfiles
    is not importable."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise ImportError(f"--reload needs the watchfiles package: pip install "
                          f"'{RELOAD_EXTRA}'") from None


@final
class SourceWatcher:
    """Calls ``changed(what)`` each time files matching ``patterns`` under
    ``directories`` change (``what`` names them), until cancelled."""

    def __init__(self, directories: Sequence[str], patterns: Sequence[str]) -> None:
        self.directories = [Path(directory).resolve() for directory in directories]
        self.patterns = tuple(patterns)

    def describe(self) -> str:
        here = Path.cwd()
        places = ", ".join(os.path.relpath(directory, here) if directory.is_relative_to(here)
                           else str(directory) for directory in self.directories)
        return f"reloading on changes to {' '.join(self.patterns)} in {places}"

    async def run(self, changed: Callable[[str], object]) -> None:
        import watchfiles

        default = watchfiles.DefaultFilter()

        def wanted(change: watchfiles.Change, path: str) -> bool:
            name = os.path.basename(path)
            return default(change, path) and any(fnmatch.fnmatch(name, pattern)
                                                 for pattern in self.patterns)

        # awatch runs its Rust watcher in a thread, through anyio on trio.
        async for changes in watchfiles.awatch(*self.directories, watch_filter=wanted):
            changed(_names([path for _, path in changes]))


def _names(paths: Sequence[str]) -> str:
    """The changed files, relative to the current directory, the first few named."""
    names = sorted({os.path.relpath(path) for path in paths})
    what = ", ".join(names[:NAMED_CHANGES])
    if len(names) > NAMED_CHANGES:
        what += f" and {len(names) - NAMED_CHANGES} more"
    return what

"""What ``bench/compare.py`` keeps of one load generator run (h2load or wrk).

Each tool has a module that builds its command line and reads its summary
(``_h2load``, ``_wrk``); both read into a :class:`LoadResult` through
:func:`run`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One run of a load generator. ``problems`` is empty only if every
    request got a 2xx answer and no connection failed; ``counts`` are the
    tool's own request and error counts, as it printed them."""

    command: list[str]
    requests_per_second: float
    problems: list[str]
    output: str
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Parser = Callable[[list[str], str, int], LoadResult]


def run(argv: list[str], timeout: float, parse: Parser) -> LoadResult:
    """Run ``argv`` and read its output with ``parse`` (argv, output, exit status)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else ""
        return LoadResult(argv, 0.0, [f"{argv[0]} ran past {timeout:.0f} s"], output)
    return parse(argv, done.stdout + done.stderr, done.returncode)

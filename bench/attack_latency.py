"""How long bystanders wait while trio_h2 is attacked: latency, not liveness.

The attack tests (``tests/attacks/test_floods.py``, ``tests/attacks/test_slow.py``,
``tests/io/test_containment.py``) only judge liveness: every bystander request must be
answered within 10 s (``tests/support/attack_harness.py``). This script runs those
same tests, with pytest, and collects what their bystanders measured: for
each test that runs its attack under the harness's ``watched``, the
latency of the bystander requests started while the attack ran (median, p99,
max, over all rounds), and how many of them failed. The attacks are the
tests' own: nothing is duplicated here.

Server, attacker and bystanders share this process and its one event loop,
as in the tests, so a latency includes the attacker's own work. The numbers
depend on the machine and on what else it runs: the header line says how
many cores there are and the load average. The bystanders ask every 100 ms,
so an attack that lasts a second gives about 20 requests per round; p99
over fewer than 100 requests is the largest but one at most.

Run: ``python bench/attack_latency.py [--rounds N] [-k EXPR]`` from the
repository root (``nox -s bench -- attack_latency --rounds 3``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import attack_harness  # noqa: E402  (needs ROOT on sys.path)

TEST_FILES = ["tests/attacks/test_floods.py", "tests/attacks/test_slow.py",
              "tests/io/test_containment.py"]


@dataclass
class Samples:
    """What one test's bystanders saw during its attacks, over the rounds."""

    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    outcomes: list[str] = field(default_factory=list)


class Recorder:
    """A pytest plugin: files each finished :class:`~tests.support.attack_harness.Watch`
    under the test that ran it."""

    def __init__(self) -> None:
        self.samples: dict[str, Samples] = defaultdict(Samples)
        self._current = ""

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self._current = item.nodeid

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.nodeid in self.samples:
            self.samples[report.nodeid].outcomes.append(report.outcome)

    def observe(self, watch: attack_harness.Watch) -> None:
        latencies, failed = watch.during_attack()
        samples = self.samples[self._current]
        samples.latencies += latencies
        samples.failed += failed


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least
    ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def table(recorder: Recorder) -> list[str]:
    rows = [("attack (test)", "requests", "median ms", "p99 ms", "max ms", "failed",
             "test outcomes")]
    for nodeid, samples in recorder.samples.items():
        name = nodeid.split("::", 1)[1].removeprefix("test_")
        values = samples.latencies
        if values:
            figures = [f"{1000 * statistics.median(values):.1f}",
                       f"{1000 * percentile(values, 0.99):.1f}", f"{1000 * max(values):.1f}"]
        else:
            figures = ["-", "-", "-"]
        outcomes = ", ".join(f"{samples.outcomes.count(o)} {o}"
                             for o in sorted(set(samples.outcomes)))
        rows.append((name, str(len(values)), *figures, str(samples.failed), outcomes))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="how many times to run every attack (default %(default)s)")
    parser.add_argument("-k", dest="keyword", help="only the tests pytest's -k selects")
    args = parser.parse_args()

    recorder = Recorder()
    attack_harness.WATCH_OBSERVERS.append(recorder.observe)
    os.chdir(ROOT)
    selection = ["-k", args.keyword] if args.keyword else []
    statuses = []
    for _ in range(args.rounds):
        statuses.append(pytest.main(["-q", "-p", "no:cacheprovider", *selection, *TEST_FILES],
                                    plugins=[recorder]))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nBystander latency during each attack, {args.rounds} round(s); "
          f"{os.cpu_count()} cores, load average {load}")
    print("\n".join(table(recorder)))
    return 0 if all(status == pytest.ExitCode.OK for status in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())

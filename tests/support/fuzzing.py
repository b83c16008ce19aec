"""Hypothesis settings of the fuzz and property tests over sockets.

``TRIO_H2_FUZZ_EXAMPLES`` sets the examples per test (default 60, derandomized
so that CI runs the same examples every time). Set it, for instance to 5000,
for a long run that explores (``nox -s fuzz``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("TRIO_H2_FUZZ_EXAMPLES", "60"))
LONG_RUN = "TRIO_H2_FUZZ_EXAMPLES" in os.environ
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # CI: the same examples every run. A long run explores.
    derandomize=not LONG_RUN,
    database=None if not LONG_RUN else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

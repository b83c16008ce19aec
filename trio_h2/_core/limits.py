"""Budgets for what a client may make the server do for nothing. Pure.

HTTP/2 lets a client cost the server work with frames that carry no request:
RST_STREAM (Rapid Reset, CVE-2023-44487), PING, SETTINGS and PRIORITY floods
(CVE-2019-9512, 9515, 9513), empty frames (CVE-2019-9518), and frames that
make the server reset streams itself (MadeYouReset, CVE-2025-8671). Each kind
draws on a token bucket; a client that empties one is answered with GOAWAY
ENHANCE_YOUR_CALM. Time comes from a clock the caller passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import final


@final
@dataclass(frozen=True, slots=True)
class Budget:
    """``burst`` events at once, refilled at ``per_second``."""

    burst: int
    per_second: float

    def __post_init__(self) -> None:
        if self.burst < 1 or not self.per_second >= 0:
            raise ValueError(f"a budget needs burst >= 1 and per_second >= 0, not {self}")


@final
class TokenBucket:
    """Spend one token per event; :meth:`spend` is False once none are left."""

    __slots__ = ("_budget", "_clock", "_stamp", "_tokens")

    def __init__(self, budget: Budget, clock: Callable[[], float]) -> None:
        self._budget = budget
        self._clock = clock
        self._tokens = float(budget.burst)
        self._stamp = clock()

    def spend(self, count: int = 1) -> bool:
        now = self._clock()
        budget = self._budget
        self._tokens = min(budget.burst, self._tokens + (now - self._stamp) * budget.per_second)
        self._stamp = now
        self._tokens -= count
        return self._tokens >= 0

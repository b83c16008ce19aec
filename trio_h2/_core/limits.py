"""Budgets for what a client may make the server do for nothing. Pure.

HTTP/2 lets a client cost the server work with frames that carry no request:
RST_STREAM (Rapid Reset, CVE-2023-44487), PING, SETTINGS and PRIORITY floods
(CVE-2019-9512, 9515, 9513), empty frames (CVE-2019-9518), and frames that
make the server reset streams itself (MadeYouReset, CVE-2025-8671), and DATA
frames far smaller than the work each one costs. Each kind draws on a token
bucket; a client that empties one is answered with GOAWAY
ENHANCE_YOUR_CALM. Time comes from a clock the caller passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import final

DATA_FRAME_COST = 256
"""What one DATA frame costs the server, counted in bytes of body. A frame
costs about 10 microseconds of CPU whatever it carries (``python
bench/receive_cost.py data-``, with no budget: 68 ms per 64 KiB read of
1-byte frames, 41 ms of 9-byte frames, 3.5 ms of 256-byte frames, 0.1 ms of
16 KiB frames), so counting only the 9-byte frame header would leave most
of a flood free. 256 is hyper's h2 threshold for a small DATA frame
(DEFAULT_DATA_FRAME_OVERHEAD_THRESHOLD, PR #935)."""


def data_frame_overhead(payload: int, padding: int) -> int:
    """What a DATA frame of ``payload`` bytes of body and ``padding`` bytes
    of padding (the Pad Length byte included) draws on the client's
    ``data_frame_budget``: its cost and its padding, less what it carries.
    Negative for frames larger than :data:`DATA_FRAME_COST`: they refill the
    budget, as in hyper's h2, so the budget bounds the frames per byte of
    body rather than the frames per second."""
    return DATA_FRAME_COST + padding - payload


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
    """Spend one token per event (or ``count``); :meth:`spend` is False once
    none are left. A negative ``count`` gives tokens back, up to the burst."""

    __slots__ = ("_budget", "_clock", "_stamp", "_tokens")

    def __init__(self, budget: Budget, clock: Callable[[], float]) -> None:
        self._budget = budget
        self._clock = clock
        self._tokens = float(budget.burst)
        self._stamp = clock()

    def spend(self, count: int = 1) -> bool:
        now = self._clock()
        budget = self._budget
        refilled = min(budget.burst, self._tokens + (now - self._stamp) * budget.per_second)
        self._stamp = now
        self._tokens = min(budget.burst, refilled - count)
        return self._tokens >= 0

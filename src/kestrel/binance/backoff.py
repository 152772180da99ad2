"""Reconnect backoff (R-MD-4). Randomness comes from a seeded generator."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Exponential backoff with jitter: initial, ×2 per failure, capped; `reset` after a success.

    The delay is `base × (1 ± jitter)`, base = min(initial × 2^failures, maximum); jitter spreads the
    reconnects of many shards so they do not hit the exchange in one burst.
    """

    initial_s: float = 0.5
    maximum_s: float = 8.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    failures: int = 0

    def next_delay(self) -> float:
        base = float(min(self.initial_s * (2**self.failures), self.maximum_s))
        self.failures += 1
        if self.jitter:
            base *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return max(0.0, base)

    def reset(self) -> None:
        self.failures = 0

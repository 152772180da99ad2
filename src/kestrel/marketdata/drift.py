"""Clock drift to the exchange's server time (R-MD-6), estimated by EWMA.

Each sample is one `GET time` round trip: offset = serverTime − (sent + received) / 2, good to about
half the round trip. Samples whose round trip is much slower than the best seen are discarded (their
midpoint is unreliable). The estimate is an exponentially weighted moving average; above
`degraded_ms` in absolute value the feed is degraded (events flagged, consumers honour it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ClockDrift:
    alpha: float = 0.1
    degraded_ms: float = 100.0
    max_round_trip_factor: float = 4.0  # discard samples slower than this × the best round trip
    offset_ms: float | None = None  # server − local, smoothed
    samples: int = 0
    discarded: int = 0
    best_round_trip_ms: float | None = None
    last_round_trip_ms: float | None = None

    def observe(self, server_time_ms: int, sent_ms: float, received_ms: float) -> float | None:
        """Add one round trip; returns the new estimate (ms, server − local)."""
        round_trip = max(0.0, received_ms - sent_ms)
        self.last_round_trip_ms = round_trip
        if self.best_round_trip_ms is None or round_trip < self.best_round_trip_ms:
            self.best_round_trip_ms = round_trip
        best = max(self.best_round_trip_ms, 1.0)
        if self.offset_ms is not None and round_trip > self.max_round_trip_factor * best:
            self.discarded += 1
            return self.offset_ms
        sample = server_time_ms - (sent_ms + received_ms) / 2
        self.offset_ms = sample if self.offset_ms is None else self.offset_ms + self.alpha * (sample - self.offset_ms)
        self.samples += 1
        return self.offset_ms

    @property
    def offset_ns(self) -> int:
        return int((self.offset_ms or 0.0) * 1_000_000)

    @property
    def degraded(self) -> bool:
        return self.offset_ms is not None and abs(self.offset_ms) > self.degraded_ms

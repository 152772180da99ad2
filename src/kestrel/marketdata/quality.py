"""Per-symbol data quality (R-MD-6, R-MD-7): counts, latency histogram, gap ratio, degraded state.

- Latency (exchange → ingest) is `ts_init − ts_event + clock offset` (offset = server − local, from
  `ClockDrift`), so a skewed exchange clock does not read as latency. Streams without an exchange
  time (spot bookTicker, spot snapshots) are not measured.
- The gap ratio is, per symbol and per minute of ingest time, (gaps + drops) / messages. Above
  `gap_ratio_rebuild_pct` % the symbol's book is rebuilt from a fresh snapshot, even when the depth
  stream itself looks continuous: something upstream is losing data.
- A symbol is degraded while its latest latency exceeds `lag_degraded_ms` or the clock drift exceeds
  `drift_degraded_ms`; its events then carry QualityFlag.DEGRADED (consumers honour it).
- Problems that are not a symbol's (malformed frames, unknown event types, ...) are counted per kind
  and logged once per kind per minute, so a flood cannot drown the log nor kill a shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kestrel.core.events import NANOS_PER_MILLI
from kestrel.core.logs import get_logger

log = get_logger(__name__)

MINUTE_NS = 60 * 1_000_000_000
_SUB_BUCKETS = 16  # per power of two: ≤ 6.25 % relative error on quantiles


class LatencyHistogram:
    """Log-linear histogram of microsecond latencies (HDR-style): exact below 32 µs, then 16 buckets
    per power of two (quantiles within ±3 %), O(1) per sample, mergeable."""

    __slots__ = ("count", "counts", "maximum", "minimum", "negative", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.negative = 0  # samples below zero (a clock problem), recorded as 0 and counted apart
        self.total = 0
        self.minimum: int | None = None
        self.maximum: int | None = None

    @staticmethod
    def bucket(value_us: int) -> int:
        if value_us < 2 * _SUB_BUCKETS:
            return value_us
        shift = value_us.bit_length() - 5  # the top 5 bits (16..31) select one of 16 sub-buckets
        return (shift << 4) + (value_us >> shift)

    @staticmethod
    def representative(bucket: int) -> int:
        """The middle of a bucket's value range."""
        if bucket < 2 * _SUB_BUCKETS:
            return bucket
        shift, mantissa = divmod(bucket - 2 * _SUB_BUCKETS, _SUB_BUCKETS)
        shift += 1
        return ((mantissa + _SUB_BUCKETS) << shift) + (1 << (shift - 1))

    def record(self, value_us: int) -> None:
        if value_us < 0:
            self.negative += 1
            value_us = 0
        if value_us < 32:
            bucket = value_us
        else:  # `bucket()`, inlined: this runs for every event
            shift = value_us.bit_length() - 5
            bucket = (shift << 4) + (value_us >> shift)
        counts = self.counts
        counts[bucket] = counts.get(bucket, 0) + 1
        self.count += 1
        self.total += value_us
        if self.minimum is None or value_us < self.minimum:
            self.minimum = value_us
        if self.maximum is None or value_us > self.maximum:
            self.maximum = value_us

    def merge(self, other: LatencyHistogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.count += other.count
        self.negative += other.negative
        self.total += other.total
        for value in (other.minimum, other.maximum):
            if value is not None:
                self.minimum = value if self.minimum is None else min(self.minimum, value)
                self.maximum = value if self.maximum is None else max(self.maximum, value)

    def quantile_us(self, q: float) -> int | None:
        """The q-quantile (0 ≤ q ≤ 1) in µs, clamped to the observed minimum and maximum."""
        if not self.count or self.minimum is None or self.maximum is None:
            return None
        rank = max(1, round(q * self.count))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return max(self.minimum, min(self.representative(bucket), self.maximum))
        return self.maximum

    def summary_ms(self) -> dict[str, float | int | None]:
        def ms(value: int | None) -> float | None:
            return None if value is None else round(value / 1000, 3)

        return {
            "count": self.count,
            "p50": ms(self.quantile_us(0.5)),
            "p99": ms(self.quantile_us(0.99)),
            "max": ms(self.maximum),
            "mean": round(self.total / self.count / 1000, 3) if self.count else None,
            "negative": self.negative,
        }


@dataclass(slots=True)
class SymbolQuality:
    """Counters of one symbol on one market."""

    messages: int = 0
    gaps: int = 0
    drops: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    resyncs: int = 0
    rebuilds: int = 0  # forced by the gap ratio
    stale_snapshots: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    last_latency_ms: float = 0.0
    degraded: bool = False
    minute_start_messages: int = 0
    minute_start_problems: int = 0
    last_gap_ratio_pct: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "gaps_detected": self.gaps,
            "drops_detected": self.drops,
            "duplicates_detected": self.duplicates,
            "out_of_order": self.out_of_order,
            "resyncs": self.resyncs,
            "rebuilds": self.rebuilds,
            "stale_snapshots": self.stale_snapshots,
            "latency_ms": self.latency.summary_ms(),
            "gap_ratio_pct_last_minute": round(self.last_gap_ratio_pct, 4),
            "degraded": self.degraded,
        }


class OncePerMinuteLog:
    """Counts problems per kind and logs each kind at most once per minute (with the count since)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._last_logged_ns: dict[str, int] = {}
        self._since_logged: dict[str, int] = {}

    def record(self, kind: str, now_ns: int, detail: str = "", **context: Any) -> bool:
        """Count one `kind`; returns True when it was logged now."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._since_logged[kind] = self._since_logged.get(kind, 0) + 1
        last = self._last_logged_ns.get(kind)
        if last is not None and now_ns - last < MINUTE_NS:
            return False
        log.warning("market data problem", kind=kind, occurrences=self._since_logged[kind], detail=detail, **context)
        self._last_logged_ns[kind] = now_ns
        self._since_logged[kind] = 0
        return True


class QualityAudit:
    """Quality state of every symbol, the minute roll-over, and the once-per-minute problem log."""

    def __init__(self, lag_degraded_ms: float, gap_ratio_rebuild_pct: float) -> None:
        self.lag_degraded_ns = int(lag_degraded_ms * NANOS_PER_MILLI)
        self.gap_ratio_rebuild_pct = gap_ratio_rebuild_pct
        self.symbols: dict[str, SymbolQuality] = {}
        self.problems = OncePerMinuteLog()
        self.drift_degraded = False
        self._minute_start_ns: int | None = None

    def symbol(self, key: str) -> SymbolQuality:
        quality = self.symbols.get(key)
        if quality is None:
            quality = self.symbols[key] = SymbolQuality()
        return quality

    def observe_latency(self, quality: SymbolQuality, latency_ns: int) -> bool:
        """Record one latency; returns the symbol's degraded state."""
        quality.latency.record(latency_ns // 1000)
        quality.last_latency_ms = latency_ns / NANOS_PER_MILLI
        quality.degraded = self.drift_degraded or latency_ns > self.lag_degraded_ns
        return quality.degraded

    def roll_minute(self, now_ns: int, problems_of: Callable[[str], int]) -> list[str]:
        """Close the minute when it is over; returns the symbols whose gap ratio asks for a rebuild.

        `problems_of(key)` is the symbol's running total of gaps and drops (from the sequencer); the
        minute's ratio is its increase over the increase of the symbol's message count.
        """
        if self._minute_start_ns is None:
            self._minute_start_ns = now_ns
            for key, quality in self.symbols.items():
                quality.minute_start_messages, quality.minute_start_problems = quality.messages, problems_of(key)
            return []
        if now_ns - self._minute_start_ns < MINUTE_NS:
            return []
        self._minute_start_ns = now_ns
        rebuild = []
        for key, quality in self.symbols.items():
            problems = problems_of(key)
            messages = quality.messages - quality.minute_start_messages
            found = problems - quality.minute_start_problems
            quality.last_gap_ratio_pct = 100.0 * found / messages if messages else 0.0
            if quality.last_gap_ratio_pct > self.gap_ratio_rebuild_pct:
                rebuild.append(key)
            quality.minute_start_messages, quality.minute_start_problems = quality.messages, problems
        return rebuild

    def is_degraded(self, quality: SymbolQuality) -> bool:
        """Degraded now: by the clock drift (every symbol), or by the symbol's latest latency."""
        return self.drift_degraded or quality.degraded

    def degraded_symbols(self) -> list[str]:
        return sorted(key for key, quality in self.symbols.items() if self.is_degraded(quality))

    def totals(self, keys: Iterable[str] | None = None) -> dict[str, Any]:
        selected = [self.symbols[k] for k in keys] if keys is not None else list(self.symbols.values())
        latency = LatencyHistogram()
        for quality in selected:
            latency.merge(quality.latency)
        return {
            "messages": sum(q.messages for q in selected),
            "gaps_detected": sum(q.gaps for q in selected),
            "drops_detected": sum(q.drops for q in selected),
            "duplicates_detected": sum(q.duplicates for q in selected),
            "out_of_order": sum(q.out_of_order for q in selected),
            "resyncs": sum(q.resyncs for q in selected),
            "rebuilds": sum(q.rebuilds for q in selected),
            "stale_snapshots": sum(q.stale_snapshots for q in selected),
            "latency_ms": latency.summary_ms(),
            "degraded_symbols": sum(1 for q in selected if self.is_degraded(q)),
        }

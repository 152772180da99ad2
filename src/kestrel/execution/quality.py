"""Execution quality measures (R-EX-2, R-EX-7): slippage per order and the rolling figures that
degrade routing — maker fill ratio (1 h), routing latency p95, insufficient-balance rate.

Windows are driven by timestamps from the Clock, so backtests and live runs degrade identically.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

HOUR_NS = 3_600_000_000_000


def slip_bps(vwap: float, mid_at_send: float) -> float:
    """R-EX-2: (VWAP − mid_at_send) / mid_at_send × 1e4 (positive = paid above mid)."""
    if mid_at_send <= 0 or math.isnan(mid_at_send):
        raise ValueError("mid at send must be positive")
    return (vwap - mid_at_send) / mid_at_send * 1e4


def cost_bps(side_sign: int, vwap: float, mid_at_send: float) -> float:
    """Slippage as a cost for either side: positive means worse than mid."""
    return side_sign * slip_bps(vwap, mid_at_send)


@dataclass(frozen=True, slots=True)
class Degradation:
    market_only: bool  # maker fill ratio too low ⇒ send market orders
    no_twap_or_maker: bool  # routing too slow ⇒ single taker order
    reduce_size: bool  # too many insufficient-balance rejections ⇒ shrink or queue
    reasons: tuple[str, ...]


class ExecutionStats:
    """Rolling one-hour windows of maker outcomes, routing latencies and balance rejections."""

    def __init__(self, window_ns: int = HOUR_NS) -> None:
        self.window_ns = window_ns
        self._maker: deque[tuple[int, bool]] = deque()
        self._latency: deque[tuple[int, float]] = deque()
        self._orders: deque[tuple[int, bool]] = deque()

    def record_maker_attempt(self, ts: int, filled: bool) -> None:
        self._maker.append((ts, filled))

    def record_routing_latency(self, ts: int, latency_ms: float) -> None:
        self._latency.append((ts, latency_ms))

    def record_order_result(self, ts: int, insufficient_balance: bool) -> None:
        self._orders.append((ts, insufficient_balance))

    def _trim(self, ts: int) -> None:
        horizon = ts - self.window_ns
        for window in (self._maker, self._latency, self._orders):
            while window and window[0][0] <= horizon:
                window.popleft()

    def maker_fill_ratio(self, ts: int) -> float | None:
        self._trim(ts)
        return sum(1 for _, filled in self._maker if filled) / len(self._maker) if self._maker else None

    def routing_p95_ms(self, ts: int) -> float | None:
        self._trim(ts)
        if not self._latency:
            return None
        ordered = sorted(latency for _, latency in self._latency)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    def insufficient_balance_rate(self, ts: int) -> float | None:
        self._trim(ts)
        return sum(1 for _, bad in self._orders if bad) / len(self._orders) if self._orders else None

    def degradation(
        self, ts: int, maker_ratio_floor: float, routing_p95_limit_ms: float, balance_rate_limit: float
    ) -> Degradation:
        reasons = []
        ratio = self.maker_fill_ratio(ts)
        market_only = ratio is not None and ratio < maker_ratio_floor
        if market_only:
            reasons.append(f"maker fill ratio {ratio:.2f} < {maker_ratio_floor}")
        p95 = self.routing_p95_ms(ts)
        slow = p95 is not None and p95 > routing_p95_limit_ms
        if slow:
            reasons.append(f"routing p95 {p95:.0f} ms > {routing_p95_limit_ms:g} ms")
        rate = self.insufficient_balance_rate(ts)
        reduce = rate is not None and rate > balance_rate_limit
        if reduce:
            reasons.append(f"insufficient-balance rate {rate:.2f} > {balance_rate_limit}")
        return Degradation(market_only, slow, reduce, tuple(reasons))

"""Order-count limits per account (spec §4.4): windows aligned to the clock, headers, -1015.

Spot counts on `X-MBX-ORDER-COUNT-10S` and `-1D`, USD-M on `-10S` and `-1M`. A new order that would
pass a window's limit is refused with HTTP 429, -1015 "Too many new orders; ..." and a `Retry-After`
of the seconds left in that window. Spot counts *unfilled* orders: the first fill of an order placed
in the current window gives its count back (Binance's order-count decrement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kestrel.core.enums import Market
from kestrel.sim.trading.options import OrderRateLimits

_UNIT_NAMES = {1_000: "SECOND", 60_000: "MINUTE", 86_400_000: "DAY"}


@dataclass(slots=True)
class _Window:
    header: str  # "10S", "1M", "1D"
    interval_ms: int
    limit: int
    start_ms: int = -1
    used: int = 0

    def roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % self.interval_ms
        if start != self.start_ms:
            self.start_ms = start
            self.used = 0

    @property
    def description(self) -> str:
        for unit_ms, name in sorted(_UNIT_NAMES.items(), reverse=True):
            if self.interval_ms % unit_ms == 0:
                return f"{self.interval_ms // unit_ms} {name}"
        return f"{self.interval_ms} MILLISECOND"


@dataclass(slots=True)
class OrderCounter:
    windows: list[_Window]
    placed_ms: dict[int, int] = field(default_factory=dict)  # spot order id → placement time (for decrements)


class OrderRateLimiter:
    """Order counters of every (account, market)."""

    def __init__(self, limits: OrderRateLimits) -> None:
        self.limits = limits
        self._counters: dict[tuple[str, Market], OrderCounter] = {}

    def _counter(self, account: str, market: Market) -> OrderCounter:
        counter = self._counters.get((account, market))
        if counter is None:
            limits = self.limits
            if market is Market.SPOT:
                windows = [_Window("10S", 10_000, limits.spot_per_10s), _Window("1D", 86_400_000, limits.spot_per_day)]
            else:
                windows = [
                    _Window("10S", 10_000, limits.futures_per_10s),
                    _Window("1M", 60_000, limits.futures_per_minute),
                ]
            counter = self._counters[(account, market)] = OrderCounter(windows)
        return counter

    def exceeded(self, account: str, market: Market, orders: int, now_ms: int) -> tuple[str, float] | None:
        """(message, retry after seconds) when `orders` more would pass a limit, else None."""
        for window in self._counter(account, market).windows:
            window.roll(now_ms)
            if window.used + orders > window.limit:
                retry_s = (window.start_ms + window.interval_ms - now_ms) / 1000
                message = f"Too many new orders; current limit is {window.limit} orders per {window.description}."
                return message, max(1.0, math.ceil(retry_s))
        return None

    def count(self, account: str, market: Market, orders: int, now_ms: int, order_ids: list[int]) -> None:
        counter = self._counter(account, market)
        for window in counter.windows:
            window.roll(now_ms)
            window.used += orders
        if market is Market.SPOT:
            for order_id in order_ids:
                counter.placed_ms[order_id] = now_ms

    def on_fill(self, account: str, market: Market, order_id: int, now_ms: int) -> None:
        """Spot: an order's first fill gives back its unfilled-order count in windows it was placed in."""
        if market is not Market.SPOT:
            return
        counter = self._counters.get((account, market))
        if counter is None:
            return
        placed = counter.placed_ms.pop(order_id, None)
        if placed is None:
            return
        for window in counter.windows:
            window.roll(now_ms)
            if placed >= window.start_ms and window.used > 0:
                window.used -= 1

    def forget(self, account: str, order_id: int) -> None:
        counter = self._counters.get((account, Market.SPOT))
        if counter is not None:
            counter.placed_ms.pop(order_id, None)

    def headers(self, account: str, market: Market, now_ms: int) -> dict[str, str]:
        headers = {}
        for window in self._counter(account, market).windows:
            window.roll(now_ms)
            headers[f"X-MBX-ORDER-COUNT-{window.header}"] = str(window.used)
        return headers

"""Request-weight and order-count budgets (spec §4.4, R-EX-4).

The exchange reports what we used in `X-MBX-USED-WEIGHT-<n><unit>` and `X-MBX-ORDER-COUNT-<n><unit>`
headers; a figure above our running estimate replaces it (someone else uses the budget too), one below
it does not (it was counted before requests still in flight). Between responses we add
each request's documented weight ourselves, so a burst of concurrent requests cannot overshoot. A
request that would take a window past `safety` × its limit waits (or is refused) instead of being sent:
we never rely on the exchange's 429 to stop us. A 429 blocks every request until its Retry-After; a
418 (IP ban) stops everything and is raised to the operator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kestrel.core.errors import RateLimited

_UNIT_NS = {"S": 1_000_000_000, "M": 60_000_000_000, "H": 3_600_000_000_000, "D": 86_400_000_000_000}
_HEADER = re.compile(r"^x-mbx-(used-weight|order-count)-(\d+)([smhd])$", re.IGNORECASE)
_INTERVAL_UNITS = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}


@dataclass
class Window:
    kind: str  # "weight" or "orders"
    interval_ns: int
    limit: int
    used: int = 0
    window_start_ns: int = 0

    def roll(self, now_ns: int) -> None:
        start = now_ns - now_ns % self.interval_ns  # Binance windows align to the clock
        if start != self.window_start_ns:
            self.window_start_ns = start
            self.used = 0


@dataclass
class RateLimitTracker:
    windows: dict[tuple[str, int], Window] = field(default_factory=dict)
    safety: float = 0.9
    blocked_until_ns: int = 0
    banned_until_ns: int = 0

    @classmethod
    def from_exchange_info(cls, rate_limits: list[Mapping[str, object]], safety: float = 0.9) -> RateLimitTracker:
        tracker = cls(safety=safety)
        for item in rate_limits:
            kind = {"REQUEST_WEIGHT": "weight", "ORDERS": "orders"}.get(str(item.get("rateLimitType")))
            unit = _INTERVAL_UNITS.get(str(item.get("interval")))
            if kind is None or unit is None:
                continue
            interval_ns = int(str(item.get("intervalNum", 1))) * _UNIT_NS[unit]
            tracker.windows[(kind, interval_ns)] = Window(kind, interval_ns, int(str(item.get("limit", 0))))
        return tracker

    @classmethod
    def futures_defaults(cls, weight_per_minute: int = 2400, safety: float = 0.9) -> RateLimitTracker:
        return cls.from_exchange_info(
            [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_per_minute},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            safety,
        )

    @classmethod
    def spot_defaults(cls, weight_per_minute: int = 6000, safety: float = 0.9) -> RateLimitTracker:
        return cls.from_exchange_info(
            [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_per_minute},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200_000},
            ],
            safety,
        )

    def cap(self, window: Window) -> int:
        """The most a window may hold: `safety` × its limit (at least 1)."""
        return max(1, int(window.limit * self.safety))

    def header_window(self, name: str) -> Window | None:
        """The window an `X-MBX-USED-WEIGHT-*` / `X-MBX-ORDER-COUNT-*` header reports, if we track it."""
        match = _HEADER.match(name)
        if match is None:
            return None
        kind = "weight" if match.group(1).lower() == "used-weight" else "orders"
        interval_ns = int(match.group(2)) * _UNIT_NS[match.group(3).upper()]
        return self.windows.get((kind, interval_ns))

    def wait_ns(self, weight: int, orders: int, now_ns: int) -> int:
        """How long to wait before a request of this cost may be sent (0 = now). Raises when banned."""
        if self.banned_until_ns > now_ns:
            raise RateLimited(
                "IP banned by the exchange (HTTP 418)", (self.banned_until_ns - now_ns) // 1_000_000, True
            )
        wait = max(0, self.blocked_until_ns - now_ns)
        for window in self.windows.values():
            window.roll(now_ns)
            cost = weight if window.kind == "weight" else orders
            if cost and window.used + cost > self.cap(window):
                wait = max(wait, window.window_start_ns + window.interval_ns - now_ns)
        return wait

    def consume(self, weight: int, orders: int, now_ns: int) -> None:
        for window in self.windows.values():
            window.roll(now_ns)
            window.used += weight if window.kind == "weight" else orders

    def observe_headers(self, headers: Mapping[str, str], now_ns: int) -> None:
        for name, value in headers.items():
            window = self.header_window(name)
            if window is None:  # not a budget header, or a window exchangeInfo did not list
                continue
            window.roll(now_ns)
            try:
                reported = int(value)
            except ValueError:
                continue
            # the exchange's count is authoritative when it is higher (other clients on this IP); a
            # lower one predates requests still in flight, which our own count already includes
            window.used = max(window.used, reported)

    def observe_rejection(self, status: int, retry_after_s: float | None, now_ns: int) -> RateLimited:
        """Record a 429 / 418 and return the error to raise."""
        delay_ns = int((retry_after_s if retry_after_s is not None else 60.0) * 1_000_000_000)
        if status == 418:
            self.banned_until_ns = now_ns + delay_ns
            return RateLimited("IP banned by the exchange (HTTP 418)", delay_ns // 1_000_000, banned=True)
        self.blocked_until_ns = max(self.blocked_until_ns, now_ns + delay_ns)
        return RateLimited("rate limited by the exchange (HTTP 429)", delay_ns // 1_000_000)

    def usage(self) -> dict[str, tuple[int, int]]:
        """{"weight/60s": (used, limit), ...} for metrics and the dashboard."""
        return {f"{w.kind}/{w.interval_ns // 1_000_000_000}s": (w.used, w.limit) for w in self.windows.values()}

"""The pipeline strategy's per-symbol features, updated from the strategy's book view in O(1).

The strategy sees books (`BookView`), not raw depth messages, in backtest and live alike, so these
are the features that can be kept from the top of book at each update, with time-based decays (the
same update at the same clock time gives the same numbers):

- spread_bps, qi (top-of-book quantity imbalance), depth_top1_usdt (the thinner side's notional),
  liq_score = min(depth_top1_usdt / threshold, 1);
- micro_trend: fast minus slow exponential mean of the mid, in bps of the mid (τ fast / slow);
- delta_mid: the mid against its slow mean, in bps;
- atr / atr_pct: Wilder's average true range of fixed-length mid bars (seeded by the mean of the
  first `period` true ranges; not ready before that);
- mean_spread_bps_1h: the spread's exponential mean with τ = 1 h (the routing liquidity probe);
- degraded: the previous update is older than `stale_after_ns` (a data gap) or the book is crossed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kestrel.core.venue import BookView

HOUR_NS = 3_600_000_000_000


@dataclass(frozen=True, slots=True)
class FeatureSettings:
    bar_ns: int = 1_000_000_000
    atr_period: int = 14
    fast_tau_ns: int = 1_000_000_000
    slow_tau_ns: int = 10_000_000_000
    liquidity_threshold_usdt: float = 50_000.0
    stale_after_ns: int = 5_000_000_000


class BookFeatures:
    """Features of one symbol; `update` returns False when the book has no two-sided top."""

    def __init__(self, settings: FeatureSettings) -> None:
        self.settings = settings
        self.values: dict[str, float] = {}
        self.mid = math.nan
        self.spread_bps = math.nan
        self.depth_top1_usdt = 0.0
        self.atr = math.nan
        self.mean_spread_bps_1h = math.nan
        self.degraded = False
        self._fast = math.nan
        self._slow = math.nan
        self._last_ns = 0
        self._bar_start_ns = -1
        self._bar_high = self._bar_low = self._bar_close = math.nan
        self._previous_close = math.nan
        self._true_ranges: list[float] = []

    @property
    def ready(self) -> bool:
        return not math.isnan(self.atr) and self.atr > 0

    def update(self, book: BookView, now_ns: int) -> bool:
        bid, ask = book.best_bid_price, book.best_ask_price
        if bid is None or ask is None:
            return False
        bid_price, ask_price = float(bid), float(ask)
        bid_qty, ask_qty = float(book.best_bid_qty), float(book.best_ask_qty)
        mid = (bid_price + ask_price) / 2
        settings = self.settings
        elapsed = now_ns - self._last_ns if self._last_ns else 0
        self.degraded = ask_price <= bid_price or (self._last_ns > 0 and elapsed > settings.stale_after_ns)
        self._last_ns = now_ns
        self.mid = mid
        self.spread_bps = (ask_price - bid_price) / mid * 1e4
        self.depth_top1_usdt = min(bid_price * bid_qty, ask_price * ask_qty)
        total_qty = bid_qty + ask_qty
        qi = (bid_qty - ask_qty) / total_qty if total_qty > 0 else 0.0
        self._fast = _decay(self._fast, mid, elapsed, settings.fast_tau_ns)
        self._slow = _decay(self._slow, mid, elapsed, settings.slow_tau_ns)
        self.mean_spread_bps_1h = _decay(self.mean_spread_bps_1h, self.spread_bps, elapsed, HOUR_NS)
        self._bar(mid, now_ns)
        values = self.values
        values["mid"] = mid
        values["spread_bps"] = self.spread_bps
        values["qi"] = qi
        values["depth_top1_usdt"] = self.depth_top1_usdt
        values["liq_score"] = min(self.depth_top1_usdt / settings.liquidity_threshold_usdt, 1.0)
        values["micro_trend"] = (self._fast - self._slow) / mid * 1e4
        values["delta_mid"] = (mid - self._slow) / mid * 1e4
        values["atr"] = self.atr
        values["atr_pct"] = self.atr / mid * 100
        return True

    def _bar(self, mid: float, now_ns: int) -> None:
        bar_ns = self.settings.bar_ns
        start = now_ns - now_ns % bar_ns
        if start != self._bar_start_ns:
            if self._bar_start_ns >= 0:
                self._close_bar()
            self._bar_start_ns = start
            self._bar_high = self._bar_low = mid
        else:
            self._bar_high = max(self._bar_high, mid)
            self._bar_low = min(self._bar_low, mid)
        self._bar_close = mid

    def _close_bar(self) -> None:
        high, low, previous = self._bar_high, self._bar_low, self._previous_close
        true_range = high - low if math.isnan(previous) else max(high - low, abs(high - previous), abs(low - previous))
        self._previous_close = self._bar_close
        period = self.settings.atr_period
        if math.isnan(self.atr):
            self._true_ranges.append(true_range)
            if len(self._true_ranges) == period:
                self.atr = sum(self._true_ranges) / period
                self._true_ranges.clear()
        else:
            self.atr += (true_range - self.atr) / period


def _decay(mean: float, value: float, elapsed_ns: int, tau_ns: int) -> float:
    """An exponential mean in time: the weight of the old mean is exp(−Δt / τ)."""
    if math.isnan(mean):
        return value
    keep = math.exp(-elapsed_ns / tau_ns)
    return mean * keep + value * (1.0 - keep)

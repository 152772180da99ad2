"""Candles of the synthetic market: REST `klines` and the `<symbol>@kline_<interval>` streams.

Trades fill 1-second and 1-minute bars; every interval is an aggregation of those (1s from seconds,
the rest from minutes), aligned as Binance aligns them: on the epoch for fixed intervals, on Monday
00:00 UTC for `1w`, on calendar months for `1M`. A seeded history of minute bars before the start
(a random walk ending at the start price) makes REST backfill return data. An interval with no trade
in a bucket still has a bar (open = high = low = close = previous close, volume 0), as on Binance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from kestrel.core.enums import Market
from kestrel.sim.instruments import SymbolSpec, fixed_text

MINUTE_MS = 60_000
SECOND_MS = 1_000
_FIXED_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
_MONDAY_OFFSET_MS = 4 * 86_400_000  # 1970-01-01 was a Thursday; weeks open on Monday
SECOND_BARS_KEPT = 900  # 1s klines reach back 15 minutes


@dataclass(slots=True)
class Bar:
    open: int  # ticks
    high: int
    low: int
    close: int
    volume: int = 0  # lots
    quote: int = 0  # Σ ticks × lots
    trades: int = 0
    taker_buy_volume: int = 0
    taker_buy_quote: int = 0
    first_trade_id: int = -1
    last_trade_id: int = -1

    def add(self, price: int, quantity: int, trade_id: int, taker_buy: bool) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += quantity
        self.quote += price * quantity
        self.trades += 1
        if taker_buy:
            self.taker_buy_volume += quantity
            self.taker_buy_quote += price * quantity
        if self.first_trade_id < 0:
            self.first_trade_id = trade_id
        self.last_trade_id = trade_id

    def merge(self, other: Bar) -> None:
        self.high = max(self.high, other.high)
        self.low = min(self.low, other.low)
        self.close = other.close
        self.volume += other.volume
        self.quote += other.quote
        self.trades += other.trades
        self.taker_buy_volume += other.taker_buy_volume
        self.taker_buy_quote += other.taker_buy_quote
        if other.first_trade_id >= 0:
            if self.first_trade_id < 0:
                self.first_trade_id = other.first_trade_id
            self.last_trade_id = other.last_trade_id


def bucket_open(interval: str, time_ms: int) -> int:
    if interval == "1M":
        moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
        return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() * 1000)
    length = _FIXED_MS[interval]
    if interval == "1w":
        return (time_ms - _MONDAY_OFFSET_MS) // length * length + _MONDAY_OFFSET_MS
    return time_ms // length * length


def bucket_after(interval: str, open_ms: int) -> int:
    """The next bucket's open time."""
    if interval == "1M":
        moment = datetime.fromtimestamp(open_ms / 1000, tz=UTC)
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)
    return open_ms + _FIXED_MS[interval]


class KlineSeries:
    """The bars of one symbol."""

    def __init__(self, spec: SymbolSpec, seed: int, start_ms: int, start_price: int, history_minutes: int) -> None:
        self.spec = spec
        self.minutes: dict[int, Bar] = {}
        self.seconds: dict[int, Bar] = {}
        self.last_close = start_price
        self._history = (seed, start_ms, start_price, history_minutes)
        self._history_ready = history_minutes == 0
        self.start_minute = bucket_open("1m", start_ms)
        self.first_minute = self.start_minute - history_minutes * MINUTE_MS
        self.first_second = bucket_open("1s", start_ms)

    def _ensure_history(self) -> None:
        """Seed the minute bars before the start, on first use (most symbols are never asked)."""
        if self._history_ready:
            return
        self._history_ready = True
        seed, _, start_price, count = self._history
        key = f"{seed}:klines:{self.spec.market.value}:{self.spec.symbol}".encode()
        rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big"))
        volatility = max(1.0, start_price * 0.0008)
        # walking back in time from the start price: each bar closes where the next one opened
        opens = np.maximum(1, start_price + np.cumsum(np.rint(rng.normal(0, volatility, count)))).astype(np.int64)
        closes = np.concatenate(([start_price], opens[:-1])).astype(np.int64)
        wick_up = np.abs(np.rint(rng.normal(0, volatility / 2, count))).astype(np.int64)
        wick_down = np.abs(np.rint(rng.normal(0, volatility / 2, count))).astype(np.int64)
        highs = np.maximum(opens, closes) + wick_up
        lows = np.maximum(1, np.minimum(opens, closes) - wick_down)
        trades = rng.integers(5, 401, count)
        volumes = trades * rng.integers(1, 21, count)
        takers = (volumes * rng.uniform(0.3, 0.7, count)).astype(np.int64)
        typical = (highs + lows + closes) // 3
        for index in range(count):
            minute = self.start_minute - (index + 1) * MINUTE_MS
            volume, taker, price = int(volumes[index]), int(takers[index]), int(typical[index])
            self.minutes.setdefault(
                minute,
                Bar(
                    int(opens[index]), int(highs[index]), int(lows[index]), int(closes[index]),
                    volume, price * volume, int(trades[index]), taker, price * taker,
                ),
            )  # fmt: skip

    def on_trade(self, time_ms: int, price: int, quantity: int, trade_id: int, taker_buy: bool) -> None:
        for store, key in ((self.minutes, bucket_open("1m", time_ms)), (self.seconds, bucket_open("1s", time_ms))):
            bar = store.get(key)
            if bar is None:
                bar = store[key] = Bar(price, price, price, price)
            bar.add(price, quantity, trade_id, taker_buy)
        self.last_close = price
        if len(self.seconds) > SECOND_BARS_KEPT * 2:
            cutoff = time_ms - SECOND_BARS_KEPT * SECOND_MS
            for key in [key for key in self.seconds if key < cutoff]:
                del self.seconds[key]

    def bar(self, interval: str, open_ms: int, until_ms: int) -> Bar | None:
        """The aggregated bar of the bucket opening at `open_ms`, with data up to `until_ms`."""
        close_ms = min(bucket_after(interval, open_ms) - 1, until_ms)
        if interval == "1s":
            store, step, first = self.seconds, SECOND_MS, self.first_second
        else:
            store, step, first = self.minutes, MINUTE_MS, self.first_minute
        if close_ms < first:
            return None
        if interval != "1s" and open_ms < self.start_minute:
            self._ensure_history()
        result: Bar | None = None
        key = max(open_ms, first)
        key -= key % step
        while key <= close_ms:
            part = store.get(key)
            if part is not None:
                if result is None:
                    result = replace(part)
                else:
                    result.merge(part)
            key += step
        return result

    def bars(
        self, interval: str, start_ms: int | None, end_ms: int | None, limit: int, now_ms: int
    ) -> list[tuple[int, Bar]]:
        """Up to `limit` (open time, bar) pairs: from `start_ms` forward, or the most recent ones."""
        first = self.first_second if interval == "1s" else self.first_minute
        last_open = bucket_open(interval, min(now_ms, end_ms) if end_ms is not None else now_ms)
        opens: list[int] = []
        if start_ms is not None:
            cursor = bucket_open(interval, max(start_ms, first))
            if cursor < start_ms:
                cursor = bucket_after(interval, cursor)
            while cursor <= last_open and len(opens) < limit:
                opens.append(cursor)
                cursor = bucket_after(interval, cursor)
        else:
            cursor = last_open
            while cursor >= bucket_open(interval, first) and len(opens) < limit:
                opens.append(cursor)
                cursor = self._bucket_before(interval, cursor)
            opens.reverse()
        result = []
        previous_close: int | None = None
        for open_ms in opens:
            bar = self.bar(interval, open_ms, now_ms)
            if bar is None:
                if previous_close is None:
                    previous_close = self._close_before(interval, open_ms)
                    if previous_close is None:
                        continue
                bar = Bar(previous_close, previous_close, previous_close, previous_close)
            previous_close = bar.close
            result.append((open_ms, bar))
        return result

    @staticmethod
    def _bucket_before(interval: str, open_ms: int) -> int:
        if interval == "1M":
            return bucket_open("1M", open_ms - 1)
        return open_ms - _FIXED_MS[interval]

    def _close_before(self, interval: str, open_ms: int) -> int | None:
        self._ensure_history()
        store = self.seconds if interval == "1s" else self.minutes
        earlier = [key for key in store if key < open_ms]
        return store[max(earlier)].close if earlier else None

    # ---- wire ---------------------------------------------------------------------------------
    def _quote_text(self, value: int) -> str:
        spec = self.spec
        decimals = spec.price_decimals + spec.quantity_decimals
        scaled = value * spec.tick_scaled * spec.step_scaled
        wanted = 8 if spec.market is Market.SPOT else min(decimals, 8)
        return fixed_text(scaled // 10 ** (decimals - wanted), wanted)

    def rest_row(self, interval: str, open_ms: int, bar: Bar) -> list[object]:
        spec = self.spec
        return [
            open_ms,
            spec.price_text(bar.open),
            spec.price_text(bar.high),
            spec.price_text(bar.low),
            spec.price_text(bar.close),
            spec.quantity_text(bar.volume),
            bucket_after(interval, open_ms) - 1,
            self._quote_text(bar.quote),
            bar.trades,
            spec.quantity_text(bar.taker_buy_volume),
            self._quote_text(bar.taker_buy_quote),
            "0",
        ]

    def stream_fields(self, interval: str, open_ms: int, bar: Bar, closed: bool, event_ms: int) -> dict[str, object]:
        spec = self.spec
        return {
            "e": "kline",
            "E": event_ms,
            "s": spec.symbol,
            "k": {
                "t": open_ms,
                "T": bucket_after(interval, open_ms) - 1,
                "s": spec.symbol,
                "i": interval,
                "f": bar.first_trade_id,
                "L": bar.last_trade_id,
                "o": spec.price_text(bar.open),
                "c": spec.price_text(bar.close),
                "h": spec.price_text(bar.high),
                "l": spec.price_text(bar.low),
                "v": spec.quantity_text(bar.volume),
                "n": bar.trades,
                "x": closed,
                "q": self._quote_text(bar.quote),
                "V": spec.quantity_text(bar.taker_buy_volume),
                "Q": self._quote_text(bar.taker_buy_quote),
                "B": "0",
            },
        }

"""One synthetic symbol: an L2 book that evolves by random limit orders, cancels and taker orders.

Everything about a symbol is drawn from its own generator, seeded by ``(seed, market, symbol)``, so
adding or removing other symbols never changes this one's sequence. The numbering follows the
exchange: every book change takes the next update id (spot: +1; USD-M: +1 or more, because the
futures counter also moves for changes a client never sees, which is why futures clients must link
diffs by `pu` and not by `U`); trades take consecutive trade ids; one aggTrade per price level swept
by a taker order covers the trade ids of that level.

The model (per event): a book event either improves the spread, changes the best level, changes or
adds a level a few ticks behind, or cancels one; a taker order eats the opposite side from the top,
filling 1–3 maker orders per level. Depth is kept between a floor and `max_levels_per_side`.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass

import numpy as np

from kestrel.core.enums import Market
from kestrel.sim.book import LevelBook
from kestrel.sim.instruments import SymbolSpec
from kestrel.sim.options import RateModel

Change = tuple[bool, int, int, int]  # (is_bid, price ticks, new quantity lots, update id)


@dataclass(slots=True)
class TradeRecord:
    trade_id: int
    price: int
    quantity: int
    buyer_is_maker: bool
    time_ns: int


@dataclass(slots=True)
class AggTradeRecord:
    agg_id: int
    price: int
    quantity: int
    first_trade_id: int
    last_trade_id: int
    time_ns: int
    buyer_is_maker: bool


class SyntheticSymbol:
    """The state and the random process of one symbol."""

    def __init__(self, spec: SymbolSpec, seed: int, rates: RateModel, history_limit: int) -> None:
        self.spec = spec
        self.rng = random.Random(f"{seed}:{spec.market.value}:{spec.symbol}")
        rng = self.rng
        self.book_rate = rates.rate(rates.book_events_per_s_major, rates.book_events_per_s_min, spec.rank)
        self.trade_rate = rates.rate(rates.trades_per_s_major, rates.trades_per_s_min, spec.rank)
        self.liquidation_rate = (
            rates.rate(rates.liquidations_per_s_major, rates.liquidations_per_s_min, spec.rank)
            if spec.market is Market.FUTURES and rates.liquidations_per_s_major > 0
            else 0.0
        )
        self.max_levels = rates.max_levels_per_side
        self.min_levels = max(5, rates.levels_per_side // 4)
        self.futures = spec.market is Market.FUTURES
        self.book = LevelBook(history_limit)
        self.update_id = rng.randrange(10**9, 9 * 10**9)
        self.trade_id = rng.randrange(10**8, 9 * 10**8)
        self.agg_id = rng.randrange(10**8, 9 * 10**8)
        self.recent_agg_trades: deque[AggTradeRecord] = deque(maxlen=1000)  # REST aggTrades: limit ≤ 1000
        self.mid_ticks, self.level_lots = self._initial_scale(seed)
        self._build_initial_book(rates.levels_per_side, seed)
        self.last_top = self.top()

    # ---- set-up -------------------------------------------------------------------------------
    def _initial_scale(self, seed: int) -> tuple[int, int]:
        """Start price (ticks) and typical level size (lots): tick ≈ 0.3–4 bp of the price, a level
        worth a few thousand USDT for majors and a few hundred for the tail."""
        spec = self.spec
        rng = random.Random(f"{seed}:scale:{spec.market.value}:{spec.symbol}")
        relative_tick = rng.uniform(0.3e-4, 4e-4)
        ticks = int(1 / relative_tick)
        tick = float(spec.tick_size)
        if spec.min_price > 0:
            ticks = max(ticks, int(float(spec.min_price) / tick) * 3)
        if spec.max_price > 0:
            ticks = min(ticks, max(3, int(float(spec.max_price) / tick) // 3))
        price = ticks * tick
        level_notional = max(300.0, 20_000.0 * (1 + spec.rank) ** -0.6) * rng.uniform(0.5, 1.5)
        lots = int(level_notional / (price * float(spec.step_size)))
        min_lots = max(1, int(spec.min_quantity / spec.step_size))
        return ticks, max(lots, min_lots)

    def _level_size(self) -> int:
        return max(1, int(self.level_lots * self.rng.lognormvariate(0.0, 0.8)))

    def _build_initial_book(self, levels: int, seed: int) -> None:
        """About `levels` levels per side around the start price, 85 % of the ticks occupied (numpy: 300
        symbols × hundreds of levels at start-up)."""
        spec = self.spec
        key = f"{seed}:book:{spec.market.value}:{spec.symbol}".encode()
        rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big"))
        span = int(levels / 0.85) + 8
        sides = []
        for offsets in (-1 - np.arange(span), np.arange(span)):
            prices = (self.mid_ticks + offsets)[rng.random(span) < 0.85][:levels]
            prices = prices[prices > 0]
            sizes = np.maximum(1, (self.level_lots * rng.lognormal(0.0, 0.8, len(prices))).astype(np.int64))
            sides.append(dict(zip(prices.tolist(), sizes.tolist(), strict=True)))
        self.book.reset(self.update_id, sides[0], sides[1])

    # ---- helpers ------------------------------------------------------------------------------
    def top(self) -> tuple[int, int, int, int]:
        book = self.book
        best_bid = book.bids.prices[-1] if book.bids.prices else 0
        best_ask = book.asks.prices[0] if book.asks.prices else 0
        return (
            best_bid,
            book.bids.levels.get(best_bid, 0),
            best_ask,
            book.asks.levels.get(best_ask, 0),
        )

    def _next_id(self) -> int:
        if self.futures:
            self.update_id += 1 + int(self.rng.expovariate(1.0))
        else:
            self.update_id += 1
        return self.update_id

    def _set(self, changes: list[Change], is_bid: bool, price: int, quantity: int) -> None:
        update_id = self._next_id()
        self.book.apply(update_id, is_bid, price, quantity)
        changes.append((is_bid, price, quantity, update_id))

    def next_book_delay_ns(self) -> int:
        return int(self.rng.expovariate(self.book_rate) * 1e9) + 1

    def next_delay_ns(self, rate: float) -> int:
        """Exponential inter-arrival time of a Poisson process of `rate` per second."""
        return int(self.rng.expovariate(rate) * 1e9) + 1

    def next_trade_delay_ns(self) -> int | None:
        if self.trade_rate <= 0:
            return None
        return int(self.rng.expovariate(self.trade_rate) * 1e9) + 1

    # ---- events -------------------------------------------------------------------------------
    def book_event(self) -> list[Change]:
        """One limit-order-book change (sometimes two, when depth must be trimmed or refilled)."""
        rng = self.rng
        book = self.book
        changes: list[Change] = []
        is_bid = rng.random() < 0.5
        side = book.bids if is_bid else book.asks
        best_bid, best_ask = book.best_bid(), book.best_ask()
        if best_bid is None or best_ask is None or not side.prices:
            self._refill(changes, is_bid, best_bid, best_ask)
            return changes
        spread = best_ask - best_bid
        draw = rng.random()
        if spread > 1 and draw < 0.25 + 0.05 * min(spread, 10):
            # a new best quote inside the spread
            offset = rng.randint(1, spread - 1)
            price = best_bid + offset if is_bid else best_ask - offset
            self._set(changes, is_bid, price, self._level_size())
        elif draw < 0.6:
            best = best_bid if is_bid else best_ask
            quantity = side.levels[best]
            delta = max(1, int(quantity * rng.uniform(0.05, 0.6)))
            if rng.random() < 0.55:
                quantity += delta
            else:
                quantity = quantity - delta if delta < quantity and len(side) > 1 else 0
            self._set(changes, is_bid, best, quantity)
        else:
            depth = 1 + min(int(rng.expovariate(0.25)), len(side) - 1)
            best = best_bid if is_bid else best_ask
            price = best - depth if is_bid else best + depth
            current = side.levels.get(price, 0)
            if draw < 0.85 or current == 0:
                quantity = current + self._level_size() if current else self._level_size()
                if price > 0:
                    self._set(changes, is_bid, price, quantity)
            else:
                self._set(changes, is_bid, price, 0)
        self._keep_depth(changes, is_bid)
        return changes

    def _refill(self, changes: list[Change], is_bid: bool, best_bid: int | None, best_ask: int | None) -> None:
        """A side emptied by a sweep: quote again next to the other side."""
        if is_bid:
            price = (best_ask - 1) if best_ask is not None else self.mid_ticks - 1
        else:
            price = (best_bid + 1) if best_bid is not None else self.mid_ticks
        if price > 0:
            self._set(changes, is_bid, price, self._level_size())

    def _keep_depth(self, changes: list[Change], is_bid: bool) -> None:
        side = self.book.bids if is_bid else self.book.asks
        if len(side) > self.max_levels:
            far = side.prices[0] if is_bid else side.prices[-1]
            self._set(changes, is_bid, far, 0)
        elif len(side) < self.min_levels and side.prices:
            far = (
                side.prices[0] - 1 - self.rng.randint(0, 3) if is_bid else side.prices[-1] + 1 + self.rng.randint(0, 3)
            )
            if far > 0:
                self._set(changes, is_bid, far, self._level_size())

    def taker_order(
        self, time_ns: int, buy: bool | None = None, size_factor: float = 1.0
    ) -> tuple[list[Change], list[TradeRecord], list[AggTradeRecord]]:
        """A market order sweeping from the best opposite level; returns book changes, trades, aggTrades."""
        rng = self.rng
        book = self.book
        if buy is None:
            buy = rng.random() < 0.5
        side = book.asks if buy else book.bids
        changes: list[Change] = []
        trades: list[TradeRecord] = []
        aggs: list[AggTradeRecord] = []
        if not side.prices:
            return changes, trades, aggs
        best = side.prices[0] if buy else side.prices[-1]
        remaining = max(1, int(side.levels[best] * rng.expovariate(1 / 0.6) * size_factor))
        buyer_is_maker = not buy
        levels_swept = 0
        while remaining > 0 and side.prices and levels_swept < 5:
            price = side.prices[0] if buy else side.prices[-1]
            available = side.levels[price]
            if len(side) == 1 and remaining >= available:
                remaining = available - 1  # never empty a side completely
                if remaining <= 0:
                    break
            fill = min(remaining, available)
            first_trade = self.trade_id + 1
            makers = min(fill, rng.randint(1, 3))
            left = fill
            for number in range(makers):
                part = left if number == makers - 1 else max(1, int(left * rng.uniform(0.2, 0.7)))
                part = min(part, left - (makers - 1 - number))
                self.trade_id += 1
                trades.append(TradeRecord(self.trade_id, price, part, buyer_is_maker, time_ns))
                left -= part
            self.agg_id += 1
            aggregate = AggTradeRecord(self.agg_id, price, fill, first_trade, self.trade_id, time_ns, buyer_is_maker)
            aggs.append(aggregate)
            self.recent_agg_trades.append(aggregate)
            self._set(changes, not buy, price, available - fill)
            remaining -= fill
            levels_swept += 1
        return changes, trades, aggs

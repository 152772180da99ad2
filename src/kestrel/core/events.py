"""Market events: immutable msgspec Structs, one per Binance stream kind.

Conventions, everywhere in Kestrel:
- `ts_event` is the exchange's timestamp (payload `E`/`T`), `ts_init` our local receipt; both are
  integer **nanoseconds** since the Unix epoch, UTC. Every other time field carries its unit in the
  name (`open_time_ns`, `next_funding_time_ns`). Feed latency is `ts_init - ts_event`.
- Prices and quantities on market events are floats as decoded from the wire strings: they are
  measurements on the hot path (hundreds of thousands per second), not money we send. Anything that
  crosses into an order goes through `Instrument` (Decimal / integer ticks) first.
- `flags` holds `QualityFlag` bits set by the feed (gap before this event, resynced book, degraded
  clock...), so consumers can honour data quality without a side channel.
"""

from __future__ import annotations

from enum import IntFlag

import msgspec

from kestrel.core.enums import Market, Side

NANOS_PER_MILLI = 1_000_000
NANOS_PER_SECOND = 1_000_000_000


class QualityFlag(IntFlag):
    NONE = 0
    GAP_BEFORE = 1  # a sequence gap was detected before this event
    RESYNCED = 2  # first event after a book resync
    DEGRADED = 4  # clock drift > 100 ms or ingest lag > 1000 ms (R-MD-6)
    DUPLICATE = 8
    OUT_OF_ORDER = 16
    FROM_REST = 32  # produced by the REST fallback, not the stream
    SYNTHETIC = 64  # produced by the simulator's synthetic market


class BookTicker(msgspec.Struct, frozen=True, gc=False):
    """Best bid/ask (`<symbol>@bookTicker`)."""

    market: Market
    symbol: str
    update_id: int
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    ts_event: int
    ts_init: int
    flags: int = 0

    @property
    def mid(self) -> float:
        return (self.bid_price + self.ask_price) / 2.0

    @property
    def spread_bps(self) -> float:
        """(ask − bid) / mid · 1e4 (R-MD-8)."""
        mid = self.mid
        return (self.ask_price - self.bid_price) / mid * 1e4 if mid > 0 else float("nan")

    @property
    def depth_top1_usdt(self) -> float:
        """min(bidQty, askQty) · mid (R-MD-8)."""
        return min(self.bid_qty, self.ask_qty) * self.mid


class Trade(msgspec.Struct, frozen=True, gc=False):
    """A single trade (`<symbol>@trade`). `ts_event` is the trade time `T`."""

    market: Market
    symbol: str
    trade_id: int
    price: float
    quantity: float
    buyer_is_maker: bool
    ts_event: int
    ts_init: int
    flags: int = 0

    @property
    def aggressor(self) -> Side:
        """The taker's side: a buyer-maker trade was initiated by a seller."""
        return Side.SELL if self.buyer_is_maker else Side.BUY


class AggregateTrade(msgspec.Struct, frozen=True, gc=False):
    """Trades of one taker order at one price (`<symbol>@aggTrade`)."""

    market: Market
    symbol: str
    aggregate_id: int
    price: float
    quantity: float
    first_trade_id: int
    last_trade_id: int
    buyer_is_maker: bool
    ts_event: int
    ts_init: int
    flags: int = 0

    @property
    def aggressor(self) -> Side:
        return Side.SELL if self.buyer_is_maker else Side.BUY


class DepthUpdate(msgspec.Struct, frozen=True, gc=False):
    """Diff depth (`<symbol>@depth@100ms`). Levels are (price, quantity); quantity 0 removes a level.

    Spot links updates by `first_update_id == previous final_update_id + 1`; futures by
    `previous_final_update_id` (`pu`), which is -1 on spot.
    """

    market: Market
    symbol: str
    first_update_id: int
    final_update_id: int
    previous_final_update_id: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts_event: int
    ts_init: int
    flags: int = 0


class DepthSnapshot(msgspec.Struct, frozen=True, gc=False):
    """REST depth snapshot (`GET depth`); spot snapshots carry no exchange time (ts_event = ts_init)."""

    market: Market
    symbol: str
    last_update_id: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts_event: int
    ts_init: int
    flags: int = 0


class Kline(msgspec.Struct, frozen=True, gc=False):
    """A candlestick (`<symbol>@kline_<interval>` or REST klines)."""

    market: Market
    symbol: str
    interval: str
    open_time_ns: int
    close_time_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trade_count: int
    taker_buy_volume: float
    taker_buy_quote_volume: float
    is_closed: bool
    ts_event: int
    ts_init: int
    flags: int = 0


class MarkPrice(msgspec.Struct, frozen=True, gc=False):
    """Mark price and funding (`<symbol>@markPrice`, futures)."""

    market: Market
    symbol: str
    mark_price: float
    index_price: float
    estimated_settle_price: float
    funding_rate: float
    next_funding_time_ns: int
    ts_event: int
    ts_init: int
    flags: int = 0


class FundingRate(msgspec.Struct, frozen=True, gc=False):
    """A settled funding rate (REST `fundingRate` history); `ts_event` is the funding time."""

    market: Market
    symbol: str
    funding_rate: float
    mark_price: float
    ts_event: int
    ts_init: int
    flags: int = 0


class Liquidation(msgspec.Struct, frozen=True, gc=False):
    """A forced order (`<symbol>@forceOrder`, futures). `side` is the liquidation order's side."""

    market: Market
    symbol: str
    side: Side
    order_type: str
    time_in_force: str
    price: float
    average_price: float
    quantity: float
    filled_quantity: float
    status: str
    ts_event: int
    ts_init: int
    flags: int = 0


class OpenInterest(msgspec.Struct, frozen=True, gc=False):
    """Open interest (REST poll; no stream exists)."""

    market: Market
    symbol: str
    open_interest: float
    ts_event: int
    ts_init: int
    flags: int = 0


MarketEvent = (
    BookTicker
    | Trade
    | AggregateTrade
    | DepthUpdate
    | DepthSnapshot
    | Kline
    | MarkPrice
    | FundingRate
    | Liquidation
    | OpenInterest
)
"""Every market event type; each has `market`, `symbol`, `ts_event`, `ts_init` and `flags`."""

MARKET_EVENT_TYPES: tuple[type[MarketEvent], ...] = (
    BookTicker,
    Trade,
    AggregateTrade,
    DepthUpdate,
    DepthSnapshot,
    Kline,
    MarkPrice,
    FundingRate,
    Liquidation,
    OpenInterest,
)


def millis_to_nanos(value_ms: int) -> int:
    return value_ms * NANOS_PER_MILLI


def nanos_to_millis(value_ns: int) -> int:
    return value_ns // NANOS_PER_MILLI

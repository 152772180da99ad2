"""Market-data wire messages (spec/binance-protocol.md §2, §3, §5.3) and their normalisers.

Each Binance stream kind has one msgspec Struct with the exchange's own (one-letter) field names,
decoded with `strict=False` so the quoted decimal strings ("67812.01") become floats inside the C
decoder, and one `parse_*` function into the core event of `kestrel.core.events`. Wire timestamps are
milliseconds; core events carry integer nanoseconds.

Which exchange time becomes `ts_event` (one rule, documented in docs/data-dictionary.md):
- depth, bookTicker (futures), kline, markPrice, forceOrder: the event time `E`;
- trade, aggTrade: the trade time `T` (what a trade print means);
- spot bookTicker and spot REST depth snapshots carry no exchange time: `ts_event = ts_init`.
"""

from __future__ import annotations

import msgspec

from kestrel.core.enums import Market, Side
from kestrel.core.events import (
    NANOS_PER_MILLI,
    AggregateTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    Kline,
    Liquidation,
    MarkPrice,
    Trade,
)

Level = tuple[float, float]


class WireDepthUpdate(msgspec.Struct, gc=False):
    """`depthUpdate` (§2.5). Futures adds `T` and `pu`; spot has neither."""

    E: int
    s: str
    U: int
    u: int
    b: list[Level]
    a: list[Level]
    T: int = 0
    pu: int = -1


class WireDepthSnapshot(msgspec.Struct, gc=False):
    """REST `GET depth` body (§5.3); futures adds `E` and `T`."""

    lastUpdateId: int  # noqa: N815 - the wire name
    bids: list[Level]
    asks: list[Level]
    E: int = 0
    T: int = 0


class WireBookTicker(msgspec.Struct, gc=False):
    """`bookTicker` (§2.3). Spot has no `E`/`T`."""

    u: int
    s: str
    b: float
    B: float
    a: float
    A: float
    E: int = 0
    T: int = 0


class WireTrade(msgspec.Struct, gc=False):
    """`trade` (§2.1); futures (undocumented) adds `X`, spot adds `M`."""

    E: int
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool


class WireAggTrade(msgspec.Struct, gc=False):
    """`aggTrade` (§2.2)."""

    E: int
    s: str
    a: int
    p: float
    q: float
    f: int
    l: int  # noqa: E741 - the wire name (last trade id)
    T: int
    m: bool


class WireKlineBar(msgspec.Struct, gc=False):
    t: int
    T: int
    i: str
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the wire name (low)
    v: float
    n: int
    x: bool
    q: float
    V: float
    Q: float


class WireKline(msgspec.Struct, gc=False):
    """`kline` (§2.4)."""

    E: int
    s: str
    k: WireKlineBar


class WireMarkPrice(msgspec.Struct, gc=False):
    """`markPriceUpdate` (§2.7, futures)."""

    E: int
    s: str
    p: float
    i: float = 0.0
    P: float = 0.0
    r: float = 0.0
    T: int = 0


class WireForceOrderBody(msgspec.Struct, gc=False):
    s: str
    S: str
    o: str
    f: str
    q: float
    p: float
    ap: float
    X: str
    z: float
    T: int
    l: float = 0.0  # noqa: E741 - the wire name (last filled quantity)


class WireForceOrder(msgspec.Struct, gc=False):
    """`forceOrder` (§2.8, futures)."""

    E: int
    o: WireForceOrderBody


def parse_depth_update(wire: WireDepthUpdate, market: Market, ts_init: int) -> DepthUpdate:
    return DepthUpdate(market, wire.s, wire.U, wire.u, wire.pu, wire.b, wire.a, wire.E * NANOS_PER_MILLI, ts_init)


def parse_depth_snapshot(wire: WireDepthSnapshot, market: Market, symbol: str, ts_init: int) -> DepthSnapshot:
    ts_event = wire.E * NANOS_PER_MILLI if wire.E else ts_init
    return DepthSnapshot(market, symbol, wire.lastUpdateId, wire.bids, wire.asks, ts_event, ts_init)


def parse_book_ticker(wire: WireBookTicker, market: Market, ts_init: int) -> BookTicker:
    ts_event = wire.E * NANOS_PER_MILLI if wire.E else ts_init
    return BookTicker(market, wire.s, wire.u, wire.b, wire.B, wire.a, wire.A, ts_event, ts_init)


def parse_trade(wire: WireTrade, market: Market, ts_init: int) -> Trade:
    return Trade(market, wire.s, wire.t, wire.p, wire.q, wire.m, wire.T * NANOS_PER_MILLI, ts_init)


def parse_agg_trade(wire: WireAggTrade, market: Market, ts_init: int) -> AggregateTrade:
    return AggregateTrade(
        market, wire.s, wire.a, wire.p, wire.q, wire.f, wire.l, wire.m, wire.T * NANOS_PER_MILLI, ts_init
    )


def parse_kline(wire: WireKline, market: Market, ts_init: int) -> Kline:
    bar = wire.k
    return Kline(
        market,
        wire.s,
        bar.i,
        bar.t * NANOS_PER_MILLI,
        bar.T * NANOS_PER_MILLI,
        bar.o,
        bar.h,
        bar.l,
        bar.c,
        bar.v,
        bar.q,
        bar.n,
        bar.V,
        bar.Q,
        bar.x,
        wire.E * NANOS_PER_MILLI,
        ts_init,
    )


def parse_mark_price(wire: WireMarkPrice, market: Market, ts_init: int) -> MarkPrice:
    return MarkPrice(
        market, wire.s, wire.p, wire.i, wire.P, wire.r, wire.T * NANOS_PER_MILLI, wire.E * NANOS_PER_MILLI, ts_init
    )


def parse_force_order(wire: WireForceOrder, market: Market, ts_init: int) -> Liquidation:
    body = wire.o
    return Liquidation(
        market,
        body.s,
        Side(body.S),
        body.o,
        body.f,
        body.p,
        body.ap,
        body.q,
        body.z,
        body.X,
        wire.E * NANOS_PER_MILLI,
        ts_init,
    )

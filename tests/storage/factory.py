"""Deterministic synthetic market events of every kind, for storage and replay tests."""

from __future__ import annotations

import random

from kestrel.core.enums import Market, Side
from kestrel.core.events import (
    AggregateTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    FundingRate,
    Kline,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    QualityFlag,
    Trade,
)

MS = 1_000_000
START_NS = 1_723_161_000_000 * MS  # 2024-08-08 23:50:00 UTC: the hour turns during the sample


def sample_events(count: int = 2000, seed: int = 7, start_ns: int = START_NS, step_ms: int = 900) -> list[MarketEvent]:
    """`count` events of all ten kinds over two markets and three symbols, in arrival order.

    Many share a `ts_event` (ms resolution), some arrive slightly out of exchange-time order, a few carry
    quality flags: what a replay must order deterministically.
    """
    rng = random.Random(seed)
    events: list[MarketEvent] = []
    update_ids: dict[tuple[Market, str], int] = {}
    trade_ids: dict[tuple[Market, str], int] = {}
    for index in range(count):
        market = rng.choice([Market.FUTURES, Market.SPOT])
        symbol = rng.choice(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
        ts_event = start_ns + (index // 3) * step_ms * MS - rng.choice([0, 0, 0, 3]) * MS  # triples share a ts
        ts_init = ts_event + rng.randint(1, 40) * 100_000
        price = round(100 + rng.random() * 10, 2)
        key = (market, symbol)
        kind = rng.randrange(10)
        flags = int(QualityFlag.GAP_BEFORE) if rng.random() < 0.02 else 0
        if kind == 0:
            first = update_ids.get(key, 1000) + 1
            last = first + rng.randint(0, 5)
            update_ids[key] = last
            bids = [(round(price - 0.01 * i, 2), float(rng.randint(0, 5))) for i in range(rng.randint(0, 4))]
            asks = [(round(price + 0.01 * (i + 1), 2), float(rng.randint(0, 5))) for i in range(rng.randint(0, 4))]
            previous = first - 1 if market is Market.FUTURES else -1
            events.append(DepthUpdate(market, symbol, first, last, previous, bids, asks, ts_event, ts_init, flags))
        elif kind == 1:
            update_ids[key] = update_ids.get(key, 1000) + 1
            events.append(
                BookTicker(market, symbol, update_ids[key], price, 1.5, price + 0.01, 2.25, ts_event, ts_init, flags)
            )
        elif kind == 2:
            trade_ids[key] = trade_ids.get(key, 50) + 1
            events.append(Trade(market, symbol, trade_ids[key], price, 0.01, rng.random() < 0.5, ts_event, ts_init))
        elif kind == 3:
            trade_ids[key] = trade_ids.get(key, 50) + 2
            events.append(
                AggregateTrade(
                    market,
                    symbol,
                    trade_ids[key],
                    price,
                    0.5,
                    trade_ids[key] - 1,
                    trade_ids[key],
                    False,
                    ts_event,
                    ts_init,
                )
            )
        elif kind == 4:
            levels = [(price - i, 1.0 + i) for i in range(3)]
            events.append(DepthSnapshot(market, symbol, update_ids.get(key, 1000), levels, [], ts_event, ts_init))
        elif kind == 5:
            open_ns = ts_event // (60_000 * MS) * 60_000 * MS
            events.append(
                Kline(market, symbol, "1m", open_ns, open_ns + 59_999 * MS, price, price + 1, price - 1, price,
                      10.0, 1000.0, 12, 4.0, 400.0, rng.random() < 0.2, ts_event, ts_init)
            )  # fmt: skip
        elif kind == 6:
            events.append(
                MarkPrice(
                    Market.FUTURES, symbol, price, price, price, 0.0001, ts_event + 3600 * 10**9, ts_event, ts_init
                )
            )
        elif kind == 7:
            events.append(FundingRate(Market.FUTURES, symbol, 0.0001, price, ts_event, ts_init))
        elif kind == 8:
            side = rng.choice([Side.BUY, Side.SELL])
            events.append(
                Liquidation(
                    Market.FUTURES, symbol, side, "LIMIT", "IOC", price, price, 1.0, 1.0, "FILLED", ts_event, ts_init
                )
            )
        else:
            events.append(OpenInterest(Market.FUTURES, symbol, 12345.5, ts_event, ts_init))
    return events

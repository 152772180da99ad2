from __future__ import annotations

import math

import msgspec

from kestrel.core.enums import Market, Side
from kestrel.core.events import MARKET_EVENT_TYPES, AggregateTrade, BookTicker, DepthUpdate


def test_top_of_book_derivations() -> None:
    tick = BookTicker(Market.FUTURES, "BTCUSDT", 1, 99.0, 2.0, 101.0, 3.0, ts_event=10, ts_init=15)
    assert tick.mid == 100.0
    assert tick.spread_bps == 200.0
    assert tick.depth_top1_usdt == 200.0
    empty = BookTicker(Market.FUTURES, "X", 1, 0.0, 0.0, 0.0, 0.0, 0, 0)
    assert math.isnan(empty.spread_bps)


def test_every_event_has_both_timestamps_and_round_trips() -> None:
    for event_type in MARKET_EVENT_TYPES:
        fields = set(event_type.__struct_fields__)
        assert {"market", "symbol", "ts_event", "ts_init", "flags"} <= fields, event_type
    update = DepthUpdate(Market.SPOT, "ETHUSDT", 5, 9, -1, [(1.0, 2.0)], [(3.0, 0.0)], 100, 200)
    encoded = msgspec.msgpack.encode(update)
    decoded = msgspec.msgpack.decode(encoded, type=DepthUpdate)
    assert decoded == update


def test_aggressor_side() -> None:
    trade = AggregateTrade(Market.SPOT, "X", 1, 1.0, 1.0, 1, 1, True, 0, 0)
    assert trade.aggressor is Side.SELL

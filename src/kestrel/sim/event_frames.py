"""Our own recordings back onto the wire: normalised market events (`kestrel.core.events`) rendered as
Binance stream frames, so the simulator can replay what the recorder stored.

The recorder keeps events, not the raw JSON, so the payloads are rebuilt here the way the exchange
writes them (spec §2), with every id untouched: update ids, `pu`, trade and aggregate ids, kline trade
counts. Prices and quantities are printed with the symbol's wire decimals (spot: 8; USD-M: the
exchangeInfo `pricePrecision`/`quantityPrecision` where known, else the fewest decimals that give the
recorded value back), so a parser reads back exactly the recorded numbers. Fields the events do not
keep are filled with what they must have been: a USD-M transaction time `T` equals the event time,
bookTicker/depth quantities are absolute as recorded. A `DepthSnapshot` becomes the REST snapshot the
replay serves. `FundingRate` and `OpenInterest` (REST polls) have no stream and are skipped.

"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from kestrel.core.enums import Market, Side
from kestrel.core.events import (
    AggregateTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    Kline,
    Liquidation,
    MarketEvent,
    MarkPrice,
    Trade,
)
from kestrel.replay.raw import FrameKind, RawFrame
from kestrel.sim.instruments import ExchangeInfoCatalog, spec_from_entry

NANOS_PER_MILLI = 1_000_000
Decimals = Callable[[Market, str], tuple[int, int] | None]  # (price decimals, quantity decimals) if known


def _shortest(value: float) -> str:
    """The fewest decimals that read back as `value` (repr is the shortest round-tripping form)."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.10f}".rstrip("0")
    return text[:-2] if text.endswith(".0") else text


class _Formatter:
    def __init__(self, market: Market, symbol: str, decimals: Decimals) -> None:
        known = decimals(market, symbol)
        if market is Market.SPOT:
            known = (8, 8)
        self.price_decimals: int | None = known[0] if known is not None else None
        self.quantity_decimals: int | None = known[1] if known is not None else None

    def price(self, value: float) -> str:
        return _shortest(value) if self.price_decimals is None else f"{value:.{self.price_decimals}f}"

    def quantity(self, value: float) -> str:
        return _shortest(value) if self.quantity_decimals is None else f"{value:.{self.quantity_decimals}f}"

    def levels(self, levels: list[tuple[float, float]]) -> list[list[str]]:
        return [[self.price(price), self.quantity(quantity)] for price, quantity in levels]


def _ms(value_ns: int) -> int:
    return value_ns // NANOS_PER_MILLI


def _book_ticker(event: BookTicker, out: _Formatter) -> tuple[str, dict[str, object]]:
    fields: dict[str, object] = {"u": event.update_id, "s": event.symbol, "b": out.price(event.bid_price),
                                 "B": out.quantity(event.bid_qty), "a": out.price(event.ask_price),
                                 "A": out.quantity(event.ask_qty)}  # fmt: skip
    if event.market is Market.FUTURES:
        fields = {"e": "bookTicker", **fields, "T": _ms(event.ts_event), "E": _ms(event.ts_event)}
    return "bookTicker", fields


def _depth(event: DepthUpdate, out: _Formatter) -> tuple[str, dict[str, object]]:
    futures = event.market is Market.FUTURES
    fields: dict[str, object] = {"e": "depthUpdate", "E": _ms(event.ts_event)}
    if futures:
        fields["T"] = _ms(event.ts_event)
    fields.update(s=event.symbol, U=event.first_update_id, u=event.final_update_id)
    if futures:
        fields["pu"] = event.previous_final_update_id
    # spot lists bids best first, USD-M ascending (as recorded; see kestrel.sim.wire)
    fields.update(b=out.levels(sorted(event.bids, reverse=not futures)), a=out.levels(sorted(event.asks)))
    return "depth@100ms", fields


def _trade(event: Trade, out: _Formatter) -> tuple[str, dict[str, object]]:
    fields: dict[str, object] = {"e": "trade", "E": _ms(event.ts_event), "s": event.symbol, "t": event.trade_id,
                                 "p": out.price(event.price), "q": out.quantity(event.quantity),
                                 "T": _ms(event.ts_event), "m": event.buyer_is_maker}  # fmt: skip
    if event.market is Market.FUTURES:
        fields["X"] = "MARKET"
    else:
        fields["M"] = True
    return "trade", fields


def _agg_trade(event: AggregateTrade, out: _Formatter) -> tuple[str, dict[str, object]]:
    fields: dict[str, object] = {"e": "aggTrade", "E": _ms(event.ts_event), "s": event.symbol,
                                 "a": event.aggregate_id, "p": out.price(event.price),
                                 "q": out.quantity(event.quantity), "f": event.first_trade_id,
                                 "l": event.last_trade_id, "T": _ms(event.ts_event),
                                 "m": event.buyer_is_maker}  # fmt: skip
    if event.market is Market.SPOT:
        fields["M"] = True
    return "aggTrade", fields


def _kline(event: Kline, out: _Formatter) -> tuple[str, dict[str, object]]:
    # the recorder keeps no first/last trade id of a bar: -1, as Binance sends for a bar without trades
    bar = {"t": _ms(event.open_time_ns), "T": _ms(event.close_time_ns), "s": event.symbol, "i": event.interval,
           "f": -1, "L": -1, "o": out.price(event.open), "c": out.price(event.close), "h": out.price(event.high),
           "l": out.price(event.low), "v": out.quantity(event.volume), "n": event.trade_count,
           "x": event.is_closed, "q": _shortest(event.quote_volume), "V": out.quantity(event.taker_buy_volume),
           "Q": _shortest(event.taker_buy_quote_volume), "B": "0"}  # fmt: skip
    return f"kline_{event.interval}", {"e": "kline", "E": _ms(event.ts_event), "s": event.symbol, "k": bar}


def _mark_price(event: MarkPrice, out: _Formatter) -> tuple[str, dict[str, object]]:
    return "markPrice@1s", {"e": "markPriceUpdate", "E": _ms(event.ts_event), "s": event.symbol,
                            "p": f"{event.mark_price:.8f}", "P": f"{event.estimated_settle_price:.8f}",
                            "i": f"{event.index_price:.8f}", "r": f"{event.funding_rate:.8f}",
                            "T": _ms(event.next_funding_time_ns)}  # fmt: skip


def _liquidation(event: Liquidation, out: _Formatter) -> tuple[str, dict[str, object]]:
    side = event.side.value if isinstance(event.side, Side) else str(event.side)
    order = {"s": event.symbol, "S": side, "o": event.order_type, "f": event.time_in_force,
             "q": out.quantity(event.quantity), "p": out.price(event.price), "ap": out.price(event.average_price),
             "X": event.status, "l": out.quantity(event.filled_quantity), "z": out.quantity(event.filled_quantity),
             "T": _ms(event.ts_event)}  # fmt: skip
    return "forceOrder", {"e": "forceOrder", "E": _ms(event.ts_event), "o": order}


_RENDERERS: dict[type, Callable[[Any, _Formatter], tuple[str, dict[str, object]]]] = {
    BookTicker: _book_ticker,
    DepthUpdate: _depth,
    Trade: _trade,
    AggregateTrade: _agg_trade,
    Kline: _kline,
    MarkPrice: _mark_price,
    Liquidation: _liquidation,
}


def _snapshot(event: DepthSnapshot, out: _Formatter) -> bytes:
    body: dict[str, object] = {"lastUpdateId": event.last_update_id}
    if event.market is Market.FUTURES:
        body.update(E=_ms(event.ts_event), T=_ms(event.ts_event))
    body.update(bids=out.levels(sorted(event.bids, reverse=True)), asks=out.levels(sorted(event.asks)))
    return orjson.dumps(body)


def frames_from_events(events: Iterable[MarketEvent], decimals: Decimals | None = None) -> Iterator[RawFrame]:
    """Raw frames for the simulator's replay, from recorded market events in exchange-time order.

    The frames are paced by each event's exchange time (`ts_event`), the order a recording's replay
    yields; payload times are those same exchange times, so the replay's server clock needs no offset.
    """
    formatters: dict[tuple[Market, str], _Formatter] = {}
    known: Decimals = decimals or (lambda market, symbol: None)
    for event in events:
        key = (event.market, event.symbol)
        out = formatters.get(key)
        if out is None:
            out = formatters[key] = _Formatter(event.market, event.symbol, known)
        if isinstance(event, DepthSnapshot):
            yield RawFrame(event.ts_event, FrameKind.SNAPSHOT, event.market, event.symbol, "depth_snapshot",
                           _snapshot(event, out), "events")  # fmt: skip
            continue
        renderer = _RENDERERS.get(type(event))
        if renderer is None:
            continue  # FundingRate, OpenInterest: REST polls, no stream
        stream, fields = renderer(event, out)
        payload = orjson.dumps(fields)
        yield RawFrame(event.ts_event, FrameKind.STREAM, event.market, event.symbol, f"{event.symbol.lower()}@{stream}",
                       payload, "events")  # fmt: skip


def decimals_from_exchange_info(directory: Path) -> Decimals:
    """Wire decimals of every symbol the recorded exchangeInfo files list (`directory`/exchange_info)."""
    catalogs = {market: ExchangeInfoCatalog.load(market, directory / "exchange_info") for market in Market}
    cache: dict[tuple[Market, str], tuple[int, int] | None] = {}

    def lookup(market: Market, symbol: str) -> tuple[int, int] | None:
        key = (market, symbol)
        if key not in cache:
            entry = catalogs[market].find(symbol)
            spec = spec_from_entry(entry, market, 0) if entry is not None else None
            cache[key] = (spec.price_decimals, spec.quantity_decimals) if spec is not None else None
        return cache[key]

    return lookup

"""Wire payloads of the market streams and REST bodies, built the way Binance lays them out (spec §2, §5).

Key order follows the exchange's (and the recordings'): e.g. spot bookTicker ``u s b B a A`` with no
event time, USD-M bookTicker ``e u s b B a A T E``. Diff depth lists spot bids best-first (descending)
and asks ascending; USD-M lists both sides in ascending price order, as recorded. All times are ms.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from kestrel.core.enums import Market
from kestrel.sim.instruments import SymbolSpec

Levels = Iterable[tuple[int, int]]  # (price ticks, quantity lots)


def _levels(spec: SymbolSpec, levels: Levels) -> list[list[str]]:
    price_text, quantity_text = spec.price_text, spec.quantity_text
    return [[price_text(price), quantity_text(quantity)] for price, quantity in levels]


def book_ticker(
    spec: SymbolSpec, update_id: int, bid: tuple[int, int], ask: tuple[int, int], event_ms: int, transaction_ms: int
) -> bytes:
    bid_price, bid_qty = spec.price_text(bid[0]), spec.quantity_text(bid[1])
    ask_price, ask_qty = spec.price_text(ask[0]), spec.quantity_text(ask[1])
    if spec.market is Market.SPOT:
        return orjson.dumps(
            {"u": update_id, "s": spec.symbol, "b": bid_price, "B": bid_qty, "a": ask_price, "A": ask_qty}
        )
    return orjson.dumps(
        {
            "e": "bookTicker",
            "u": update_id,
            "s": spec.symbol,
            "b": bid_price,
            "B": bid_qty,
            "a": ask_price,
            "A": ask_qty,
            "T": transaction_ms,
            "E": event_ms,
        }
    )


def depth_update(
    spec: SymbolSpec,
    first_id: int,
    final_id: int,
    previous_final_id: int,
    changes: dict[tuple[bool, int], int],
    event_ms: int,
    transaction_ms: int,
) -> bytes:
    """A diff-depth event from the accumulated changes {(is_bid, price): new quantity}."""
    bids = sorted((price, quantity) for (is_bid, price), quantity in changes.items() if is_bid)
    asks = sorted((price, quantity) for (is_bid, price), quantity in changes.items() if not is_bid)
    if spec.market is Market.SPOT:
        bids.reverse()
        return orjson.dumps(
            {
                "e": "depthUpdate",
                "E": event_ms,
                "s": spec.symbol,
                "U": first_id,
                "u": final_id,
                "b": _levels(spec, bids),
                "a": _levels(spec, asks),
            }
        )
    # USD-M: the same envelope as the partial-depth stream (it is a depthUpdate with the top levels)
    return partial_depth_futures(spec, first_id, final_id, previous_final_id, bids, asks, event_ms, transaction_ms)


def trade(spec: SymbolSpec, trade_id: int, price: int, quantity: int, buyer_is_maker: bool, time_ms: int) -> bytes:
    price_text, quantity_text = spec.price_text(price), spec.quantity_text(quantity)
    if spec.market is Market.SPOT:
        return orjson.dumps(
            {
                "e": "trade",
                "E": time_ms,
                "s": spec.symbol,
                "t": trade_id,
                "p": price_text,
                "q": quantity_text,
                "T": time_ms,
                "m": buyer_is_maker,
                "M": True,
            }
        )
    return orjson.dumps(
        {
            "e": "trade",
            "E": time_ms,
            "T": time_ms,
            "s": spec.symbol,
            "t": trade_id,
            "p": price_text,
            "q": quantity_text,
            "X": "MARKET",
            "m": buyer_is_maker,
        }
    )


def agg_trade_fields(
    spec: SymbolSpec, agg_id: int, price: int, quantity: int, first: int, last: int, time_ms: int, maker: bool
) -> dict[str, object]:
    """The REST `aggTrades` row (spot adds `M`)."""
    row: dict[str, object] = {
        "a": agg_id,
        "p": spec.price_text(price),
        "q": spec.quantity_text(quantity),
        "f": first,
        "l": last,
        "T": time_ms,
        "m": maker,
    }
    if spec.market is Market.SPOT:
        row["M"] = True
    return row


def agg_trade(
    spec: SymbolSpec, agg_id: int, price: int, quantity: int, first: int, last: int, time_ms: int, maker: bool
) -> bytes:
    price_text, quantity_text = spec.price_text(price), spec.quantity_text(quantity)
    if spec.market is Market.SPOT:
        return orjson.dumps(
            {
                "e": "aggTrade",
                "E": time_ms,
                "s": spec.symbol,
                "a": agg_id,
                "p": price_text,
                "q": quantity_text,
                "f": first,
                "l": last,
                "T": time_ms,
                "m": maker,
                "M": True,
            }
        )
    return orjson.dumps(
        {
            "e": "aggTrade",
            "E": time_ms,
            "s": spec.symbol,
            "a": agg_id,
            "p": price_text,
            "q": quantity_text,
            "nq": quantity_text,
            "f": first,
            "l": last,
            "T": time_ms,
            "m": maker,
        }
    )


def depth_snapshot(
    spec: SymbolSpec, last_update_id: int, bids: Levels, asks: Levels, event_ms: int, transaction_ms: int
) -> bytes:
    """REST depth body: bids best first (descending), asks ascending; USD-M adds `E`/`T`."""
    if spec.market is Market.SPOT:
        return orjson.dumps({"lastUpdateId": last_update_id, "bids": _levels(spec, bids), "asks": _levels(spec, asks)})
    return orjson.dumps(
        {
            "lastUpdateId": last_update_id,
            "E": event_ms,
            "T": transaction_ms,
            "bids": _levels(spec, bids),
            "asks": _levels(spec, asks),
        }
    )


def partial_depth_spot(spec: SymbolSpec, last_update_id: int, bids: Levels, asks: Levels) -> bytes:
    """Spot `<symbol>@depth<N>`: the top N levels, no event envelope."""
    return orjson.dumps({"lastUpdateId": last_update_id, "bids": _levels(spec, bids), "asks": _levels(spec, asks)})


def partial_depth_futures(
    spec: SymbolSpec,
    first_id: int,
    final_id: int,
    previous_final_id: int,
    bids: Levels,
    asks: Levels,
    event_ms: int,
    transaction_ms: int,
) -> bytes:
    """USD-M `<symbol>@depth<N>`: the depthUpdate envelope with the top N levels as `b`/`a`."""
    return orjson.dumps(
        {
            "e": "depthUpdate",
            "E": event_ms,
            "T": transaction_ms,
            "s": spec.symbol,
            "U": first_id,
            "u": final_id,
            "pu": previous_final_id,
            "b": _levels(spec, bids),
            "a": _levels(spec, asks),
        }
    )

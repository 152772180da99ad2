"""Small builders for engine tests: instruments with real Binance filters, books, requests."""

from __future__ import annotations

from decimal import Decimal

from kestrel.core.enums import Market, OrderType, Side, TimeInForce
from kestrel.core.events import DepthSnapshot, DepthUpdate, MarkPrice, Trade
from kestrel.core.identifiers import ClientOrderId, Symbol
from kestrel.core.instrument import GridFilter, Instrument, NotionalFilter, PercentPriceFilter
from kestrel.core.venue import OrderRequest
from kestrel.matching.engine import EngineSettings, MatchingEngine

D = Decimal
FUT = Market.FUTURES
SPOT = Market.SPOT

FUTURES_BTC = Instrument(
    Symbol("BTCUSDT"),
    FUT,
    "BTC",
    "USDT",
    GridFilter("PRICE_FILTER", D("0.10"), D("4529764"), D("0.10")),
    GridFilter("LOT_SIZE", D("0.001"), D("1000"), D("0.001")),
    GridFilter("MARKET_LOT_SIZE", D("0.001"), D("120"), D("0.001")),
    NotionalFilter("MIN_NOTIONAL", D("5")),
    PercentPriceFilter(D("1.05"), D("0.95")),
    margin_asset="USDT",
    liquidation_fee_rate=D("0.0125"),
)
SPOT_BTC = Instrument(
    Symbol("BTCUSDT"),
    SPOT,
    "BTC",
    "USDT",
    GridFilter("PRICE_FILTER", D("0.01"), D("1000000"), D("0.01")),
    GridFilter("LOT_SIZE", D("0.00001"), D("9000"), D("0.00001")),
    None,
    NotionalFilter("NOTIONAL", D("5"), D("9000000")),
)


def engine(*, bar: bool = False, settings: EngineSettings | None = None, **balances: Decimal) -> MatchingEngine:
    bar_symbols = [(FUT, "BTCUSDT"), (SPOT, "BTCUSDT")] if bar else []
    result = MatchingEngine([FUTURES_BTC, SPOT_BTC], settings, bar_symbols)
    result.open_account(
        "a",
        spot_balances={"USDT": balances.get("spot_usdt", D(100_000)), "BTC": balances.get("spot_btc", D(10))},
        futures_balances={"USDT": balances.get("futures_usdt", D(100_000))},
    )
    return result


def snapshot(
    market: Market = FUT,
    bids: list[tuple[float, float]] | None = None,
    asks: list[tuple[float, float]] | None = None,
    ts: int = 1_000,
    update_id: int = 100,
) -> DepthSnapshot:
    return DepthSnapshot(
        market,
        "BTCUSDT",
        update_id,
        bids if bids is not None else [(100.0, 1.0), (99.9, 2.0), (99.8, 3.0)],
        asks if asks is not None else [(100.1, 1.5), (100.2, 3.0), (100.3, 4.0)],
        ts,
        ts,
    )


def depth(
    bids: list[tuple[float, float]],
    asks: list[tuple[float, float]],
    ts: int,
    first: int,
    last: int,
    previous: int,
    market: Market = FUT,
) -> DepthUpdate:
    return DepthUpdate(market, "BTCUSDT", first, last, previous, bids, asks, ts, ts)


def trade(price: float, quantity: float, aggressor: Side, ts: int, market: Market = FUT) -> Trade:
    return Trade(market, "BTCUSDT", ts, price, quantity, aggressor is Side.SELL, ts, ts)


def mark(price: float, ts: int, rate: float = 0.0, next_funding_ns: int = 0) -> MarkPrice:
    return MarkPrice(FUT, "BTCUSDT", price, price, 0.0, rate, next_funding_ns, ts, ts)


def limit(
    side: Side, quantity: str, price: str, tif: TimeInForce = TimeInForce.GTC, market: Market = FUT, **extra: object
) -> OrderRequest:
    return OrderRequest(
        market, "BTCUSDT", side, OrderType.LIMIT, quantity=D(quantity), price=D(price), time_in_force=tif, **extra
    )  # type: ignore[arg-type]


def market_order(side: Side, quantity: str, market: Market = FUT, **extra: object) -> OrderRequest:
    return OrderRequest(market, "BTCUSDT", side, OrderType.MARKET, quantity=D(quantity), **extra)  # type: ignore[arg-type]


def cid(value: str) -> ClientOrderId:
    return ClientOrderId(value)

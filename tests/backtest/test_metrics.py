"""Round trips and metrics from fills: reversals, spot fees paid in the coin bought."""

from __future__ import annotations

from decimal import Decimal

from kestrel.backtest.metrics import round_trips
from kestrel.core.enums import LiquiditySide, Market, Side
from kestrel.core.identifiers import ClientOrderId, TradeId, VenueOrderId
from kestrel.core.orders import Fill

D = Decimal


def fill(
    side: Side,
    quantity: str,
    price: str,
    fee: str,
    fee_asset: str = "USDT",
    market: Market = Market.FUTURES,
    ts: int = 0,
) -> Fill:
    return Fill(
        ClientOrderId("c"),
        VenueOrderId(1),
        TradeId(ts),
        market,
        "BTCUSDT",
        side,
        D(price),
        D(quantity),
        D(fee),
        fee_asset,
        LiquiditySide.TAKER,
        ts,
        ts,
    )


def test_a_reversal_closes_one_round_trip_and_opens_the_next() -> None:
    trips = round_trips(
        [
            fill(Side.BUY, "1", "100", "0.05", ts=1),
            fill(Side.SELL, "2", "110", "0.11", ts=2),
            fill(Side.BUY, "1", "105", "0.05", ts=3),
        ]
    )
    assert [(t.side, t.quantity, t.entry_price, t.exit_price) for t in trips] == [
        ("LONG", D(1), D(100), D(110)),
        ("SHORT", D(1), D(110), D(105)),
    ]
    assert trips[0].pnl == D(10) - D("0.05") - D("0.055")
    assert trips[1].pnl == D(5) - D("0.055") - D("0.05")


def test_spot_buy_fees_in_the_base_asset_shrink_what_is_held() -> None:
    buy = fill(Side.BUY, "0.1", "100", "0.0001", "BTC", Market.SPOT, 1)
    sell = fill(Side.SELL, "0.0999", "120", "0.011988", "USDT", Market.SPOT, 2)
    (trip,) = round_trips([buy, sell])
    assert trip.pnl == D("0.0999") * 120 - D("0.1") * 100 - D("0.011988")

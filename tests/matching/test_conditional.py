"""Stop, take-profit, trailing, reduce-only, close-position, iceberg and spot OCO orders."""

from __future__ import annotations

import pytest

from kestrel.core.enums import OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.errors import InvalidOrderError
from kestrel.core.venue import ExecutionType, OcoLeg, OcoRequest, OrderRequest, OrderUpdate, WorkingType
from kestrel.matching.engine import MatchingEngine
from tests.matching.helpers import FUT, SPOT, D, engine, limit, mark, market_order, snapshot, trade


def booked() -> MatchingEngine:
    e = engine()
    e.apply(snapshot(FUT))
    e.apply(snapshot(SPOT))
    e.apply(trade(100.0, 0.1, Side.SELL, 1_500))
    e.apply(trade(100.0, 0.1, Side.SELL, 1_500, SPOT))
    return e


def updates(events: list) -> list[OrderUpdate]:
    return [ev for ev in events if isinstance(ev, OrderUpdate)]


def executions(events: list) -> list[str]:
    return [ev.execution_type.value for ev in updates(events)]


def stop(
    side: Side, kind: OrderType, stop_price: str, quantity: str | None = "1", price: str | None = None, **extra: object
) -> OrderRequest:
    tif = TimeInForce.GTC if price is not None else None
    return OrderRequest(
        FUT, "BTCUSDT", side, kind, quantity=D(quantity) if quantity else None, price=D(price) if price else None,
        stop_price=D(stop_price), time_in_force=tif, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_stop_market_waits_then_executes_as_a_market_order() -> None:
    e = booked()
    events = e.submit_order("a", stop(Side.SELL, OrderType.STOP_MARKET, "99.5"), 2_000)
    assert executions(events) == ["NEW"]
    assert e.apply(trade(99.6, 0.1, Side.SELL, 3_000)) == []
    events = e.apply(trade(99.5, 0.1, Side.SELL, 4_000))
    assert executions(events)[0] == "TRIGGERED"
    filled = [u.fill for u in updates(events) if u.fill]
    assert [(f.price, f.quantity) for f in filled] == [(D("100.0"), D("1"))]  # sold into the best bid


def test_a_stop_on_the_wrong_side_would_trigger_immediately() -> None:
    e = booked()
    with pytest.raises(InvalidOrderError) as error:
        e.submit_order("a", stop(Side.SELL, OrderType.STOP_MARKET, "100.5"), 2_000)
    assert error.value.code == -2021
    spot = OrderRequest(SPOT, "BTCUSDT", Side.BUY, OrderType.STOP_MARKET, quantity=D("0.1"), stop_price=D("99.00"))
    with pytest.raises(InvalidOrderError) as error:
        e.submit_order("a", spot, 2_000)
    assert error.value.code == -2010 and "trigger immediately" in str(error.value)


def test_take_profit_limit_becomes_a_resting_limit_when_triggered() -> None:
    e = booked()
    e.submit_order("a", stop(Side.SELL, OrderType.TAKE_PROFIT_LIMIT, "100.5", price="100.6"), 2_000)
    events = e.apply(trade(100.5, 0.1, Side.BUY, 3_000))
    assert executions(events) == ["TRIGGERED"]
    order = e.open_orders("a", FUT)[0]
    assert order.triggered and order.price == D("100.6") and order.status is OrderStatus.NEW


def test_mark_price_stops_watch_the_mark_not_the_last_trade() -> None:
    e = booked()
    e.apply(mark(100.0, 1_600))
    e.submit_order("a", stop(Side.BUY, OrderType.STOP_MARKET, "101.0", working_type=WorkingType.MARK_PRICE), 2_000)
    assert e.apply(trade(101.5, 0.1, Side.BUY, 3_000)) == []
    events = e.apply(mark(101.0, 4_000))
    assert executions(events)[:2] == ["TRIGGERED", "TRADE"]


def test_trailing_stop_follows_the_high_and_fires_on_the_callback() -> None:
    e = booked()
    trailing = OrderRequest(
        FUT, "BTCUSDT", Side.SELL, OrderType.TRAILING_STOP_MARKET, quantity=D("1"), trailing_callback_rate=D("1")
    )
    e.submit_order("a", trailing, 2_000)
    for ts, price in enumerate([101.0, 105.0, 110.0, 109.0], start=3):
        assert e.apply(trade(price, 0.1, Side.BUY, ts * 1_000)) == []
    events = e.apply(trade(108.9, 0.1, Side.SELL, 8_000))  # 110 × (1 − 1 %)
    assert executions(events)[0] == "TRIGGERED"


def test_trailing_with_an_activation_price_waits_for_it() -> None:
    e = booked()
    trailing = OrderRequest(
        FUT,
        "BTCUSDT",
        Side.SELL,
        OrderType.TRAILING_STOP_MARKET,
        quantity=D("1"),
        trailing_callback_rate=D("1"),
        activation_price=D("105"),
    )
    e.submit_order("a", trailing, 2_000)
    assert e.apply(trade(98.0, 0.1, Side.SELL, 3_000)) == []  # a 2 % drop before activation does nothing
    e.apply(trade(106.0, 0.1, Side.BUY, 4_000))
    assert executions(e.apply(trade(104.9, 0.1, Side.SELL, 5_000)))[0] == "TRIGGERED"
    wrong = OrderRequest(
        FUT,
        "BTCUSDT",
        Side.SELL,
        OrderType.TRAILING_STOP_MARKET,
        quantity=D("1"),
        trailing_callback_rate=D("1"),
        activation_price=D("90"),
    )
    with pytest.raises(InvalidOrderError) as error:
        e.submit_order("a", wrong, 6_000)
    assert error.value.code == -2021


def test_reduce_only_never_increases_or_flips_the_position() -> None:
    e = booked()
    with pytest.raises(InvalidOrderError) as error:
        e.submit_order("a", market_order(Side.SELL, "1", reduce_only=True), 2_000)
    assert error.value.code == -2022
    e.submit_order("a", market_order(Side.BUY, "1"), 2_000)
    events = e.submit_order("a", market_order(Side.SELL, "2", reduce_only=True), 3_000)
    assert sum(u.fill.quantity for u in updates(events) if u.fill) == D("1")
    assert e.positions("a") == []


def test_resting_reduce_only_orders_expire_when_the_position_is_gone() -> None:
    e = booked()
    e.submit_order("a", market_order(Side.BUY, "1"), 2_000)
    e.submit_order("a", limit(Side.SELL, "1", "101.0", reduce_only=True), 2_100)
    events = e.submit_order("a", market_order(Side.SELL, "1"), 2_200)
    expired = [u for u in updates(events) if u.execution_type is ExecutionType.EXPIRED]
    assert expired and expired[0].order.expiry_reason == "REDUCE_ONLY"


def test_close_position_sells_whatever_is_held_when_triggered() -> None:
    e = booked()
    e.submit_order("a", market_order(Side.BUY, "1.5"), 2_000)
    e.submit_order("a", stop(Side.SELL, OrderType.STOP_MARKET, "99.5", quantity=None, close_position=True), 2_100)
    events = e.apply(trade(99.5, 0.1, Side.SELL, 3_000))
    assert sum(u.fill.quantity for u in updates(events) if u.fill) == D("1.5")
    assert e.positions("a") == []


def test_iceberg_shows_one_slice_at_a_time_and_requeues_each() -> None:
    e = booked()
    order = limit(Side.BUY, "1.00000", "99.90", market=SPOT, iceberg_quantity=D("0.20000"))
    e.submit_order("a", order, 2_000)
    sim = e.orders[1]
    row = e.state.orders[sim.slot]
    from kestrel.matching import kernel as k

    assert row[k.O_DISPLAY] == 20_000  # lots of 0.00001
    e.apply(trade(99.9, 2.0, Side.SELL, 3_000, SPOT))  # the 2.0 ahead trades
    events = e.apply(trade(99.9, 0.5, Side.SELL, 4_000, SPOT))
    assert [u.fill.quantity for u in updates(events) if u.fill] == [D("0.2")]  # only the visible slice
    # the next slice joins the back of the level as the book shows it (the recording still shows 2.0)
    assert e.state.ahead[sim.slot] == 200_000.0
    assert row[k.O_DISPLAY] == 20_000 and sim.leaves == D("0.8")


def test_spot_oco_cancels_the_other_leg_when_one_executes() -> None:
    e = booked()
    oco = OcoRequest(
        "BTCUSDT",
        Side.SELL,
        D("0.5"),
        above=OcoLeg(OrderType.LIMIT_MAKER, price=D("101.00")),
        below=OcoLeg(OrderType.STOP_LIMIT, price=D("98.90"), stop_price=D("99.00"), time_in_force=TimeInForce.GTC),
    )
    events = e.submit_oco("a", oco, 2_000)
    assert executions(events) == ["NEW", "NEW"]
    assert e.accounts["a"].spot.locked("BTC") == D("0.5")  # one lock for both legs
    events = e.apply(trade(101.1, 0.7, Side.BUY, 3_000, SPOT))
    assert [u.execution_type.value for u in updates(events)] == ["TRADE", "EXPIRED"]
    assert updates(events)[1].order.expiry_reason == "OCO_TRIGGER"
    assert e.accounts["a"].spot.locked("BTC") == 0


def test_cancelling_one_oco_leg_cancels_the_list() -> None:
    e = booked()
    oco = OcoRequest(
        "BTCUSDT",
        Side.SELL,
        D("0.5"),
        above=OcoLeg(OrderType.LIMIT_MAKER, price=D("101.00")),
        below=OcoLeg(OrderType.STOP_MARKET, stop_price=D("99.00")),
    )
    e.submit_oco("a", oco, 2_000)
    events = e.cancel_order("a", SPOT, "BTCUSDT", 3_000, order_id=2)
    assert [u.order.status for u in updates(events)] == [OrderStatus.CANCELED, OrderStatus.CANCELED]
    assert e.accounts["a"].spot.free("BTC") == D("10")


def test_oco_prices_must_straddle_the_market() -> None:
    e = booked()
    oco = OcoRequest(
        "BTCUSDT",
        Side.SELL,
        D("0.5"),
        above=OcoLeg(OrderType.LIMIT_MAKER, price=D("99.50")),
        below=OcoLeg(OrderType.STOP_MARKET, stop_price=D("99.00")),
    )
    with pytest.raises(InvalidOrderError) as error:
        e.submit_oco("a", oco, 2_000)
    assert error.value.code == -1013
    assert e.accounts["a"].spot.locked("BTC") == 0

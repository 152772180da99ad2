"""Order types against a known book: fills, prices, fees, statuses and the exchange's error codes."""

from __future__ import annotations

import pytest

from kestrel.core.enums import OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.errors import InvalidOrderError
from kestrel.core.venue import ExecutionType, OrderRequest, OrderUpdate
from kestrel.matching.engine import MatchingEngine
from tests.matching.helpers import FUT, SPOT, D, cid, depth, engine, limit, market_order, snapshot, trade


def booked(market: object = FUT) -> MatchingEngine:
    e = engine()
    e.apply(snapshot(FUT))
    e.apply(snapshot(SPOT))
    return e


def fills(events: list) -> list[tuple[D, D, str]]:
    return [
        (ev.fill.price, ev.fill.quantity, ev.fill.liquidity.value)
        for ev in events
        if isinstance(ev, OrderUpdate) and ev.fill is not None
    ]


def last_update(events: list) -> OrderUpdate:
    return [ev for ev in events if isinstance(ev, OrderUpdate)][-1]


def code_of(call: object) -> int | None:
    with pytest.raises(InvalidOrderError) as error:
        call()  # type: ignore[operator]
    return error.value.code


# ---- market and limit ----------------------------------------------------------------------------
def test_market_order_walks_the_book_level_by_level_with_exact_taker_fees() -> None:
    e = booked()
    events = e.submit_order("a", market_order(Side.BUY, "2"), 2_000)
    assert fills(events) == [(D("100.1"), D("1.500"), "TAKER"), (D("100.2"), D("0.500"), "TAKER")]
    trades = [ev.fill for ev in events if isinstance(ev, OrderUpdate) and ev.fill]
    assert all(f.fee == f.price * f.quantity * D("0.0005") for f in trades)
    assert last_update(events).order.status is OrderStatus.FILLED
    position = e.positions("a")[0]
    assert position.quantity == D("2") and position.entry_price == D("100.125")


def test_market_order_beyond_the_book_expires_the_remainder() -> None:
    e = booked()
    events = e.submit_order("a", market_order(Side.BUY, "10"), 2_000)
    final = last_update(events)
    assert final.execution_type is ExecutionType.EXPIRED
    assert final.order.filled_quantity == D("8.5") and final.order.expiry_reason == "MARKET_REMAINDER"


def test_taking_liquidity_leaves_an_impact_until_the_level_updates() -> None:
    e = booked()
    e.submit_order("a", market_order(Side.BUY, "1"), 2_000)
    assert e.book(FUT, "BTCUSDT").best_ask_qty == D("0.500")
    e.apply(depth([], [(100.1, 1.5)], 3_000, 101, 101, 100))
    assert e.book(FUT, "BTCUSDT").best_ask_qty == D("1.500")


def test_resting_limit_fills_only_after_the_queue_ahead_trades() -> None:
    e = booked()
    e.submit_order("a", limit(Side.BUY, "0.5", "99.9"), 2_000)
    slot = e.orders[1].slot
    assert e.state.ahead[slot] == 2000.0  # joined behind the 2.0 already at 99.9
    assert fills(e.apply(trade(99.9, 1.5, Side.SELL, 3_000))) == []
    assert e.state.ahead[slot] == 500.0
    events = e.apply(trade(99.9, 1.0, Side.SELL, 4_000))
    assert fills(events) == [(D("99.9"), D("0.500"), "MAKER")]
    fill = next(ev.fill for ev in events if isinstance(ev, OrderUpdate) and ev.fill)
    assert fill.fee == D("99.9") * D("0.5") * D("0.0002")


def test_a_trade_through_our_price_fills_us_at_our_price() -> None:
    e = booked()
    e.submit_order("a", limit(Side.BUY, "0.5", "99.9"), 2_000)
    assert fills(e.apply(trade(99.8, 0.2, Side.SELL, 3_000))) == [(D("99.9"), D("0.200"), "MAKER")]


def test_the_book_moving_through_a_resting_order_fills_it_against_the_crossing_size() -> None:
    e = booked()
    e.submit_order("a", limit(Side.BUY, "0.5", "99.9"), 2_000)
    events = e.apply(depth([], [(99.9, 0.3)], 3_000, 101, 101, 100))
    assert fills(events) == [(D("99.9"), D("0.300"), "MAKER")]
    assert e.book(FUT, "BTCUSDT").best_ask_price == D("100.1")  # the crossing size was consumed


def test_a_reduce_only_order_crossed_with_another_in_one_update_never_flips_the_position() -> None:
    # short 0.2; a plain bid of 0.1 and a reduce-only bid of 0.2 rest at 100.0 (its cap: the 0.2 short);
    # one depth update crosses both: the plain bid fills first, so the reduce-only one may only close
    # the remaining 0.1 and then expires (found by test_properties' random flow)
    e = booked()
    e.submit_order("a", market_order(Side.SELL, "0.2"), 2_000)
    e.submit_order("a", limit(Side.BUY, "0.1", "100.0"), 3_000)
    reduce_only = e.submit_order("a", limit(Side.BUY, "0.2", "100.0", reduce_only=True), 4_000)
    order_id = last_update(reduce_only).order.order_id
    events = e.apply(depth([], [(100.0, 0.5)], 5_000, 101, 101, 100))
    assert fills(events) == [(D("100.0"), D("0.100"), "MAKER"), (D("100.0"), D("0.100"), "MAKER")]
    assert e.positions("a", "BTCUSDT")[0].quantity == 0
    final = e.query_order("a", FUT, "BTCUSDT", order_id=order_id)
    assert final.status is OrderStatus.EXPIRED and final.filled_quantity == D("0.1")
    assert final.expiry_reason == "REDUCE_ONLY"


def test_marketable_limit_takes_then_rests_the_rest() -> None:
    e = booked()
    events = e.submit_order("a", limit(Side.BUY, "2", "100.1"), 2_000)
    assert fills(events) == [(D("100.1"), D("1.500"), "TAKER")]
    assert last_update(events).order.status is OrderStatus.PARTIALLY_FILLED
    assert e.open_orders("a", FUT)[0].leaves_quantity == D("0.5")


def test_ioc_expires_what_it_cannot_fill() -> None:
    e = booked()
    events = e.submit_order("a", limit(Side.BUY, "5", "100.2", TimeInForce.IOC), 2_000)
    assert sum(q for _, q, _ in fills(events)) == D("4.5")
    assert last_update(events).order.expiry_reason == "IOC_REMAINDER"


def test_futures_fok_is_rejected_unless_fully_fillable() -> None:
    e = booked()
    assert code_of(lambda: e.submit_order("a", limit(Side.BUY, "5", "100.2", TimeInForce.FOK), 2_000)) == -5021
    events = e.submit_order("a", limit(Side.BUY, "4.5", "100.2", TimeInForce.FOK), 2_000)
    assert last_update(events).order.status is OrderStatus.FILLED


def test_spot_fok_is_all_or_nothing() -> None:
    e = booked()
    events = e.submit_order("a", limit(Side.BUY, "5", "100.20", TimeInForce.FOK, market=SPOT), 2_000)
    assert fills(events) == [] and last_update(events).order.status is OrderStatus.EXPIRED
    events = e.submit_order("a", limit(Side.BUY, "4.5", "100.20", TimeInForce.FOK, market=SPOT), 2_000)
    assert last_update(events).order.status is OrderStatus.FILLED


def test_post_only_that_would_take_is_rejected_with_the_market_s_code() -> None:
    e = booked()
    assert code_of(lambda: e.submit_order("a", limit(Side.BUY, "0.1", "100.1", TimeInForce.GTX), 2_000)) == -5022
    maker = OrderRequest(SPOT, "BTCUSDT", Side.BUY, OrderType.LIMIT_MAKER, quantity=D("0.1"), price=D("100.10"))
    assert code_of(lambda: e.submit_order("a", maker, 2_000)) == -2010
    events = e.submit_order("a", limit(Side.BUY, "0.1", "100.0", TimeInForce.GTX), 2_000)
    assert last_update(events).order.status is OrderStatus.NEW


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (limit(Side.BUY, "0.1", "100.05"), -4014),
        (limit(Side.BUY, "0.0005", "100.0"), -4004),
        (limit(Side.BUY, "0.0015", "100.0"), -4023),
        (limit(Side.BUY, "0.001", "100.0"), -4164),
        (limit(Side.BUY, "0", "100.0"), -4003),
        (OrderRequest(FUT, "BTCUSDT", Side.BUY, OrderType.LIMIT, quantity=D("1"), price=D("100")), -1102),
        (OrderRequest(FUT, "BTCUSDT", Side.BUY, OrderType.MARKET), -1102),
        (OrderRequest(FUT, "ETHUSDT", Side.BUY, OrderType.MARKET, quantity=D("1")), -1121),
        (OrderRequest(FUT, "BTCUSDT", Side.BUY, OrderType.LIMIT_MAKER, quantity=D("1"), price=D("99")), -1116),
        (limit(Side.BUY, "0.000001", "100.00", market=SPOT), -1013),
        (limit(Side.BUY, "0.001", "100.00", market=SPOT), -1013),
        (limit(Side.BUY, "0.1", "100.00", TimeInForce.GTX, market=SPOT), -1115),
        (market_order(Side.BUY, "0.1", market=SPOT, reduce_only=True), -1106),
    ],
)
def test_filters_and_parameters_are_refused_with_the_exchange_codes(request_: OrderRequest, code: int) -> None:
    e = booked()
    assert code_of(lambda: e.submit_order("a", request_, 2_000)) == code
    assert e.open_orders("a") == []


def test_duplicate_open_client_ids_are_refused_per_market() -> None:
    e = booked()
    e.submit_order("a", limit(Side.BUY, "0.1", "99.0", client_order_id=cid("x1")), 2_000)
    assert (
        code_of(lambda: e.submit_order("a", limit(Side.BUY, "0.1", "99.0", client_order_id=cid("x1")), 2_001)) == -4116
    )
    e.submit_order("a", limit(Side.BUY, "0.1", "99.00", market=SPOT, client_order_id=cid("s1")), 2_000)
    spot_again = limit(Side.BUY, "0.1", "99.00", market=SPOT, client_order_id=cid("s1"))
    assert code_of(lambda: e.submit_order("a", spot_again, 2_001)) == -2010
    assert (
        code_of(lambda: e.submit_order("a", limit(Side.BUY, "0.1", "99.0", client_order_id=cid("bad id!")), 2_002))
        == -1100
    )


def test_cancel_query_and_unknown_orders() -> None:
    e = booked()
    e.submit_order("a", limit(Side.BUY, "0.1", "99.0", client_order_id=cid("c1")), 2_000)
    events = e.cancel_order("a", FUT, "BTCUSDT", 3_000, client_order_id="c1")
    assert last_update(events).order.status is OrderStatus.CANCELED
    assert e.query_order("a", FUT, "BTCUSDT", client_order_id="c1").status is OrderStatus.CANCELED
    assert code_of(lambda: e.cancel_order("a", FUT, "BTCUSDT", 4_000, client_order_id="c1")) == -2011
    assert code_of(lambda: e.query_order("a", FUT, "BTCUSDT", order_id=999)) == -2013


def test_modify_keeps_queue_priority_only_for_a_smaller_quantity_at_the_same_price() -> None:
    e = booked()
    e.submit_order("a", limit(Side.BUY, "1", "99.9", client_order_id=cid("m1")), 2_000)
    e.apply(trade(99.9, 1.0, Side.SELL, 2_500))
    order = e.orders[1]
    assert e.state.ahead[order.slot] == 1000.0
    e.modify_order("a", FUT, "BTCUSDT", 3_000, client_order_id="m1", quantity=D("0.5"))
    assert e.state.ahead[order.slot] == 1000.0 and order.leaves == D("0.5")
    events = e.modify_order("a", FUT, "BTCUSDT", 4_000, client_order_id="m1", price=D("99.8"))
    assert last_update(events).execution_type is ExecutionType.AMENDMENT
    assert e.state.ahead[order.slot] == 3000.0  # re-queued behind the 3.0 at 99.8


def test_gtd_orders_expire_at_their_time() -> None:
    e = booked()
    good_till = 2_000 + 700 * 1_000_000_000
    e.submit_order("a", limit(Side.BUY, "0.1", "99.0", TimeInForce.GTD, good_till_ns=good_till), 2_000)
    assert e.next_scheduled_ns() == good_till
    events = e.advance_time(good_till)
    assert last_update(events).order.expiry_reason == "GTD"
    short = limit(Side.BUY, "0.1", "99.0", TimeInForce.GTD, good_till_ns=3_000)
    assert code_of(lambda: e.submit_order("a", short, 2_000)) == -1130

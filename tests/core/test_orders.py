from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.core.enums import LiquiditySide, Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId, IntentId, TradeId, VenueOrderId, client_order_id
from kestrel.core.orders import Fill, InvalidTransition, Order, Position


def make_order(quantity: str = "1.0", order_type: OrderType = OrderType.LIMIT) -> Order:
    return Order(
        client_order_id=client_order_id("i1"),
        intent_id=IntentId("i1"),
        market=Market.FUTURES,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=order_type,
        quantity=Decimal(quantity),
        price=Decimal("100") if order_type.has_price else None,
        time_in_force=TimeInForce.GTC,
        ts_init=1,
    )


def make_fill(order: Order, quantity: str, price: str, trade: int) -> Fill:
    return Fill(
        order.client_order_id, VenueOrderId(7), TradeId(trade), order.market, order.symbol, order.side,
        Decimal(price), Decimal(quantity), Decimal("0.01"), "USDT", LiquiditySide.MAKER, 10 + trade, 11 + trade,
    )  # fmt: skip


def test_life_cycle_with_partial_fills() -> None:
    order = make_order("1.0")
    order.apply_status(OrderStatus.SUBMITTED, 2)
    order.apply_status(OrderStatus.NEW, 3)
    order.apply_fill(make_fill(order, "0.4", "100", 1))
    assert order.status is OrderStatus.PARTIALLY_FILLED
    order.apply_fill(make_fill(order, "0.6", "101", 2))
    assert order.status is OrderStatus.FILLED and order.is_terminal
    assert order.average_price == Decimal("100.6")
    assert order.fees == {"USDT": Decimal("0.02")}
    with pytest.raises(InvalidTransition):
        order.apply_status(OrderStatus.CANCELED, 20)


def test_overfill_is_refused() -> None:
    order = make_order("1.0")
    order.apply_status(OrderStatus.SUBMITTED, 2)
    with pytest.raises(InvalidTransition):
        order.apply_fill(make_fill(order, "1.5", "100", 1))


def test_unknown_outcome_resolves_by_query_result() -> None:
    order = make_order()
    order.apply_status(OrderStatus.SUBMITTED, 2)
    order.apply_status(OrderStatus.UNKNOWN, 3)  # HTTP 5xx: we do not know
    assert not order.is_terminal and not order.is_open
    order.apply_status(OrderStatus.NEW, 4)  # the query found it resting
    assert order.is_open


def test_invalid_orders_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="quantity"):
        make_order("0")
    with pytest.raises(ValueError, match="stop price"):
        Order(
            ClientOrderId("c"),
            IntentId("i"),
            Market.FUTURES,
            "X",
            Side.SELL,
            OrderType.STOP_MARKET,
            Decimal(1),
            0,
        )


def test_position_round_trip_and_reversal() -> None:
    position = Position(Market.FUTURES, "BTCUSDT")
    assert position.apply_fill(Side.BUY, Decimal("100"), Decimal("2"), Decimal("0.1"), 1) == 0
    assert position.apply_fill(Side.BUY, Decimal("110"), Decimal("2"), Decimal("0.1"), 2) == 0
    assert position.average_entry_price == Decimal("105")
    realized = position.apply_fill(Side.SELL, Decimal("120"), Decimal("5"), Decimal("0.1"), 3)
    assert realized == Decimal("60")  # 4 × (120 − 105)
    assert position.quantity == Decimal("-1") and position.average_entry_price == Decimal("120")
    assert position.unrealized_pnl(Decimal("110")) == Decimal("10")
    assert position.fees == Decimal("0.3")


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 50), st.integers(90, 110)), min_size=1, max_size=40))
def test_position_pnl_equals_cash_flow(trades: list[tuple[bool, int, int]]) -> None:
    """Realized + unrealized PnL always equals the cash flow of the fills marked at the last price."""
    position = Position(Market.FUTURES, "X")
    cash = Decimal(0)
    for index, (buy, qty, price) in enumerate(trades):
        side = Side.BUY if buy else Side.SELL
        position.apply_fill(side, Decimal(price), Decimal(qty), Decimal(0), index)
        cash -= side.sign * Decimal(qty) * Decimal(price)
    mark = Decimal(trades[-1][2])
    # exact up to Decimal precision (the average entry price of 1@90 + 2@91 is a repeating decimal)
    assert abs(position.realized_pnl + position.unrealized_pnl(mark) - (cash + position.quantity * mark)) < Decimal(
        "1e-18"
    )

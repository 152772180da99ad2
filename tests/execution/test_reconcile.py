from __future__ import annotations

from decimal import Decimal

import pytest

from kestrel.core.enums import Market, OrderStatus, OrderType, Side
from kestrel.core.identifiers import IntentId, client_order_id
from kestrel.core.orders import Order, Position
from kestrel.execution.reconcile import (
    Fix,
    IntentState,
    OrderReport,
    OrphanPolicy,
    PositionReport,
    check_intent_transition,
    reconcile,
)


def ledger_order(intent: str, status: OrderStatus) -> Order:
    order = Order(client_order_id(intent), IntentId(intent), Market.FUTURES, "BTCUSDT", Side.BUY, OrderType.LIMIT,
                  Decimal("0.01"), 1, price=Decimal(60000))  # fmt: skip
    order.status = status
    return order


def report(cid: str, status: OrderStatus, filled: str = "0") -> OrderReport:
    return OrderReport(Market.FUTURES, "BTCUSDT", cid, 7, Side.BUY, status, Decimal("0.01"), Decimal(filled),
                       Decimal(60000), 5)  # fmt: skip


def test_clean_when_both_agree() -> None:
    order = ledger_order("a", OrderStatus.NEW)
    position = Position(Market.FUTURES, "BTCUSDT", Decimal("0.02"), Decimal(60000))
    result = reconcile([order], [position], [], [report(order.client_order_id, OrderStatus.NEW)],
                       [PositionReport(Market.FUTURES, "BTCUSDT", Decimal("0.02"), Decimal(60000))],
                       OrphanPolicy.RECLAIM_IF_SAFE, 10)  # fmt: skip
    assert result.clean


def test_every_kind_of_divergence() -> None:
    unknown = ledger_order("u", OrderStatus.UNKNOWN)  # 5xx: did it reach the exchange?
    submitted = ledger_order("s", OrderStatus.SUBMITTED)  # crashed before the ack
    exchange_answers = [report(unknown.client_order_id, OrderStatus.FILLED, "0.01")]
    foreign = report("web_manual_order", OrderStatus.NEW)
    ours_lost = report(client_order_id("lost-intent"), OrderStatus.NEW)
    result = reconcile(
        [unknown, submitted], [Position(Market.FUTURES, "ETHUSDT", Decimal(1), Decimal(3000))], exchange_answers,
        [foreign, ours_lost],
        [PositionReport(Market.FUTURES, "ETHUSDT", Decimal("0.5"), Decimal(3000)),
         PositionReport(Market.FUTURES, "SOLUSDT", Decimal(-3), Decimal(150))],
        OrphanPolicy.RECLAIM_IF_SAFE, 10,
    )  # fmt: skip
    fixes = {(c.fix, c.subject) for c in result.corrections}
    assert fixes == {
        (Fix.UPDATE_ORDER, unknown.client_order_id),
        (Fix.ORDER_MISSING, submitted.client_order_id),
        (Fix.CANCEL_ORDER, "web_manual_order"),
        (Fix.ADOPT_ORDER, ours_lost.client_order_id),
        (Fix.SET_POSITION, "ETHUSDT"),
        (Fix.ADOPT_POSITION, "SOLUSDT"),
    }
    assert not result.clean


def test_conservative_policy_and_unsafe_size_close() -> None:
    orphan = [PositionReport(Market.FUTURES, "SOLUSDT", Decimal(-3), Decimal(150))]
    ours = report(client_order_id("x"), OrderStatus.NEW)
    conservative = reconcile([], [], [], [ours], orphan, OrphanPolicy.CONSERVATIVE, 1)
    assert [c.fix for c in conservative.corrections] == [Fix.CANCEL_ORDER, Fix.CLOSE_POSITION]
    too_big = reconcile([], [], [], [], orphan, OrphanPolicy.RECLAIM_IF_SAFE, 1, Decimal(100))
    assert [c.fix for c in too_big.corrections] == [Fix.CLOSE_POSITION]
    assert "too large" in too_big.corrections[0].detail


def test_intent_state_machine() -> None:
    check_intent_transition(IntentState.PENDING_ENTRY, IntentState.ACTIVE)
    check_intent_transition(IntentState.ACTIVE, IntentState.PENDING_CLOSING)
    check_intent_transition(IntentState.PENDING_CLOSING, IntentState.CLOSED)
    check_intent_transition(IntentState.PENDING_ENTRY, IntentState.CLOSED)
    with pytest.raises(ValueError, match="CLOSED -> ACTIVE"):
        check_intent_transition(IntentState.CLOSED, IntentState.ACTIVE)
    with pytest.raises(ValueError, match="PENDING_ENTRY -> PENDING_CLOSING"):
        check_intent_transition(IntentState.PENDING_ENTRY, IntentState.PENDING_CLOSING)

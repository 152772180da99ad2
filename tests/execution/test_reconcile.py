from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.core.enums import LiquiditySide, Market, OrderStatus, OrderType, Side
from kestrel.core.identifiers import ClientOrderId, IntentId, StrategyId, TradeId, VenueOrderId, client_order_id
from kestrel.core.orders import Fill, Intent, Order, Position
from kestrel.execution.reconcile import (
    Fix,
    IntentState,
    OrderReport,
    OrphanPolicy,
    PositionReport,
    check_intent_transition,
    reconcile,
    reconcile_positions,
)
from kestrel.execution.reconcile_apply import Outcome, advance_intents, apply_corrections
from kestrel.storage.ledger import Ledger


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


def test_in_flight_orders_are_not_orphans() -> None:
    ours = report(client_order_id("racing"), OrderStatus.NEW)  # acknowledged, the ledger not yet told
    result = reconcile([], [], [], [ours], [], OrphanPolicy.CONSERVATIVE, 1, in_flight=[ours.client_order_id])
    assert result.clean


class TradeList:
    """The exchange side of applying corrections: a trade list per order and the commands sent."""

    def __init__(self, fills: dict[str, list[Fill]]) -> None:
        self.fills = fills
        self.cancels: list[str] = []
        self.closes: list[tuple[str, Decimal]] = []

    async def order_fills(self, market: Market, symbol: str, venue_order_id: int, client_order_id: str) -> list[Fill]:
        return [f for f in self.fills.get(client_order_id, []) if f.venue_order_id == venue_order_id]

    def cancel_order(self, market: Market, symbol: str, client_order_id: str) -> None:
        self.cancels.append(client_order_id)

    def close_position(self, market: Market, symbol: str, quantity: Decimal) -> None:
        self.closes.append((symbol, quantity))


def fill(cid: str, trade_id: int, quantity: str) -> Fill:
    return Fill(ClientOrderId(cid), VenueOrderId(7), TradeId(trade_id), Market.FUTURES, "BTCUSDT", Side.BUY,
                Decimal(60000), Decimal(quantity), Decimal("0.01"), "USDT", LiquiditySide.TAKER, 4, 4)  # fmt: skip


async def test_applying_corrections_settles_the_ledger_once(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()
    acked = ledger_order("acked", OrderStatus.SUBMITTED)  # the exchange filled it; the node died before the ack
    lost = ledger_order("lost", OrderStatus.SUBMITTED)  # the node died before the request left
    young = ledger_order("young", OrderStatus.SUBMITTED)  # its request could still arrive
    young.ts_last = 95
    for order in (acked, lost, young):
        ledger.record_order(order)
    ledger.save_position(Position(Market.FUTURES, "BTCUSDT", Decimal("0.004"), Decimal(60000)))
    orphan = report(client_order_id("orphan"), OrderStatus.PARTIALLY_FILLED, "0.004")
    exchange = TradeList({
        acked.client_order_id: [fill(acked.client_order_id, 1, "0.006"), fill(acked.client_order_id, 2, "0.004")],
        orphan.client_order_id: [fill(orphan.client_order_id, 3, "0.004")],
    })  # fmt: skip
    exchange_position = [PositionReport(Market.FUTURES, "BTCUSDT", Decimal("0.014"), Decimal(60000))]
    result = reconcile(
        [acked, lost, young], ledger.positions(), [report(acked.client_order_id, OrderStatus.FILLED, "0.01")],
        [orphan], exchange_position, OrphanPolicy.CONSERVATIVE, 100,
    )  # fmt: skip
    for _ in range(2):  # the same report applied twice leaves the ledger as once
        applied = await apply_corrections(result, ledger, exchange, now_ns=100, never_placed_after_ns=50)
        outcomes = {(a.correction.fix, a.correction.subject): a.outcome for a in applied}
        assert outcomes == {
            (Fix.UPDATE_ORDER, acked.client_order_id): Outcome.APPLIED,
            (Fix.ORDER_MISSING, lost.client_order_id): Outcome.APPLIED,  # the second time: already settled
            (Fix.ORDER_MISSING, young.client_order_id): Outcome.DEFERRED,
            (Fix.CANCEL_ORDER, orphan.client_order_id): Outcome.APPLIED,
            (Fix.SET_POSITION, "BTCUSDT"): Outcome.APPLIED,
        }
    stored = {o.client_order_id: o for o in ledger.orders()}
    assert stored[acked.client_order_id].status is OrderStatus.FILLED
    assert stored[acked.client_order_id].filled_quantity == Decimal("0.01")
    assert stored[lost.client_order_id].status is OrderStatus.REJECTED
    assert stored[young.client_order_id].status is OrderStatus.SUBMITTED
    assert stored[orphan.client_order_id].status is OrderStatus.PARTIALLY_FILLED
    assert sorted(int(f.trade_id) for f in ledger.fills()) == [1, 2, 3]  # each fill once
    assert [p.quantity for p in ledger.positions()] == [Decimal("0.014")]
    assert exchange.cancels == [orphan.client_order_id] * 2  # the cancel is re-sent until the exchange confirms
    audited = ledger.audit_events("reconcile.fix")
    assert len(audited) == 10 and {e["detail"]["outcome"] for e in audited} == {"applied", "deferred"}
    ledger.close()


def test_intents_follow_their_orders_and_position(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()
    states = {"entered": "PENDING_ENTRY", "never": "PENDING_ENTRY", "waiting": "PENDING_ENTRY",
              "closed": "PENDING_CLOSING", "close_failed": "PENDING_CLOSING", "done": "CLOSED"}  # fmt: skip
    outcome = {"entered": (OrderStatus.FILLED, "0.01"), "never": (OrderStatus.CANCELED, "0"),
               "waiting": (OrderStatus.NEW, "0"), "closed": (OrderStatus.FILLED, "0.01"),
               "close_failed": (OrderStatus.EXPIRED, "0"), "done": (OrderStatus.FILLED, "0.01")}  # fmt: skip
    for name, state in states.items():
        symbol = "ETHUSDT" if name == "close_failed" else "BTCUSDT"
        ledger.record_intent(Intent(IntentId(name), StrategyId("s"), Market.FUTURES, symbol, Side.BUY,
                                    Decimal("0.01"), 1), state)  # fmt: skip
        order = ledger_order(name, outcome[name][0])
        order.symbol, order.filled_quantity = symbol, Decimal(outcome[name][1])
        ledger.record_order(order)
    ledger.save_position(Position(Market.FUTURES, "BTCUSDT", Decimal(0), Decimal(0)))  # flat
    ledger.save_position(Position(Market.FUTURES, "ETHUSDT", Decimal(1), Decimal(3000)))  # still open
    steps = {intent: (before.value, after.value) for intent, before, after in advance_intents(ledger, 50)}
    assert steps == {
        "entered": ("PENDING_ENTRY", "ACTIVE"),
        "never": ("PENDING_ENTRY", "CLOSED"),
        "closed": ("PENDING_CLOSING", "CLOSED"),
        "close_failed": ("PENDING_CLOSING", "ACTIVE"),
    }
    assert advance_intents(ledger, 60) == [("entered", IntentState.ACTIVE, IntentState.CLOSED)]  # filled, now flat
    assert advance_intents(ledger, 70) == []  # settled: nothing more to do
    assert len(ledger.audit_events("reconcile.intent")) == 5
    ledger.close()


async def test_a_stale_report_never_moves_the_ledger_back(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()
    filled = ledger_order("filled", OrderStatus.FILLED)  # the stream's last word arrived after the snapshot
    filled.filled_quantity = Decimal("0.01")
    wrongly_rejected = ledger_order("rejected", OrderStatus.REJECTED)  # decided never placed, yet it is open
    for order in (filled, wrongly_rejected):
        ledger.record_order(order)
    stale = report(filled.client_order_id, OrderStatus.PARTIALLY_FILLED, "0.004")
    exchange = TradeList({filled.client_order_id: [fill(filled.client_order_id, 1, "0.004")]})
    result = reconcile([], [], [], [stale, report(wrongly_rejected.client_order_id, OrderStatus.NEW)], [],
                       OrphanPolicy.RECLAIM_IF_SAFE, 10)  # fmt: skip
    applied = await apply_corrections(result, ledger, exchange, now_ns=10, never_placed_after_ns=5)
    assert [(a.correction.fix, a.outcome) for a in applied] == [(Fix.ADOPT_ORDER, Outcome.APPLIED)] * 2
    assert "ahead" in applied[0].note, [a.note for a in applied]
    assert applied[1].note == "updated", [a.note for a in applied]
    kept = ledger.get_order(filled.client_order_id)
    assert kept is not None and (kept.status, kept.filled_quantity) == (OrderStatus.FILLED, Decimal("0.01"))
    revived = ledger.get_order(wrongly_rejected.client_order_id)
    assert revived is not None and revived.status is OrderStatus.NEW
    ledger.close()


def test_a_position_our_fills_explain_is_ours_even_when_the_ledger_says_flat() -> None:
    lost_update = [PositionReport(Market.FUTURES, "BTCUSDT", Decimal("0.3"), Decimal(60000))]
    flat = [Position(Market.FUTURES, "BTCUSDT", Decimal(0), Decimal(0))]
    explained = {(Market.FUTURES, "BTCUSDT"): Decimal("0.3")}
    ours = reconcile_positions(flat, lost_update, OrphanPolicy.CONSERVATIVE, None, explained=explained)
    assert [c.fix for c in ours] == [Fix.SET_POSITION] and "own fills" in ours[0].detail
    other = {(Market.FUTURES, "BTCUSDT"): Decimal("0.1")}  # our fills do not add up to it: an orphan
    orphan = reconcile_positions(flat, lost_update, OrphanPolicy.CONSERVATIVE, None, explained=other)
    assert [c.fix for c in orphan] == [Fix.CLOSE_POSITION]

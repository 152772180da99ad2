"""OrderView: reports from the REST answer, the user data stream, queries and trade lists, merged so
each change is shown once and in order, whichever source came first."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from kestrel.binance.order_view import OrderKey, OrderView
from kestrel.core.enums import LiquiditySide, Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId, TradeId, VenueOrderId
from kestrel.core.orders import Fill
from kestrel.core.venue import ExecutionType, OrderRequest, OrderSnapshot, OrderUpdate, VenueEvent

D = Decimal
CID = ClientOrderId("kst-1")
KEY: OrderKey = (Market.FUTURES, "BTCUSDT", CID)


def request(order_type: OrderType = OrderType.LIMIT, quantity: str = "1") -> OrderRequest:
    return OrderRequest(Market.FUTURES, "BTCUSDT", Side.BUY, order_type, D(quantity), D("100"), D("99") if
                        order_type.is_conditional else None, TimeInForce.GTC, CID)  # fmt: skip


def snapshot(
    status: OrderStatus, filled: str = "0", quantity: str = "1", ts: int = 10, **extra: object
) -> OrderSnapshot:
    filled_quantity = D(filled)
    values: dict[str, object] = dict(
        order_id=7, client_order_id=CID, market=Market.FUTURES, symbol="BTCUSDT", side=Side.BUY,
        order_type=OrderType.LIMIT, status=status, quantity=D(quantity), filled_quantity=filled_quantity,
        cumulative_quote=filled_quantity * 100, ts_created=5, ts_updated=ts, price=D("100"),
    )  # fmt: skip
    values.update(extra)
    return OrderSnapshot(**values)  # type: ignore[arg-type]


def fill(trade_id: int, quantity: str = "0.5") -> Fill:
    return Fill(CID, VenueOrderId(7), TradeId(trade_id), Market.FUTURES, "BTCUSDT", Side.BUY, D("100"), D(quantity),
                D("0.01"), "USDT", LiquiditySide.MAKER, 20, 21)  # fmt: skip


def update(order: OrderSnapshot, execution: ExecutionType, trade: Fill | None = None) -> OrderUpdate:
    return OrderUpdate("acc", order, execution, order.ts_updated, order.ts_updated + 1, trade)


class Recorder:
    def __init__(self) -> None:
        self.events: list[VenueEvent] = []
        self.missing: list[OrderKey] = []

    def view(self, order_type: OrderType = OrderType.LIMIT, algo: bool = False) -> OrderView:
        view = OrderView("acc", self.events.append, self.missing.append)
        view.submitted(request(order_type), CID, 1, algo)
        return view

    def shown(self) -> list[tuple[ExecutionType, OrderStatus, Decimal, int | None]]:
        return [
            (e.execution_type, e.order.status, e.order.filled_quantity, e.fill.trade_id if e.fill else None)
            for e in self.events
            if isinstance(e, OrderUpdate)
        ]


NEW, TRADE, CANCELED = ExecutionType.NEW, ExecutionType.TRADE, ExecutionType.CANCELED


def test_rest_ack_then_stream_shows_each_change_once() -> None:
    recorder = Recorder()
    view = recorder.view()
    assert view.snapshot(KEY).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    view.apply(update(snapshot(OrderStatus.NEW), NEW))  # REST answer
    view.apply(update(snapshot(OrderStatus.NEW), NEW))  # the stream's NEW: a duplicate
    view.apply(update(snapshot(OrderStatus.PARTIALLY_FILLED, "0.5", ts=20), TRADE, fill(1)))
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=30), TRADE, fill(2)))
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=30), TRADE))  # a later query: nothing new
    assert recorder.shown() == [
        (NEW, OrderStatus.NEW, D(0), None),
        (TRADE, OrderStatus.PARTIALLY_FILLED, D("0.5"), 1),
        (TRADE, OrderStatus.FILLED, D("1"), 2),
    ]
    assert view.stale_reports == 2 and view.open_orders() == []


def test_stream_first_then_rest_answer_with_the_same_fills() -> None:
    recorder = Recorder()
    view = recorder.view()
    view.apply(update(snapshot(OrderStatus.NEW), NEW))
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=20), TRADE, fill(1, "1")))
    # a FULL answer listing the same trade, then its status
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=20), TRADE, fill(1, "1")))
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=20), TRADE))
    assert recorder.shown() == [(NEW, OrderStatus.NEW, D(0), None), (TRADE, OrderStatus.FILLED, D("1"), 1)]
    assert view.duplicate_fills == 1


def test_rest_fills_first_then_stream_copies() -> None:
    recorder = Recorder()
    view = recorder.view()
    final = snapshot(OrderStatus.FILLED, "1", ts=20)
    view.apply(update(final, TRADE, fill(1)))  # FULL answer: two fills, each with the final state
    view.apply(update(final, TRADE, fill(2)))
    view.apply(update(final, TRADE))
    view.apply(update(snapshot(OrderStatus.NEW), NEW))  # the stream, late
    view.apply(update(snapshot(OrderStatus.PARTIALLY_FILLED, "0.5", ts=20), TRADE, fill(1)))
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=20), TRADE, fill(2)))
    assert recorder.shown() == [
        (NEW, OrderStatus.NEW, D(0), None),
        (TRADE, OrderStatus.PARTIALLY_FILLED, D("0.5"), 1),
        (TRADE, OrderStatus.FILLED, D("1"), 2),
    ]


def test_a_report_ahead_of_its_fills_is_held_until_they_arrive() -> None:
    recorder = Recorder()
    view = recorder.view()
    view.apply(update(snapshot(OrderStatus.NEW), NEW))
    view.apply(update(snapshot(OrderStatus.CANCELED, "0.5", ts=40), CANCELED))  # cancel answer, fill not seen yet
    assert recorder.shown() == [(NEW, OrderStatus.NEW, D(0), None)]
    assert recorder.missing == [KEY] and view.get(KEY).missing_fills  # type: ignore[union-attr]
    view.apply(update(snapshot(OrderStatus.PARTIALLY_FILLED, "0.5", ts=30), TRADE, fill(1)))  # the stream's fill
    view.apply(update(snapshot(OrderStatus.CANCELED, "0.5", ts=40), CANCELED))  # the stream's cancel
    assert recorder.shown()[1:] == [
        (TRADE, OrderStatus.PARTIALLY_FILLED, D("0.5"), 1),
        (CANCELED, OrderStatus.CANCELED, D("0.5"), None),
    ]


def test_fills_from_the_trade_list_then_the_held_report() -> None:
    recorder = Recorder()
    view = recorder.view()
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=40), TRADE))  # a query: filled, no fills seen
    assert recorder.shown() == [(NEW, OrderStatus.NEW, D(0), None)]
    view.apply_fill(KEY, fill(1), 50, D("0.5"))
    view.apply_fill(KEY, fill(2), 50, D("1"))
    view.apply_fill(KEY, fill(2), 50, D("1"))  # listed twice
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=30), TRADE, fill(2)))  # the stream, much later
    assert recorder.shown() == [
        (NEW, OrderStatus.NEW, D(0), None),
        (TRADE, OrderStatus.PARTIALLY_FILLED, D("0.5"), 1),
        (TRADE, OrderStatus.FILLED, D("1"), 2),
    ]
    assert not view.get(KEY).missing_fills  # type: ignore[union-attr]


def test_an_order_found_at_start_up_counts_its_earlier_fills_once() -> None:
    recorder = Recorder()
    view = OrderView("acc", recorder.events.append)
    view.seed(snapshot(OrderStatus.PARTIALLY_FILLED, "0.5"))
    assert recorder.events == [] and view.open_orders()[0].filled_quantity == D("0.5")
    view.apply(update(snapshot(OrderStatus.PARTIALLY_FILLED, "0.5", ts=20), TRADE, fill(1)))  # buffered event
    view.apply_fill(KEY, fill(1), 0, D("0.5"))  # from the trade list
    view.apply(update(snapshot(OrderStatus.FILLED, "1", ts=30), TRADE, fill(2)))
    assert recorder.shown() == [(TRADE, OrderStatus.FILLED, D("1"), 2)]


def test_rejection_once_and_a_foreign_order_is_adopted() -> None:
    recorder = Recorder()
    view = recorder.view()
    view.reject(KEY, -2019, "Margin is insufficient.", 3, 4)
    view.reject(KEY, -2019, "again", 3, 4)
    view.apply(update(snapshot(OrderStatus.NEW), NEW))  # cannot resurrect a rejected order
    events = [e for e in recorder.events if isinstance(e, OrderUpdate)]
    assert len(events) == 1 and events[0].code == -2019 and events[0].order.status is OrderStatus.REJECTED
    other = replace(snapshot(OrderStatus.NEW), client_order_id=ClientOrderId("web-1"))
    view.apply(update(other, NEW))
    assert view.snapshot((Market.FUTURES, "BTCUSDT", "web-1")).status is OrderStatus.NEW  # type: ignore[union-attr]
    view.refuse((Market.FUTURES, "BTCUSDT", "nope"), -2011, "Unknown order sent.", 5, 6)
    refused = recorder.events[-1]
    assert isinstance(refused, OrderUpdate) and refused.order.status is OrderStatus.UNKNOWN and refused.code == -2011


def test_a_conditional_order_is_triggered_before_its_first_fill() -> None:
    recorder = Recorder()
    view = recorder.view(OrderType.STOP_MARKET)
    stop = snapshot(OrderStatus.NEW, order_type=OrderType.STOP_MARKET, price=None, stop_price=D("99"))
    view.apply(update(stop, NEW))
    view.apply(update(replace(stop, status=OrderStatus.FILLED, filled_quantity=D("1"), ts_updated=30), TRADE,
                      fill(1, "1")))  # fmt: skip
    assert [e[0] for e in recorder.shown()] == [NEW, ExecutionType.TRIGGERED, TRADE]
    assert recorder.events[-1].order.triggered  # type: ignore[union-attr]


def test_algo_order_refused_after_acceptance_expires_and_amendments_show_once() -> None:
    recorder = Recorder()
    view = recorder.view(OrderType.STOP_MARKET, algo=True)
    stop = snapshot(OrderStatus.NEW, order_type=OrderType.STOP_MARKET, price=None, stop_price=D("99"), order_id=55)
    view.apply(update(stop, NEW), algo=True)
    view.apply(update(replace(stop, triggered=True), ExecutionType.TRIGGERED), algo=True)
    view.apply(update(replace(stop, status=OrderStatus.REJECTED, triggered=True), ExecutionType.REJECTED), algo=True)
    assert [(e[0], e[1]) for e in recorder.shown()] == [
        (NEW, OrderStatus.NEW),
        (ExecutionType.TRIGGERED, OrderStatus.NEW),
        (ExecutionType.EXPIRED, OrderStatus.EXPIRED),
    ]
    recorder = Recorder()
    view = recorder.view()
    view.apply(update(snapshot(OrderStatus.NEW), NEW))
    moved = snapshot(OrderStatus.NEW, price=D("101"), ts=20)
    view.apply(update(moved, ExecutionType.AMENDMENT))  # the modify answer
    view.apply(update(moved, ExecutionType.AMENDMENT))  # the stream's copy
    assert [e[0] for e in recorder.shown()] == [NEW, ExecutionType.AMENDMENT]
    assert view.snapshot(KEY).price == D("101")  # type: ignore[union-attr]


def test_finished_orders_are_forgotten_beyond_the_bound() -> None:
    view = OrderView("acc", lambda event: None)
    for n in range(5):
        finished = replace(snapshot(OrderStatus.CANCELED), client_order_id=ClientOrderId(f"done-{n}"), order_id=n + 1)
        view.seed(finished)
    view.seed(replace(snapshot(OrderStatus.NEW), client_order_id=ClientOrderId("open"), order_id=9))
    assert view.forget_terminal(keep=2) == 3
    assert sorted(k[2] for k in view.orders) == ["done-3", "done-4", "open"]

"""The per-event API (the simulator's path) and the batch loop (backtests) give identical fills."""

from __future__ import annotations

from pathlib import Path

from kestrel.backtest.data import load_instruments, read_recording
from kestrel.core.enums import Market, OrderType, Side, TimeInForce
from kestrel.core.events import MarketEvent
from kestrel.core.venue import OrderRequest, OrderUpdate
from kestrel.matching import kernel as k
from kestrel.matching.engine import MatchingEngine
from kestrel.matching.rows import TableBuilder
from tests.matching.helpers import D


def orders_for(events: list[MarketEvent]) -> list[tuple[int, OrderRequest]]:
    """A few resting and aggressive orders spread over the recording."""
    start, end = events[0].ts_event, events[-1].ts_event
    plan = []
    for n in range(1, 12):
        ts = start + (end - start) * n // 12
        side = Side.BUY if n % 2 else Side.SELL
        plan.append(
            (
                ts,
                OrderRequest(
                    Market.FUTURES,
                    "BTCUSDT",
                    side,
                    OrderType.MARKET if n % 5 == 0 else OrderType.LIMIT,
                    quantity=D("0.05"),
                    price=None if n % 5 == 0 else D("0"),
                    time_in_force=None if n % 5 == 0 else TimeInForce.GTC,
                ),
            )
        )
    return plan


def priced(engine: MatchingEngine, request: OrderRequest) -> OrderRequest:
    if request.order_type is not OrderType.LIMIT:
        return request
    book = engine.book(Market.FUTURES, "BTCUSDT")
    price = book.best_bid_price if request.side is Side.BUY else book.best_ask_price
    assert price is not None
    return OrderRequest(
        request.market,
        request.symbol,
        request.side,
        request.order_type,
        quantity=request.quantity,
        price=price,
        time_in_force=request.time_in_force,
    )


def fill_list(events: list) -> list[tuple[int, str, str, str]]:
    return [
        (ev.ts_event, str(ev.fill.price), str(ev.fill.quantity), ev.fill.liquidity.value)
        for ev in events
        if isinstance(ev, OrderUpdate) and ev.fill
    ]


def test_batch_and_per_event_paths_fill_identically(shared_data: Path) -> None:
    events = read_recording(shared_data / "hftbacktest/usdm/btcusdt_20240718.gz")[:6000]
    instruments = load_instruments(
        Market.FUTURES, ["BTCUSDT"], shared_data / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json"
    )
    plan = orders_for(events)

    per_event = MatchingEngine(instruments)
    per_event.open_account("a", futures_balances={"USDT": D(100_000)})
    got_per_event: list = []
    pending = list(plan)
    for event in events:
        while pending and pending[0][0] < event.ts_event:
            ts, request = pending.pop(0)
            got_per_event += per_event.submit_order("a", priced(per_event, request), ts)
        got_per_event += per_event.apply(event)

    batch = MatchingEngine(instruments)
    batch.open_account("a", futures_balances={"USDT": D(100_000)})
    builder = TableBuilder(instruments, require_snapshot=False)
    builder.add_all(events)
    batch.load(builder.build())
    got_batch: list = []
    for ts, request in plan:
        while batch.run_until(ts - 1) != k.STATUS_STOP:
            got_batch += batch.drain()
        got_batch += batch.submit_order("a", priced(batch, request), ts)
    while batch.run_until(1 << 62) != k.STATUS_END:
        got_batch += batch.drain()

    assert fill_list(got_batch) == fill_list(got_per_event)
    assert len(fill_list(got_batch)) >= 5

"""The batched kernel run gives exactly the fills of the unbatched reference (the L2 benchmark's setup).

The benchmark (benchmarks/l2_market_maker.py) runs the market maker with the queue and latency models on
the shared USD-M BTCUSDT recording with the kernel batched over every row until something is due. The
reference run stops the kernel at every distinct row time, so each row is followed by the driver's full
round (engine schedule, command arrivals, deliveries, timers). Both must give the same fill list, and
that list must be the one the engine gave before the speed work (the pinned hash, measured on the code
of commit f3c29d0): a faster path may not change a single fill. Likewise a callback strategy (on_book /
on_trade) sees the same events at the same clock through the driver's tight callback loop as when each
event is delivered on its own.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest

from kestrel.backtest.data import load_instruments, read_recording
from kestrel.backtest.driver import Backtest, BacktestResult, BacktestSetup
from kestrel.core.clock import TimeEvent
from kestrel.core.enums import Market, OrderType, Side, TimeInForce
from kestrel.core.events import AggregateTrade, Trade
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.instrument import Instrument
from kestrel.core.venue import BookView, OrderRequest
from kestrel.matching.engine import EngineSettings
from kestrel.matching.latency import ConstantLatency, OrderLatency
from kestrel.matching.rows import EventTable, TableBuilder
from kestrel.strategy.base import Strategy
from kestrel.strategy.examples.market_maker import TopOfBookMaker

RECORDING = "hftbacktest/usdm/btcusdt_20240808.gz"
EXCHANGE_INFO = "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json"
# fills_hash() of the benchmark's run before the batching / fast-path work (363 fills)
PINNED_HASH = "a33d4a9c997858aadd5c12e2de0c350d2bf20f188fa05a58064135b4f9116e70"
PINNED_FILLS = 363
L2Data = tuple[list[Instrument], EventTable]


@pytest.fixture(scope="module")
def l2_table(shared_data: Path) -> L2Data:
    instruments = load_instruments(Market.FUTURES, ["BTCUSDT"], shared_data / EXCHANGE_INFO)
    builder = TableBuilder(instruments)
    builder.add_all(read_recording(shared_data / RECORDING))
    return instruments, builder.build(ConstantLatency(5_000_000))


def run_market_maker(l2_table: L2Data, batch: bool) -> BacktestResult:
    return market_maker_backtest(l2_table, batch).run()


def market_maker_backtest(l2_table: L2Data, batch: bool) -> Backtest:
    instruments, table = l2_table
    strategy = TopOfBookMaker({"interval_ms": 100, "quantity": Decimal("0.002"), "max_position": Decimal("0.01")})
    setup = BacktestSetup(
        instruments,
        table,
        strategy,
        EngineSettings(queue_model="power", queue_power=2.0),
        OrderLatency(ConstantLatency(10_000_000), ConstantLatency(10_000_000)),
        futures_balances={"USDT": Decimal(10_000)},
        equity_interval_ns=60_000_000_000,
        batch=batch,
    )
    return Backtest(setup)


def test_batched_run_gives_the_pinned_fills_of_the_engine(l2_table: L2Data) -> None:
    backtest = market_maker_backtest(l2_table, batch=True)
    result = backtest.run()
    assert len(result.fills) == PINNED_FILLS
    assert result.fills_hash() == PINNED_HASH
    assert result.commands > 1000 and result.callbacks > 1000
    # the result's order list reuses each finished order's last report: it must be the order as it is
    # (then the orders refused on arrival, which the engine never held)
    engine_orders = [order.snapshot() for order in backtest.engine.orders.values()]
    assert result.orders[: len(engine_orders)] == engine_orders
    assert result.orders[len(engine_orders) :] == backtest.refused
    assert sum(1 for order in result.orders if order.status.is_terminal) > 500


@pytest.mark.slow
def test_batched_and_row_by_row_runs_give_identical_fills(l2_table: L2Data) -> None:
    batched = run_market_maker(l2_table, batch=True)
    reference = run_market_maker(l2_table, batch=False)
    assert len(reference.fills) == len(batched.fills) > 100
    assert reference.fills_hash() == batched.fills_hash()
    assert reference.commands == batched.commands
    assert [o.status for o in reference.orders] == [o.status for o in batched.orders]
    assert reference.final_balances == batched.final_balances


class BookAndTradeWatcher(Strategy):
    """A callback strategy: digests every event it sees (clock, best prices, trade) and every 400th book
    update joins the best bid with a post-only order, cancelling the previous one (commands re-plan the
    driver's loop in the middle of a callback run)."""

    name = "book_and_trade_watcher"

    def __init__(self) -> None:
        super().__init__()
        self.digest = hashlib.sha256()
        self.books = 0
        self.trades = 0
        self.working: ClientOrderId | None = None

    def on_book(self, book: BookView) -> None:
        self.books += 1
        self.digest.update(f"b{self.clock.timestamp_ns()}:{book.best_bid_tick}:{book.best_ask_tick}\n".encode())
        if self.books % 400 or book.best_bid_price is None:
            return
        if self.working is not None:
            self.cancel_order(Market.FUTURES, "BTCUSDT", self.working)
        request = OrderRequest(
            Market.FUTURES,
            "BTCUSDT",
            Side.BUY if self.books % 800 else Side.SELL,
            OrderType.LIMIT,
            quantity=Decimal("0.002"),
            price=book.best_bid_price if self.books % 800 else book.best_ask_price,
            time_in_force=TimeInForce.GTX,
        )
        self.working = self.submit_order(request)

    def on_trade(self, trade: Trade | AggregateTrade) -> None:
        self.trades += 1
        self.digest.update(f"t{self.clock.timestamp_ns()}:{trade.price}:{trade.quantity}\n".encode())


def run_watcher(l2_table: L2Data, batch: bool) -> tuple[BookAndTradeWatcher, BacktestResult]:
    instruments, table = l2_table
    strategy = BookAndTradeWatcher()
    setup = BacktestSetup(
        instruments,
        table,
        strategy,
        EngineSettings(queue_model="power", queue_power=2.0),
        OrderLatency(ConstantLatency(10_000_000), ConstantLatency(10_000_000)),
        futures_balances={"USDT": Decimal(10_000)},
        batch=batch,
    )
    return strategy, Backtest(setup).run()


@pytest.mark.slow
def test_callbacks_of_the_batched_loop_equal_one_by_one_delivery(l2_table: L2Data) -> None:
    batched_strategy, batched = run_watcher(l2_table, batch=True)
    reference_strategy, reference = run_watcher(l2_table, batch=False)
    assert batched_strategy.books > 1000 and batched_strategy.trades > 1000
    assert (batched_strategy.books, batched_strategy.trades) == (reference_strategy.books, reference_strategy.trades)
    assert batched_strategy.digest.hexdigest() == reference_strategy.digest.hexdigest()
    assert batched.commands == reference.commands > 10
    assert len(batched.fills) > 0
    assert batched.fills_hash() == reference.fills_hash()
    assert batched.callbacks == reference.callbacks


class TakerEveryFiveSeconds(Strategy):
    """Market orders only: every fill happens when an order arrives, none because of market data."""

    name = "taker"
    defaults: ClassVar[dict[str, object]] = {}

    def __init__(self) -> None:
        super().__init__({})
        self.side = Side.BUY

    def on_start(self) -> None:
        self.set_timer("take", 5_000_000_000)

    def on_timer(self, event: TimeEvent) -> None:
        self.submit_order(
            OrderRequest(Market.FUTURES, "BTCUSDT", self.side, OrderType.MARKET, quantity=Decimal("0.002"))
        )
        self.side = Side.SELL if self.side is Side.BUY else Side.BUY


def test_fills_made_on_an_orders_arrival_are_in_the_result(l2_table: L2Data) -> None:
    instruments, table = l2_table
    setup = BacktestSetup(
        instruments, table, TakerEveryFiveSeconds(), EngineSettings(),
        OrderLatency(ConstantLatency(10_000_000), ConstantLatency(10_000_000)),
        futures_balances={"USDT": Decimal(10_000)},
    )  # fmt: skip
    result = Backtest(setup).run()
    filled = [order for order in result.orders if order.filled_quantity > 0]
    assert len(filled) > 10
    assert len(result.fills) >= len(filled)  # every taker fill is in the result (they were missing)
    assert sum(f.quantity for f in result.fills) == sum(o.filled_quantity for o in result.orders)
    assert {f.client_order_id for f in result.fills} == {o.client_order_id for o in filled}

"""The batched kernel run gives exactly the fills of the unbatched reference (the L2 benchmark's setup).

The benchmark (benchmarks/l2_market_maker.py) runs the market maker with the queue and latency models on
the shared USD-M BTCUSDT recording with the kernel batched over every row until something is due. The
reference run stops the kernel at every distinct row time, so each row is followed by the driver's full
round (engine schedule, command arrivals, deliveries, timers). Both must give the same fill list, and
that list must be the one the engine gave before the speed work (the pinned hash, measured on the code
of commit f3c29d0): a faster path may not change a single fill.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.backtest.data import load_instruments, read_recording
from kestrel.backtest.driver import Backtest, BacktestResult, BacktestSetup
from kestrel.core.enums import Market
from kestrel.core.instrument import Instrument
from kestrel.matching.engine import EngineSettings
from kestrel.matching.latency import ConstantLatency, OrderLatency
from kestrel.matching.rows import EventTable, TableBuilder
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
    assert result.orders == [order.snapshot() for order in backtest.engine.orders.values()]
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

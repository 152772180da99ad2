"""L2 throughput: our engine + the market-maker example vs hftbacktest, same data, same machine, same run.

Both run a top-of-book market maker on one shared USD-M BTCUSDT recording: every 100 ms, post-only quotes
of 0.002 BTC at the best bid / ask, shifted by one tick per 0.002 held, max position 0.01; constant
10 ms entry and response latency; the power-2 probabilistic queue model; partial fills; maker 0.02 % /
taker 0.05 %. Data conversion is not timed (each engine's loader runs first); each side runs once to
compile and is then timed `--repeat` times (best taken). events/s = rows processed per second of the
backtest loop (depth levels + trades); the ratio compares wall time on the same file. `kernel_share` is
the part of one extra, untimed run spent in the compiled kernel (the rest is Python per wake-up and order).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

RECORDING = "hftbacktest/usdm/btcusdt_20240808.gz"


def ours(shared: Path, repeat: int) -> dict[str, float | int]:
    from kestrel.backtest.data import load_instruments, read_recording
    from kestrel.backtest.driver import Backtest, BacktestSetup
    from kestrel.core.enums import Market
    from kestrel.matching.engine import EngineSettings
    from kestrel.matching.latency import ConstantLatency, OrderLatency
    from kestrel.matching.rows import TableBuilder
    from kestrel.strategy.examples.market_maker import TopOfBookMaker

    instruments = load_instruments(
        Market.FUTURES, ["BTCUSDT"], shared / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json"
    )
    builder = TableBuilder(instruments)
    builder.add_all(read_recording(shared / RECORDING))
    table = builder.build(ConstantLatency(5_000_000))
    latency = OrderLatency(ConstantLatency(10_000_000), ConstantLatency(10_000_000))
    settings = EngineSettings(queue_model="power", queue_power=2.0)

    def setup() -> BacktestSetup:
        strategy = TopOfBookMaker({"interval_ms": 100, "quantity": Decimal("0.002"), "max_position": Decimal("0.01")})
        return BacktestSetup(
            instruments,
            table,
            strategy,
            settings,
            latency,
            futures_balances={"USDT": Decimal(10_000)},
            equity_interval_ns=60_000_000_000,
        )

    def once() -> tuple[float, int, str]:
        started = time.perf_counter()
        result = Backtest(setup()).run()
        return time.perf_counter() - started, len(result.fills), result.fills_hash()

    def kernel_share() -> float:
        """Share of one (untimed) run spent inside the compiled kernel; the rest is Python: the strategy,
        order entry, fills and their reports, deliveries, the driver's loop."""
        backtest = Backtest(setup())
        compiled = backtest.engine.run_kernel
        spent = 0.0

        def timed(*arguments: object) -> int:
            nonlocal spent
            started = time.perf_counter()
            status = compiled(*arguments)
            spent += time.perf_counter() - started
            return status

        backtest.engine.run_kernel = timed
        started = time.perf_counter()
        backtest.run()
        return spent / (time.perf_counter() - started)

    once()
    runs = [once() for _ in range(repeat)]
    best = min(r[0] for r in runs)
    assert len({r[2] for r in runs}) == 1, "runs differ"
    return {
        "rows": len(table),
        "seconds": best,
        "events_per_second": len(table) / best,
        "fills": runs[0][1],
        "kernel_share": round(kernel_share(), 3),
    }


def hftbacktest_run(shared: Path, repeat: int) -> dict[str, float | int | str]:
    from hftbacktest import GTX, LIMIT, BacktestAsset, ROIVectorMarketDepthBacktest
    from hftbacktest.data.utils import binancefutures
    from numba import njit

    with tempfile.TemporaryDirectory() as folder:
        converted = Path(folder) / "data.npz"
        data = binancefutures.convert(
            str(shared / RECORDING), output_filename=str(converted), combined_stream=True, buffer_size=2_000_000
        )
        rows = len(data)

        @njit
        def market_maker(hbt):  # type: ignore[no-untyped-def]
            tick = hbt.depth(0).tick_size
            fills = 0
            while hbt.elapse(100_000_000) == 0:
                hbt.clear_inactive_orders(0)
                depth = hbt.depth(0)
                position = hbt.position(0)
                bid, ask = depth.best_bid_tick, depth.best_ask_tick
                if bid <= 0 or ask <= 0 or ask <= bid:
                    continue
                skew = round(position / 0.002)
                bid_tick = bid - skew if skew > 0 else bid
                ask_tick = ask - skew if skew < 0 else ask
                has_bid = False
                has_ask = False
                values = hbt.orders(0).values()
                while values.has_next():
                    order = values.get()
                    if order.cancellable:
                        if order.side == 1:
                            if order.price_tick == bid_tick and position + 0.002 <= 0.01 + 1e-9:
                                has_bid = True
                            else:
                                hbt.cancel(0, order.order_id, False)
                        elif order.price_tick == ask_tick and position - 0.002 >= -0.01 - 1e-9:
                            has_ask = True
                        else:
                            hbt.cancel(0, order.order_id, False)
                if not has_bid and position + 0.002 <= 0.01 + 1e-9:
                    hbt.submit_buy_order(0, fills * 2 + 1, bid_tick * tick, 0.002, GTX, LIMIT, False)
                    fills += 1
                if not has_ask and position - 0.002 >= -0.01 - 1e-9:
                    hbt.submit_sell_order(0, fills * 2 + 2, ask_tick * tick, 0.002, GTX, LIMIT, False)
                    fills += 1
            return fills

        def once() -> float:
            asset = (
                BacktestAsset()
                .data([str(converted)])
                .linear_asset(1.0)
                .constant_order_latency(10_000_000, 10_000_000)
                .power_prob_queue_model(2.0)
                .partial_fill_exchange()
                .trading_value_fee_model(0.0002, 0.0005)
                .tick_size(0.1)
                .lot_size(0.001)
                .roi_lb(40_000.0)
                .roi_ub(80_000.0)
            )
            backtest = ROIVectorMarketDepthBacktest([asset])
            started = time.perf_counter()
            market_maker(backtest)
            elapsed = time.perf_counter() - started
            backtest.close()
            return elapsed

        once()
        best = min(once() for _ in range(repeat))
    import hftbacktest

    return {"rows": rows, "seconds": best, "events_per_second": rows / best, "version": hftbacktest.__version__}


def main() -> None:
    from kestrel.config.paths import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("../shared/data/binance is needed")
    gc.collect()
    mine = ours(shared, args.repeat)
    peer = hftbacktest_run(shared, args.repeat)
    lines = sum(1 for _ in __import__("gzip").open(shared / RECORDING, "rb"))
    print(
        json.dumps(
            {
                "load_average_1m": __import__("os").getloadavg()[0],
                "benchmark": "l2_market_maker",
                "data": RECORDING,
                "messages": lines,
                "kestrel": mine,
                "hftbacktest": peer,
                "ratio_wall_time": peer["seconds"] / mine["seconds"],  # > 1: we are faster on the same file
                "ratio_events_per_second": mine["events_per_second"] / peer["events_per_second"],
                "machine": {
                    "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count(),
                    "numpy": np.__version__,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

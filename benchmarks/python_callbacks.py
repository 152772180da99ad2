"""Python-callback strategy path: events/s delivered to a strategy written as a plain Python class.

The strategy overrides `on_book` (called once per depth message, with the book view) and `on_trade`
(once per trade) and does a little work in each (reads the best bid / ask, keeps counters), like a
signal-computing strategy before it decides. Events = callbacks delivered; the run also reports the
table rows (depth levels + trades) processed per second. Data: the shared USD-M BTCUSDT and ETHUSDT
recordings of 2024-08-08 (two symbols, merged by time). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal

from kestrel.core.events import AggregateTrade, Trade
from kestrel.core.venue import BookView
from kestrel.strategy.base import Strategy

FILES = ("hftbacktest/usdm/btcusdt_20240808.gz", "hftbacktest/usdm/ethusdt_20240808.gz")


class Watcher(Strategy):
    name = "watcher"

    def __init__(self) -> None:
        super().__init__()
        self.books = 0
        self.trades = 0
        self.spread_ticks = 0
        self.volume = 0.0

    def on_book(self, book: BookView) -> None:
        self.books += 1
        self.spread_ticks += book.best_ask_tick - book.best_bid_tick

    def on_trade(self, trade: Trade | AggregateTrade) -> None:
        self.trades += 1
        self.volume += trade.quantity


def main() -> None:
    from kestrel.backtest.data import frames_to_events, load_instruments, read_recording
    from kestrel.backtest.driver import Backtest, BacktestSetup
    from kestrel.config.paths import shared_data_dir
    from kestrel.core.enums import Market
    from kestrel.matching.latency import ConstantLatency
    from kestrel.matching.rows import TableBuilder
    from kestrel.replay.raw import merge_by_local_time, read_raw

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("../shared/data/binance is needed")
    instruments = load_instruments(
        Market.FUTURES, ["BTCUSDT", "ETHUSDT"], shared / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json"
    )
    builder = TableBuilder(instruments)
    builder.add_all(frames_to_events(merge_by_local_time([read_raw(shared / name) for name in FILES])))
    table = builder.build(ConstantLatency(5_000_000))
    del read_recording

    def once() -> tuple[float, int, int]:
        strategy = Watcher()
        setup = BacktestSetup(
            instruments, table, strategy, futures_balances={"USDT": Decimal(1000)}, equity_interval_ns=60_000_000_000
        )
        started = time.perf_counter()
        Backtest(setup).run()
        return time.perf_counter() - started, strategy.books + strategy.trades, strategy.books

    once()
    runs = [once() for _ in range(args.repeat)]
    best = min(r[0] for r in runs)
    events = runs[0][1]
    print(
        json.dumps(
            {
                "load_average_1m": __import__("os").getloadavg()[0],
                "benchmark": "python_callbacks",
                "data": list(FILES),
                "callbacks": events,
                "book_callbacks": runs[0][2],
                "rows": len(table),
                "seconds": best,
                "events_per_second": events / best,
                "rows_per_second": len(table) / best,
                "target_events_per_second": 500_000,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

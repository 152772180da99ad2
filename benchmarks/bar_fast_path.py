"""Bar fast path: bars/s of an SMA-crossover backtest on 1,000,000 one-minute bars, beside vectorbt.

The bars are the shared real DOGEUSDT USD-M 1m candles (48,105 bars) repeated end to end to reach
1,000,000, every other copy played backwards (open and close swapped) so the price path joins up and
stays in its real range. Both sides
compute SMA(10) / SMA(30) on the closes, go long 1000 units on a cross up (fast strictly below, then
strictly above) and flat on a cross down, fill at the next bar's open and pay a 0.05 % fee. vectorbt
computes its averages with `vbt.MA.run`, the crosses with numpy (its own `ma_crossed_above` counts ties
and takes tens of seconds here with pandas 3), and simulates with `Portfolio.from_signals` on signals
shifted one bar with price = open. Each side runs once to compile, then is timed `--repeat` times (best
taken), signals included. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from decimal import Decimal

import numpy as np

FAST, SLOW = 10, 30
BARS = 1_000_000


def candles_million():  # type: ignore[no-untyped-def]
    from kestrel.backtest.data import Candles, read_candles
    from kestrel.config.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("../shared/data/binance is needed")
    base = read_candles(shared / "freqtrade_userdata_roshan7869/futures/DOGE_USDT_USDT-1m-futures.feather")
    copies = BARS // len(base) + 1
    forward = {name: getattr(base, name) for name in ("open", "high", "low", "close", "volume")}
    backward = {name: values[::-1] for name, values in forward.items()}
    backward["open"], backward["close"] = forward["close"][::-1], forward["open"][::-1]
    stacked = {
        name: np.concatenate([(forward if copy % 2 == 0 else backward)[name] for copy in range(copies)])[:BARS]
        for name in forward
    }
    times = base.open_time_ns[0] + np.arange(BARS, dtype=np.int64) * 60_000_000_000
    return Candles(
        times, stacked["open"], stacked["high"], stacked["low"], stacked["close"], stacked["volume"], 60_000_000_000
    )


def ours(candles, repeat: int) -> dict[str, float | int]:  # type: ignore[no-untyped-def]
    from kestrel.backtest.data import load_instruments
    from kestrel.backtest.fastpath import FuturesRules, sma_cross_fast
    from kestrel.config.paths import shared_data_dir
    from kestrel.core.enums import Market
    from kestrel.matching.engine import EngineSettings

    shared = shared_data_dir()
    assert shared is not None
    instrument = load_instruments(
        Market.FUTURES, ["DOGEUSDT"], shared / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json"
    )[0]
    rules = FuturesRules.of(instrument, EngineSettings(), 20, Decimal(1_000_000))

    def once() -> tuple[float, int]:
        started = time.perf_counter()
        result = sma_cross_fast(candles, FAST, SLOW, Decimal(1000), rules, long_only=True)
        return time.perf_counter() - started, result.fill_count

    once()
    runs = [once() for _ in range(repeat)]
    best = min(r[0] for r in runs)
    return {"seconds": best, "bars_per_second": BARS / best, "fills": runs[0][1]}


def vectorbt_run(candles, repeat: int) -> dict[str, float | int | str]:  # type: ignore[no-untyped-def]
    import pandas as pd
    import vectorbt as vbt

    index = pd.to_datetime(candles.open_time_ns)  # tz-naive: vectorbt then skips a slow object conversion
    close = pd.Series(candles.close, index=index)
    open_ = pd.Series(candles.open, index=index)

    def once() -> tuple[float, int]:
        started = time.perf_counter()
        fast = vbt.MA.run(close, FAST).ma.to_numpy()
        slow = vbt.MA.run(close, SLOW).ma.to_numpy()
        above, below = fast > slow, fast < slow
        up = np.zeros(len(fast), dtype=bool)
        down = np.zeros(len(fast), dtype=bool)
        up[2:] = below[:-2] & above[1:-1]  # crossed at bar i-1, filled at bar i's open
        down[2:] = above[:-2] & below[1:-1]
        portfolio = vbt.Portfolio.from_signals(
            close,
            pd.Series(up, index=index),
            pd.Series(down, index=index),
            price=open_,
            size=1000,
            fees=0.0005,
            init_cash=1_000_000,
            freq="1min",
        )
        elapsed = time.perf_counter() - started
        return elapsed, int(portfolio.trades.count())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        once()
        runs = [once() for _ in range(repeat)]
    best = min(r[0] for r in runs)
    return {"seconds": best, "bars_per_second": BARS / best, "trades": runs[0][1], "version": vbt.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    candles = candles_million()
    mine = ours(candles, args.repeat)
    peer = vectorbt_run(candles, args.repeat)
    print(
        json.dumps(
            {
                "load_average_1m": __import__("os").getloadavg()[0],
                "benchmark": "bar_fast_path",
                "bars": BARS,
                "strategy": f"SMA({FAST})/SMA({SLOW}) cross, long only, next-open fills, 0.05 % fee",
                "kestrel": mine,
                "vectorbt": peer,
                "ratio": mine["bars_per_second"] / peer["bars_per_second"],  # >= 1: we are at least as fast
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

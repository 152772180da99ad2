"""Lockstep cost: the example market maker as a backtest and as a lockstep paper run (node ↔ simulator
over loopback sockets, kestrel.sim.lockstep) on one slice of the shared USD-M recording.

Prints one JSON object: wall seconds of each run, lockstep steps and steps per second, frames, orders
and fills, and whether `kestrel compare` found the two runs identical.

    ./dev run python benchmarks/lockstep.py [--seconds 20] [--recording hftbacktest/usdm/btcusdt_20240808.gz]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from kestrel.backtest.compare import compare_runs
from kestrel.backtest.driver import run_backtest
from kestrel.backtest.lockstep import lockstep_plan
from kestrel.backtest.runs import write_run
from kestrel.backtest.setup import BacktestRequest, prepare
from kestrel.config.loading import load_config
from kestrel.config.models import KestrelConfig
from kestrel.config.paths import shared_data_dir
from kestrel.core.enums import Market
from kestrel.core.logs import configure_logging
from kestrel.node import TradingNode, VenueKind
from kestrel.node.pacing import LockstepClock, LockstepPacer
from kestrel.replay.raw import read_raw
from kestrel.sim import MarketSimulator, SimulatorOptions
from kestrel.sim.lockstep import CONTROL_PATH
from kestrel.sim.trading.options import SimAccount, TradingOptions
from kestrel.strategy.loading import load_strategy

KEY, SECRET, ACCOUNT = "BenchLockstepKey0123", "BenchLockstepSecret0123456789", "bench"
PARAMS = {"symbol": "BTCUSDT", "interval_ms": "100"}


def config(directory: Path, venue: dict[str, Any] | None = None) -> KestrelConfig:
    values: dict[str, Any] = {
        "environment": "dev",
        "matching": {"feed_latency": {"model": "constant", "constant_ms": 5.0}},
        "risk": {"min_trade_interval_s": 0.0, "max_trades_per_24h": 100_000, "max_consecutive_losses": 1000},
        "storage": {"ledger_url": f"sqlite:///{directory / 'ledger.sqlite'}", "data_dir": str(directory)},
        "data": {"ingest": {"markets": ["futures"], "symbols": ["BTCUSDT"], "streams": ["depth@100ms"]}},
    }
    if venue is not None:
        values["venue"] = venue
    return load_config(None, overrides=values, env_file=None)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recording", default="hftbacktest/usdm/btcusdt_20240808.gz")
    parser.add_argument("--seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    configure_logging("WARNING")  # logs on stderr: stdout carries the one JSON object
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("the shared data folder (../shared/data/binance) was not found")
    path = shared / arguments.recording
    first_ns = next(iter(read_raw(path))).ts_local_ns
    end_ns = first_ns + int(arguments.seconds * 1e9)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)

        def request(directory: Path) -> BacktestRequest:
            return BacktestRequest("market_maker", [path], config(directory), ["BTCUSDT"], PARAMS, end_ns=end_ns)

        started = time.perf_counter()
        prepared = prepare(request(root))
        result = run_backtest(prepared.setup)
        backtest_dir = root / "backtest"
        write_run(backtest_dir, result, prepared.params, prepared.data_files)
        backtest_s = time.perf_counter() - started

        started = time.perf_counter()
        plan = lockstep_plan(request(root), ACCOUNT)
        options = SimulatorOptions(
            source="replay", replay_files=[path], markets=(Market.FUTURES,), data_dir=shared,
            trading=TradingOptions(accounts=[SimAccount(name=ACCOUNT, api_key=KEY, api_secret=SECRET)]),
        )  # fmt: skip
        async with MarketSimulator(options, lockstep=plan) as sim:
            venue = {
                "spot": {"rest_url": sim.rest_url, "ws_url": sim.ws_url},
                "futures": {"rest_url": sim.rest_url, "ws_url": sim.futures_ws_url},
                "api_key": KEY, "api_secret": SECRET,
            }  # fmt: skip
            clock = LockstepClock(plan.start_ns)
            pacer = LockstepPacer(sim.rest_url.replace("http://", "ws://") + CONTROL_PATH, clock)
            node = TradingNode(
                config(root / "paper", venue), load_strategy("market_maker", PARAMS), mode="paper",
                venue_kind=VenueKind.BINANCE, clock=clock, pacer=pacer,
            )  # fmt: skip
            run_started = time.perf_counter()
            await node.run()
            stepping_s = time.perf_counter() - run_started
            stats = sim.stats()["lockstep"]
        paper_s = time.perf_counter() - started
        assert node.run_dir is not None
        differences, counts = compare_runs(backtest_dir, node.run_dir)
    print(
        json.dumps(
            {
                "recording": arguments.recording,
                "seconds_of_data": arguments.seconds,
                "backtest_wall_s": round(backtest_s, 3),
                "paper_wall_s": round(paper_s, 3),
                "paper_node_run_s": round(stepping_s, 3),
                "steps": stats["steps"],
                "steps_per_s": round(stats["steps"] / stepping_s, 1),
                "market_frames": stats["market_frames"],
                "table_frames": len(plan.frames),
                "orders": counts["orders"],
                "fills": counts["fills"],
                "identical": not differences,
                "pacer_error": pacer.error,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())

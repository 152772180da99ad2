"""`kestrel demo`: the whole system on its embedded defaults, against the local Binance simulator.

1. The local simulator starts on free loopback ports, replaying the shared real USD-M recordings
   (BTCUSDT and ETHUSDT, 2024-08-08, with their depth snapshots) at `speed`× — or, without the shared
   data, a seeded synthetic market.
2. The trading node starts in paper mode with the embedded configuration pointed at the simulator:
   the market-data feed discovers the symbols, syncs the order books over the real protocol, and the
   example top-of-book market maker quotes BTCUSDT through the ledger and risk guard; fills come from
   the one matching engine (the same code as backtests).
3. A live status line shows orders, fills, positions, equity, risk and data quality; after
   `duration_s` everything stops cleanly and the summary (orders, fills, PnL, rejections, gaps) prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from kestrel.config.loading import load_config
from kestrel.config.paths import shared_data_dir
from kestrel.core.enums import Market
from kestrel.core.logs import configure_logging
from kestrel.node import NodeSummary, TradingNode, VenueKind
from kestrel.strategy.examples.market_maker import TopOfBookMaker

RECORDINGS = ("hftbacktest/usdm/btcusdt_20240808.gz", "hftbacktest/usdm/ethusdt_20240808.gz")


def _simulator_options(speed: float) -> Any:
    from kestrel.sim import SimulatorOptions

    shared = shared_data_dir()
    files = [shared / name for name in RECORDINGS] if shared is not None else []
    if files and all(f.exists() for f in files):
        return SimulatorOptions(
            markets=(Market.FUTURES,), symbols=["BTCUSDT", "ETHUSDT"], source="replay", replay_files=files,
            speed=speed, replay_start="first_subscription", data_dir=shared,
        ), "the shared real USD-M recordings (BTCUSDT, ETHUSDT, 2024-08-08)"  # fmt: skip
    return SimulatorOptions(markets=(Market.FUTURES,), symbols=["BTCUSDT", "ETHUSDT"], seed=42), "a synthetic market"


async def _run(duration_s: float, speed: float, workdir: Path, quiet: bool) -> NodeSummary:
    from kestrel.sim import MarketSimulator

    options, source = _simulator_options(speed)
    async with MarketSimulator(options) as sim:
        config = load_config(
            None,
            overrides={
                "environment": "dev",
                "venue": {
                    "spot": {"rest_url": sim.rest_url, "ws_url": sim.ws_url},
                    "futures": {"rest_url": sim.rest_url, "ws_url": sim.futures_ws_url},
                },
                "data": {"ingest": {"markets": ["futures"], "symbols": ["BTCUSDT", "ETHUSDT"],
                                    "streams": ["depth@100ms", "aggTrade", "markPrice"]}},
                "storage": {"data_dir": str(workdir), "ledger_url": f"sqlite:///{workdir / 'ledger.sqlite'}"},
                "logging": {"level": "WARNING"},
            },
            env_file=None,
        )  # fmt: skip
        strategy = TopOfBookMaker({"symbol": "BTCUSDT", "quantity": "0.002", "max_position": "0.006"})
        say = _status_printer(quiet)
        if not quiet:
            print(f"Kestrel demo: simulator at {sim.rest_url} replaying {source}", flush=True)
            print(f"paper-trading the top-of-book market maker on BTCUSDT for {duration_s:g} s "
                  f"(ledger {workdir / 'ledger.sqlite'})", flush=True)  # fmt: skip
        node = TradingNode(config, strategy, mode="paper", venue_kind=VenueKind.SIMULATED, status=say)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, node.request_stop)
        summary = await node.run(duration_s if duration_s > 0 else None)
        if not quiet and sys.stderr.isatty():
            print(file=sys.stderr)
        return summary


def _status_printer(quiet: bool) -> Any:
    if quiet:
        return None
    interactive = sys.stderr.isatty()

    def say(line: str) -> None:
        if interactive:
            print("\r" + line[:160].ljust(160), end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return say


def run_demo(
    duration_s: float = 30.0, speed: float = 4.0, workdir: Path | None = None, quiet: bool = False
) -> NodeSummary:
    """Run the demo; returns the node's summary (tests read it)."""
    configure_logging("WARNING", "console")
    directory = workdir or Path(tempfile.mkdtemp(prefix="kestrel-demo-"))
    summary = asyncio.run(_run(duration_s, speed, directory, quiet))
    if not quiet:
        print("Summary:")
        for line in summary.lines():
            print(f"  {line}")
    return summary

"""`kestrel sim ...`: the local Binance simulator.

`kestrel sim serve` prints ONE JSON line on stdout when it listens (its REST and WS URLs; logs go to
stderr), runs until SIGINT/SIGTERM or `--duration`, then writes `--stats-json` (what it sent and what
it injected, per symbol and in total).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kestrel.core.errors import ConfigurationError

app = typer.Typer(help="The local Binance-protocol simulator.", no_args_is_help=True)

# CLI flag → FaultPlan field (the flags override the YAML file)
FAULT_FLAGS = {
    "drop_rate": "drop_rate",
    "gap_rate": "gap_rate",
    "duplicate_rate": "duplicate_rate",
    "reorder_rate": "reorder_rate",
    "delay_ms": "delay_ms",
    "disconnect_every": "disconnect_every_s",
    "stall_every": "stall_every_s",
    "stall_duration": "stall_duration_s",
    "rest_error_rate": "rest_5xx_rate",
    "rest_429_rate": "rest_429_rate",
    "rest_418_rate": "rest_418_rate",
    "clock_skew_ms": "clock_skew_ms",
    "stale_snapshot_rate": "stale_snapshot_rate",
    "malformed_rate": "malformed_rate",
    "unknown_event_rate": "unknown_event_rate",
}

Rate = Annotated[float | None, typer.Option(min=0.0, max=1.0, show_default=False)]


def parse_symbols(text: str) -> int | list[str]:
    """`300` → a count; `BTCUSDT,ETHUSDT` → names."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    names = [name.strip().upper() for name in text.split(",") if name.strip()]
    if not names or not all(name.isalnum() for name in names):
        raise ConfigurationError(f"--symbols: expected a count or SYM,SYM,... (got {text!r})")
    return names


def parse_markets(text: str) -> tuple[Any, ...]:
    from kestrel.core.enums import Market

    markets = []
    for name in (part.strip().lower() for part in text.split(",")):
        if name not in ("spot", "futures"):
            raise ConfigurationError(f"--markets: unknown market {name!r} (use spot, futures)")
        markets.append(Market(name))
    if not markets:
        raise ConfigurationError("--markets: no market given")
    return tuple(dict.fromkeys(markets))


def build_options(values: dict[str, Any], faults_file: Path | None, fault_flags: dict[str, Any]) -> Any:
    """SimulatorOptions from CLI values; every problem is a ConfigurationError (one line, exit 2)."""
    from pydantic import ValidationError

    from kestrel.sim import SimulatorOptions, load_fault_plan
    from kestrel.sim.faults import fault_plan_from_mapping

    overrides = {FAULT_FLAGS[name]: value for name, value in fault_flags.items() if value is not None}
    plan = load_fault_plan(faults_file, overrides) if faults_file else fault_plan_from_mapping(overrides, "fault flags")
    try:
        return SimulatorOptions(**values, faults=plan)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(f"{where}: {first['msg']}") from None


@app.command("serve")
def serve(
    symbols: Annotated[str, typer.Option(help="A count (real symbols first) or SYM,SYM,...")] = "20",
    markets: Annotated[str, typer.Option(help="spot, futures or both")] = "futures,spot",
    source: Annotated[str, typer.Option(help="synthetic, or replay of --replay files")] = "synthetic",
    replay: Annotated[
        list[Path] | None, typer.Option("--replay", help="A raw recording to replay (repeat for several)")
    ] = None,
    replay_start: Annotated[
        str, typer.Option(help="Replay: first_subscription (default), all_depth_subscribed or immediately")
    ] = "first_subscription",
    replay_full_depth: Annotated[
        bool, typer.Option(help="Replay: snapshots hold every level of the replayed book, whatever the limit")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market and of the faults")] = 42,
    speed: Annotated[float, typer.Option(min=0.0, help="Timeline speed (1 = real time; replay: 0 = max)")] = 1.0,
    rate_scale: Annotated[float, typer.Option(min=0.0, help="Multiply every synthetic rate")] = 1.0,
    time_scale: Annotated[float, typer.Option(min=0.0, help="Multiply protocol durations (24 h cut, pings)")] = 1.0,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65533, help="REST port; WS +1, USD-M WS +2; 0 = free")] = 0,
    duration: Annotated[float, typer.Option(min=0.0, help="Stop after this many seconds (0 = run until signal)")] = 0.0,
    stats_json: Annotated[Path | None, typer.Option("--stats-json", help="Write stats here on exit")] = None,
    faults: Annotated[Path | None, typer.Option("--faults", help="YAML file of fault settings")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Shared Binance data folder")] = None,
    log_level: Annotated[str, typer.Option(help="Log level (logs go to stderr)")] = "WARNING",
    drop_rate: Rate = None,
    gap_rate: Rate = None,
    duplicate_rate: Rate = None,
    reorder_rate: Rate = None,
    delay_ms: Annotated[float | None, typer.Option(min=0.0, show_default=False)] = None,
    disconnect_every: Annotated[float | None, typer.Option(min=0.0, show_default=False, help="Seconds")] = None,
    stall_every: Annotated[float | None, typer.Option(min=0.0, show_default=False, help="Seconds")] = None,
    stall_duration: Annotated[float | None, typer.Option(min=0.0, show_default=False, help="Seconds")] = None,
    rest_error_rate: Rate = None,
    rest_429_rate: Rate = None,
    rest_418_rate: Rate = None,
    clock_skew_ms: Annotated[int | None, typer.Option(show_default=False)] = None,
    stale_snapshot_rate: Rate = None,
    malformed_rate: Rate = None,
    unknown_event_rate: Rate = None,
    account: Annotated[list[str] | None, typer.Option(help="Trading account KEY:SECRET or NAME=KEY:SECRET")] = None,
    balance: Annotated[list[str] | None, typer.Option(help="Starting balance [spot:|futures:]ASSET=AMOUNT")] = None,
    accounts_file: Annotated[Path | None, typer.Option(help="YAML list of trading accounts")] = None,
    trading: Annotated[bool, typer.Option(help="Serve the trading API (signed REST, user streams)")] = True,
    spot_listen_key: Annotated[bool, typer.Option(help="Serve the retired spot listenKey endpoints")] = True,
) -> None:
    """Serve the market-data half of the Binance protocol on loopback."""
    if source not in ("synthetic", "replay"):
        raise ConfigurationError(f"--source: unknown source {source!r} (use synthetic or replay)")
    if replay and source != "replay":
        source = "replay"  # --replay FILE implies the replay source
    if source == "replay" and not replay:
        raise ConfigurationError("--source replay needs at least one --replay FILE")
    for path in replay or []:
        if not path.is_file():
            raise ConfigurationError(f"--replay: {path}: no such file")
    if replay_start not in ("first_subscription", "all_depth_subscribed", "immediately"):
        raise ConfigurationError(f"--replay-start: unknown value {replay_start!r}")
    if stats_json is not None and not stats_json.parent.exists():
        raise ConfigurationError(f"--stats-json: {stats_json.parent}: no such directory")
    if data_dir is not None and not data_dir.is_dir():
        raise ConfigurationError(f"--data-dir: {data_dir}: no such directory")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigurationError(f"--log-level: unknown level {log_level!r}")
    if rate_scale <= 0 or time_scale <= 0:
        raise ConfigurationError("--rate-scale and --time-scale must be positive")
    from kestrel.sim.options import RateModel

    values: dict[str, Any] = {
        "symbols": parse_symbols(symbols),
        "markets": parse_markets(markets),
        "source": source,
        "replay_files": list(replay or []),
        "replay_start": replay_start,
        "replay_full_depth_snapshots": replay_full_depth,
        "seed": seed,
        "speed": speed,
        "rates": RateModel(scale=rate_scale),
        "time_scale": time_scale,
        "host": host,
        "port": port,
        "data_dir": data_dir,
    }
    flags = {
        "drop_rate": drop_rate,
        "gap_rate": gap_rate,
        "duplicate_rate": duplicate_rate,
        "reorder_rate": reorder_rate,
        "delay_ms": delay_ms,
        "disconnect_every": disconnect_every,
        "stall_every": stall_every,
        "stall_duration": stall_duration,
        "rest_error_rate": rest_error_rate,
        "rest_429_rate": rest_429_rate,
        "rest_418_rate": rest_418_rate,
        "clock_skew_ms": clock_skew_ms,
        "stale_snapshot_rate": stale_snapshot_rate,
        "malformed_rate": malformed_rate,
        "unknown_event_rate": unknown_event_rate,
    }
    from kestrel.sim.trading.options import trading_options_from_cli

    trading_options = trading_options_from_cli(account or [], balance or [], accounts_file, spot_listen_key)
    values["trading"] = trading_options.model_copy(update={"enabled": trading})
    options = build_options(values, faults, flags)
    from kestrel.core.logs import configure_logging

    configure_logging(log_level.upper(), "console", stream=sys.stderr)
    _run(options, duration, stats_json)


def _run(options: Any, duration_s: float, stats_json: Path | None) -> None:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a base dependency where the platform has it
        runner = asyncio.run
    runner(_serve(options, duration_s, stats_json))


async def _serve(options: Any, duration_s: float, stats_json: Path | None) -> None:
    from kestrel.sim import MarketSimulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    simulator = MarketSimulator(options)
    await simulator.start()
    try:
        line = {
            "event": "sim_started",
            **simulator.urls(),
            "source": options.source,
            "seed": options.seed,
            "symbols": {market.value: len(simulator.symbols(market)) for market in options.markets},
        }
        if simulator.trading is not None:  # for local use only: these keys open nothing but this simulator
            line["accounts"] = simulator.trading.credentials_list()
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        if duration_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=duration_s)
        else:
            await stop.wait()
    finally:
        await simulator.stop()
        if stats_json is not None:
            stats_json.write_text(json.dumps(simulator.stats(), indent=2) + "\n", encoding="utf-8")

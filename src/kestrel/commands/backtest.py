"""`kestrel backtest`: run a strategy on recorded data and write data/runs/{run_id}/."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market


def _parse_time(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)", param_hint=option
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        params[key.strip()] = value.strip()
    return params


def backtest_command(
    strategy: Annotated[str, typer.Option("--strategy", help="Example name (sma_cross, market_maker) or module:Class")],
    data: Annotated[list[Path], typer.Option("--data", help="Recording, feather file or folder; repeat for several")],
    symbols: Annotated[
        list[str], typer.Option("--symbols", help="Symbols to trade (repeat or comma-separate); default all")
    ] = [],  # noqa: B006
    start: Annotated[str | None, typer.Option("--from", help="Start (UTC), e.g. 2024-01-01")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End (UTC, exclusive)")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="Seed of every random model (default: config seed)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Runs folder (default: backtest.runs_dir)")] = None,
    param: Annotated[list[str], typer.Option("--param", help="Strategy parameter key=value; repeat")] = [],  # noqa: B006
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML configuration (default: embedded)")] = None,
    futures_exchange_info: Annotated[
        Path | None, typer.Option("--futures-exchange-info", help="USD-M exchangeInfo JSON")
    ] = None,
    spot_exchange_info: Annotated[
        Path | None, typer.Option("--spot-exchange-info", help="Spot exchangeInfo JSON")
    ] = None,
) -> None:
    """Backtest a strategy on recorded L2 data or klines; writes params, SHAs, fills, orders, equity,
    metrics.json and report.html to OUT/{run_id}/."""
    from kestrel.backtest.driver import run_backtest
    from kestrel.backtest.runs import write_run
    from kestrel.backtest.setup import BacktestRequest, prepare
    from kestrel.config.loading import embedded_defaults, load_config

    started = LiveClock().timestamp_ns()  # only for the run id: the run itself never reads the wall clock
    start_ns, end_ns = _parse_time(start, "--from"), _parse_time(end, "--to")
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise typer.BadParameter("must be after --from", param_hint="--to")
    config = load_config(config_file) if config_file is not None else embedded_defaults()
    exchange_info = {m: p for m, p in ((Market.FUTURES, futures_exchange_info), (Market.SPOT, spot_exchange_info)) if p}
    wanted = [s.strip().upper() for item in symbols for s in item.split(",") if s.strip()]
    request = BacktestRequest(
        strategy, data, config, wanted, _parse_params(param), start_ns, end_ns, seed, exchange_info
    )
    prepared = prepare(request)
    result = run_backtest(prepared.setup)
    identity = json.dumps({k: v for k, v in prepared.params.items() if k != "config"}, sort_keys=True, default=str)
    digest = hashlib.sha256((identity + result.fills_hash()).encode()).hexdigest()[:8]
    stamp = datetime.fromtimestamp(started / 1e9, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = (out or config.backtest.runs_dir) / f"{stamp}-{prepared.setup.strategy.name}-{digest}"
    metrics = write_run(run_dir, result, prepared.params, prepared.data_files)
    typer.echo(f"run {run_dir}")
    for key in (
        "pnl_net",
        "fees",
        "funding",
        "sharpe",
        "max_drawdown_pct",
        "trade_count",
        "fill_count",
        "rows_per_second",
    ):
        value = metrics[key]
        typer.echo(f"  {key:18} {value:,.6g}" if isinstance(value, int | float) else f"  {key:18} {value}")
    typer.echo(f"  fills sha256       {result.fills_hash()}")

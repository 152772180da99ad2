"""`kestrel run`: trade a strategy in paper or live mode with the configured venue and market data."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from kestrel.commands.backtest import _parse_params
from kestrel.config.loading import load_config, secret_values
from kestrel.core.errors import ConfigurationError
from kestrel.core.logs import configure_logging, register_secrets
from kestrel.node import NodeSummary, TradingNode, VenueKind
from kestrel.strategy.loading import load_strategy

LIVE_CONFIRMATION = "--i-understand-this-trades-real-money"


def run_command(
    config_file: Annotated[Path, typer.Option("--config", help="YAML configuration file")],
    mode: Annotated[str, typer.Option("--mode", help="paper or live")] = "paper",
    strategy: Annotated[
        str, typer.Option("--strategy", help="Example name (sma_cross, market_maker) or module:Class")
    ] = "market_maker",
    param: Annotated[list[str], typer.Option("--param", help="Strategy parameter key=value; repeat")] = [],  # noqa: B006
    venue: Annotated[str, typer.Option("--venue", help="simulated (paper only) or binance")] = "simulated",
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.0, help="Seconds to trade, then stop cleanly")
    ] = None,
    confirm_live: Annotated[bool, typer.Option(LIVE_CONFIRMATION, help="Required with --mode live")] = False,
) -> None:
    """Run the trading node. Live mode refuses to start without keys and explicit confirmation."""
    if mode not in ("paper", "live"):
        raise typer.BadParameter(f"{mode!r}: use paper or live", param_hint="--mode")
    try:
        venue_kind = VenueKind(venue)
    except ValueError:
        raise typer.BadParameter(f"{venue!r}: use simulated or binance", param_hint="--venue") from None
    config = load_config(config_file)
    if mode == "live":
        if not confirm_live:
            raise ConfigurationError(f"live trading needs the explicit flag {LIVE_CONFIRMATION}")
        if config.venue.api_key is None or config.venue.api_secret is None:
            raise ConfigurationError("live trading needs venue.api_key and venue.api_secret (environment or .env)")
        if venue_kind is not VenueKind.BINANCE:
            raise ConfigurationError("live trading needs --venue binance")
    register_secrets(secret_values(config))
    configure_logging(config.logging.level, config.logging.format, file=config.logging.file)
    node = TradingNode(
        config, load_strategy(strategy, _parse_params(param)), mode=mode, venue_kind=venue_kind,  # type: ignore[arg-type]
        status=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    summary = asyncio.run(_run(node, duration))
    for line in summary.lines():
        typer.echo(line)


async def _run(node: TradingNode, duration: float | None) -> NodeSummary:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.request_stop)
    return await node.run(duration)

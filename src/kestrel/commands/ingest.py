"""`kestrel ingest`: capture the market from the venue the configuration names (R-MD-*).

The simulator in dev (`kestrel sim serve`, URLs in config/dev.yaml), Binance in prod.yaml: the same
code, only the URLs differ. A live one-line status goes to stderr every second; `--stats-json` writes
the counters at the end (format in `kestrel.marketdata.feed_stats`).
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

from kestrel.core.enums import Market

_STATUS_INTERVAL_S = 1.0


def _split(value: str | None, option: str) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise typer.BadParameter("must not be empty", param_hint=option)
    return items


def _overrides(symbols: str, markets: str | None, streams: str | None) -> dict[str, Any]:
    ingest: dict[str, Any] = {}
    if symbols.strip().lower() != "all":
        ingest["symbols"] = [s.upper() for s in _split(symbols, "--symbols") or []]
    market_list = _split(markets, "--markets")
    if market_list is not None:
        known = {m.value for m in Market}
        for market in market_list:
            if market not in known:
                raise typer.BadParameter(f"unknown market {market!r} (spot, futures)", param_hint="--markets")
        ingest["markets"] = market_list
    stream_list = _split(streams, "--streams")
    if stream_list is not None:
        ingest["streams"] = stream_list
    return {"data": {"ingest": ingest}} if ingest else {}


def ingest(
    symbols: Annotated[str, typer.Option("--symbols", help="'all' or SYM,SYM,... (USDT symbols)")] = "all",
    markets: Annotated[str | None, typer.Option("--markets", help="spot,futures (default: the config's)")] = None,
    streams: Annotated[
        str | None, typer.Option("--streams", help="e.g. bookTicker,aggTrade,depth@100ms (default: the config's)")
    ] = None,
    record: Annotated[Path | None, typer.Option("--record", help="Record every event to this directory")] = None,
    duration: Annotated[float | None, typer.Option("--duration", min=0.1, help="Stop after S seconds")] = None,
    stats_json: Annotated[Path | None, typer.Option("--stats-json", help="Write the counters here at the end")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration (default: embedded dev)")] = None,
    status: Annotated[bool, typer.Option("--status/--no-status", help="Live one-line status on stderr")] = True,
) -> None:
    """Stream the whole market (or some symbols), keep books in sync, audit quality, record."""
    from kestrel.config.loading import load_config, secret_values
    from kestrel.core.logs import configure_logging, register_secrets

    overrides = _overrides(symbols, markets, streams)
    if config is None:
        settings = load_config(None, overrides={"environment": "dev", **overrides}, env_file=None)
    else:
        settings = load_config(config, overrides=overrides)
    register_secrets(secret_values(settings))
    configure_logging(settings.logging.level, settings.logging.format, file=settings.logging.file)
    if stats_json is not None and not stats_json.parent.exists():
        raise typer.BadParameter(f"{stats_json.parent}: no such directory", param_hint="--stats-json")
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # R-MD-10: uvloop where available

        runner = uvloop.run
    stats = runner(_run(settings, record, duration, status))
    if stats_json is not None:
        stats_json.write_text(json.dumps(stats, indent=2, default=str) + "\n", encoding="utf-8")


async def _run(settings: Any, record: Path | None, duration: float | None, status: bool) -> dict[str, Any]:
    from kestrel.core.bus import MessageBus
    from kestrel.core.clock import LiveClock
    from kestrel.marketdata.feed import MarketDataFeed
    from kestrel.storage.recorder import ParquetRecorder
    from kestrel.storage.redis_cache import RedisPublisher

    clock = LiveClock()
    storage = settings.storage
    recorder = None
    if record is not None:
        recorder = ParquetRecorder(
            record,
            clock,
            compression=storage.parquet_compression,
            compression_level=storage.parquet_compression_level,
            flush_interval_ms=storage.recorder_flush_ms,
            checkpoint_interval_ms=settings.data.ingest.micro_batch_ms,
            fsync=storage.recorder_fsync,
        )
        report = recorder.start()
        if not report.clean:
            print(f"kestrel: recorder: {report.summary()}", file=sys.stderr)
    redis = None
    if storage.redis_url is not None:
        redis = RedisPublisher(
            storage.redis_url.get_secret_value(),
            ttl_s=storage.hot_cache_ttl_s,
            stream_maxlen=storage.redis_stream_maxlen,
            flush_interval_ms=settings.data.ingest.micro_batch_ms,
        )
        await redis.start()
    feed = MarketDataFeed(settings, clock, bus=MessageBus(), recorder=recorder, redis=redis, manage_gc=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await feed.start()
        await _wait(feed, stop, duration, status)
    finally:
        await feed.stop()
        if status:
            print("", file=sys.stderr)
        if redis is not None:
            await redis.close()
        if recorder is not None:
            recorder.close()
    return feed.stats()


async def _wait(feed: Any, stop: asyncio.Event, duration: float | None, status: bool) -> None:
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    tty = sys.stderr.isatty()
    last_messages, last_time = feed.messages, loop.time()
    while not stop.is_set():
        timeout = _STATUS_INTERVAL_S if deadline is None else min(_STATUS_INTERVAL_S, deadline - loop.time())
        if timeout <= 0:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)
        if status:
            now, messages = loop.time(), feed.messages
            rate = (messages - last_messages) / max(now - last_time, 1e-9)
            last_messages, last_time = messages, now
            line = feed.status_line(rate)
            print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

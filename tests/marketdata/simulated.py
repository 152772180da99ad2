"""Helpers for tests against the local Binance simulator (`kestrel.sim`): start one, point a feed at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kestrel.config.loading import load_config
from kestrel.config.models import KestrelConfig
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from kestrel.marketdata.feed import MarketDataFeed


@asynccontextmanager
async def simulator(shared_data: Path, **values: Any) -> AsyncIterator[Any]:
    """A `MarketSimulator` on free loopback ports (options as `SimulatorOptions` keywords)."""
    from kestrel.sim import MarketSimulator, SimulatorOptions

    values.setdefault("data_dir", shared_data)
    values.setdefault("seed", 7)
    async with MarketSimulator(SimulatorOptions(**values)) as sim:
        yield sim


def venue_overrides(sim: Any) -> dict[str, Any]:
    return {
        "spot": {"rest_url": sim.rest_url, "ws_url": sim.ws_url},
        "futures": {"rest_url": sim.rest_url, "ws_url": sim.futures_ws_url},
    }


def feed_config(sim: Any, storage: dict[str, Any] | None = None, **ingest: Any) -> KestrelConfig:
    ingest.setdefault("markets", [Market.FUTURES.value])
    overrides: dict[str, Any] = {"environment": "dev", "venue": venue_overrides(sim), "data": {"ingest": ingest}}
    if storage:
        overrides["storage"] = storage
    return load_config(None, overrides=overrides, env_file=None)


@asynccontextmanager
async def running_feed(config: KestrelConfig, **kwargs: Any) -> AsyncIterator[MarketDataFeed]:
    feed = MarketDataFeed(config, LiveClock(), **kwargs)
    await feed.start()
    try:
        yield feed
    finally:
        await feed.stop()


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Wait until `predicate()`; returns the seconds it took. Fails the test after `timeout_s`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def sim_book(sim: Any, market: Market, symbol: str, update_id: int) -> tuple[dict[float, float], dict[float, float]]:
    view = sim.book_at(market, symbol, update_id)
    assert view.last_update_id == update_id
    return {float(p): float(q) for p, q in view.bids}, {float(p): float(q) for p, q in view.asks}


def same_top(book: Any, sim: Any, market: Market, symbol: str, levels: int) -> bool:
    """Our book's best `levels` per side equal the simulator's at our last update id.

    (With a snapshot of N levels, deeper levels are unknown until they change — spec §3.3 — so books
    fetched with a small snapshot limit are compared over their top.)"""
    view = sim.book_at(market, symbol, book.update_id)
    bids = [(float(p), float(q)) for p, q in view.bids[:levels]]
    asks = [(float(p), float(q)) for p, q in view.asks[:levels]]
    return bool(book.bids(levels) == bids and book.asks(levels) == asks)

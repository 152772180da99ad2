"""BinanceVenue against the real simulator (`kestrel.sim`, trading half) over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any

from kestrel.binance.userdata import UserStreamSettings
from kestrel.binance.venue import BinanceVenue
from kestrel.binance.venue_settings import BinanceVenueSettings
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from kestrel.core.instrument import Instrument
from kestrel.core.venue import OrderUpdate, VenueEvent
from kestrel.sim import MarketSimulator, RateModel, SimulatorOptions
from kestrel.sim.trading.options import SimAccount, TradingOptions

KEY = "K" * 64
SECRET = "S" * 64
OTHER_KEY = "B" * 64
OTHER_SECRET = "T" * 64
ACCOUNTS = [
    SimAccount(name="alice", api_key=KEY, api_secret=SECRET),
    SimAccount(name="bob", api_key=OTHER_KEY, api_secret=OTHER_SECRET),
]
# a market that barely moves (a test controls what happens), and one that trades through the book
QUIET = RateModel(book_events_per_s_major=0.001, book_events_per_s_min=0.001, trades_per_s_major=0, trades_per_s_min=0)
BUSY = RateModel(book_events_per_s_major=80, trades_per_s_major=40, trades_per_s_min=10, activity_exponent=0.0)
FAST_STREAM = UserStreamSettings(heartbeat_s=5.0, backoff_initial_s=0.05, backoff_max_s=0.5, connect_timeout_s=5.0)


@asynccontextmanager
async def trading_sim(data_dir: Path, rates: RateModel = QUIET, **values: Any) -> AsyncIterator[MarketSimulator]:
    values.setdefault("symbols", ["BTCUSDT"])
    trading = values.pop("trading", {})
    trading.setdefault("accounts", ACCOUNTS)
    options = SimulatorOptions(data_dir=data_dir, rates=rates, trading=TradingOptions(**trading), **values)
    async with MarketSimulator(options) as sim:
        assert sim.trading is not None
        for market in options.markets:  # warm up: the first activation compiles the matching kernels
            for symbol in sim.symbols(market):
                sim.trading.activate(market, symbol, sim.trading.sync())
        yield sim


def venue_settings(sim: MarketSimulator, markets: tuple[Market, ...], **changes: Any) -> BinanceVenueSettings:
    settings = BinanceVenueSettings(
        spot_rest_url=sim.rest_url,
        futures_rest_url=sim.rest_url,
        spot_ws_url=sim.ws_url,
        spot_ws_api_url=f"{sim.ws_url}/ws-api/v3",
        futures_ws_url=sim.futures_ws_url,
        api_key=KEY,
        api_secret=SECRET,
        markets=markets,
        account_id="alice",
        recv_window_ms=2000,
        user_stream=FAST_STREAM,
        silence_s=1.0,
        poll_interval_s=0.5,
        fill_grace_s=0.3,
        resolve_initial_delay_s=0.05,
        resolve_max_delay_s=0.5,
        unknown_floor_s=1.0,
        unknown_deadline_margin_s=1.0,
        start_timeout_s=10.0,
    )
    return replace(settings, **changes)


@asynccontextmanager
async def running_venue(
    sim: MarketSimulator, markets: tuple[Market, ...] = (Market.FUTURES, Market.SPOT), **changes: Any
) -> AsyncIterator[BinanceVenue]:
    venue = BinanceVenue(venue_settings(sim, markets, **changes), LiveClock())
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


def instrument(sim: MarketSimulator, market: Market, symbol: str = "BTCUSDT") -> Instrument:
    assert sim.trading is not None
    return sim.trading.engine.instrument(market, symbol)


def best(sim: MarketSimulator, market: Market, symbol: str = "BTCUSDT") -> tuple[Decimal, Decimal]:
    book = sim.book(market, symbol)
    assert book.best_bid is not None and book.best_ask is not None
    return book.best_bid[0], book.best_ask[0]


def quantity_for(sim: MarketSimulator, market: Market, notional: Decimal, symbol: str = "BTCUSDT") -> Decimal:
    """The smallest lot multiple worth at least `notional` at the ask."""
    step = instrument(sim, market, symbol).lot_size.step
    _, ask = best(sim, market, symbol)
    return ((notional / ask) / step).to_integral_value(rounding=ROUND_UP) * step


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)


async def settle(venue: BinanceVenue, events: list[VenueEvent], quiet_s: float = 0.3, timeout: float = 15.0) -> None:
    """Every command answered, and no new event for `quiet_s` (the stream's copies have arrived)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await venue.drain(timeout)
        count = len(events)
        await asyncio.sleep(quiet_s)
        if len(events) == count and venue.busy == 0:
            return
        if loop.time() > deadline:
            raise AssertionError("the venue did not settle")


def updates_of(events: list[VenueEvent], client_order_id: str) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate) and e.order.client_order_id == client_order_id]

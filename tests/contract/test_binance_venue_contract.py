"""`BinanceVenue` against our simulator, over real sockets, keeps the venue contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.binance.venue import BinanceVenue
from kestrel.core.enums import Market
from kestrel.sim import MarketSimulator
from tests.binance.venue_sim_helpers import best, instrument, quantity_for, running_venue, settle, trading_sim
from tests.contract.venue_contract import VenueContract, VenueHarness


class BinanceHarness(VenueHarness):
    def __init__(self, sim: MarketSimulator, venue: BinanceVenue, market: Market) -> None:
        super().__init__(
            venue, market, "BTCUSDT", quantity_for(sim, market, Decimal(200)), instrument(sim, market).price_filter.step
        )
        self.sim = sim
        self.binance_venue = venue

    async def settle(self) -> None:
        await settle(self.binance_venue, self.events)

    def best_prices(self) -> tuple[Decimal, Decimal]:
        return best(self.sim, self.market)


class TestBinanceVenueContract(VenueContract):
    @pytest.fixture(params=[Market.FUTURES, Market.SPOT], ids=["futures", "spot"])
    async def harness(self, request: pytest.FixtureRequest, shared_data: Path) -> AsyncIterator[BinanceHarness]:
        market: Market = request.param
        async with trading_sim(shared_data, markets=(market,)) as sim, running_venue(sim, (market,)) as venue:
            yield BinanceHarness(sim, venue, market)

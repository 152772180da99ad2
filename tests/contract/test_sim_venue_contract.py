"""`SimVenue` (the matching engine in process, with order latency) keeps the venue contract."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kestrel.core.clock import SimClock
from kestrel.core.enums import Market
from kestrel.matching.engine import MatchingEngine
from kestrel.matching.latency import ConstantLatency, OrderLatency
from kestrel.matching.venue import SimVenue
from tests.contract.venue_contract import VenueContract, VenueHarness
from tests.matching.helpers import FUTURES_BTC, SPOT_BTC, engine, snapshot


class SimHarness(VenueHarness):
    def __init__(self, matching: MatchingEngine, clock: SimClock, venue: SimVenue, market: Market) -> None:
        instrument = FUTURES_BTC if market is Market.FUTURES else SPOT_BTC
        super().__init__(venue, market, "BTCUSDT", Decimal("0.1"), instrument.price_filter.step)
        self.matching = matching
        self.clock = clock
        self.sim_venue = venue

    async def settle(self) -> None:
        while (due := self.sim_venue.next_due_ns()) is not None:
            self.clock.advance_to(max(due, self.clock.timestamp_ns()))
            self.sim_venue.process_due(due)

    def best_prices(self) -> tuple[Decimal, Decimal]:
        return Decimal("100.0"), Decimal("100.1")


class TestSimVenueContract(VenueContract):
    @pytest.fixture(params=[Market.FUTURES, Market.SPOT], ids=["futures", "spot"])
    def harness(self, request: pytest.FixtureRequest) -> SimHarness:
        market: Market = request.param
        matching = engine()
        matching.apply(snapshot(market))
        clock = SimClock(1_000_000)
        venue = SimVenue(matching, "a", clock, OrderLatency(ConstantLatency(2_000_000), ConstantLatency(1_000_000)))
        return SimHarness(matching, clock, venue, market)

"""A submission that fails in a way no rule covers (a bug, an answer we cannot read) never leaves the
order in limbo: it is resolved by query like a 5xx — found ⇒ its real state, not found ⇒ never placed."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kestrel.binance.http.client import BinanceHttpClient
from kestrel.binance.http.endpoints import Endpoint
from kestrel.binance.venue import BinanceVenue
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import ExecutionType, OrderRequest, VenueEvent
from tests.binance.venue_sim_helpers import KEY, best, instrument, quantity_for, settle, trading_sim, venue_settings

FUT = Market.FUTURES


class BrokenAnswers(BinanceHttpClient):
    """Raises on the next new-order call: after sending it (`placed`) or before."""

    placed: bool | None = None

    async def call(self, endpoint: Endpoint, params: Mapping[str, object] | None = None,
                   weight: int | None = None) -> Any:  # fmt: skip
        if endpoint.name == "new_order" and self.placed is not None:
            placed, self.placed = self.placed, None
            if not placed:
                raise RuntimeError("bug before sending")
            await super().call(endpoint, params, weight)
            raise RuntimeError("bug reading the answer")
        return await super().call(endpoint, params, weight)


@pytest.mark.parametrize("placed", [True, False], ids=["placed", "not-sent"])
async def test_an_unexpected_failure_is_resolved_by_query(shared_data: Path, placed: bool) -> None:
    async with trading_sim(shared_data, markets=(FUT,)) as sim:
        settings = venue_settings(sim, (FUT,))
        clock = LiveClock()
        http = BrokenAnswers(sim.rest_url, clock, settings.api_key, settings.api_secret, settings.recv_window_ms)
        venue = BinanceVenue(settings, clock, {FUT: http})
        await venue.start()
        try:
            events: list[VenueEvent] = []
            venue.set_event_handler(events.append)
            bid, _ = best(sim, FUT)
            request = OrderRequest(FUT, "BTCUSDT", Side.BUY, OrderType.LIMIT, quantity_for(sim, FUT, Decimal(200)),
                                   instrument(sim, FUT).round_price(bid * Decimal("0.98")),
                                   time_in_force=TimeInForce.GTC, client_order_id=ClientOrderId("lost-1"))  # fmt: skip
            http.placed = placed
            venue.submit_order(request)
            await settle(venue, events)
            assert sim.trading is not None
            account = sim.trading.account_id(KEY)
            on_exchange = [o for o in sim.trading.engine.all_orders(account, FUT, "BTCUSDT")
                           if o.client_order_id == "lost-1"]  # fmt: skip
            snapshot = venue.order(FUT, "BTCUSDT", ClientOrderId("lost-1"))
            assert snapshot is not None and venue.counters.unknown_outcomes == 1
            if placed:
                assert len(on_exchange) == 1 and snapshot.status is OrderStatus.NEW
            else:
                assert on_exchange == [] and snapshot.status is OrderStatus.REJECTED
                assert [e.execution_type for e in events if hasattr(e, "execution_type")] == [ExecutionType.REJECTED]
        finally:
            await venue.stop()

"""One matching engine: an order sent to the simulator over the wire fills exactly as the same order
sent to `SimVenue` (the backtester's and paper trader's venue) on the same book."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kestrel.binance.schemas.exchange_info import parse_instrument
from kestrel.core.clock import SimClock
from kestrel.core.enums import LiquiditySide, Market, OrderType, Side
from kestrel.core.events import DepthSnapshot, MarkPrice
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import OrderRequest, OrderUpdate, VenueEvent
from kestrel.matching.engine import MatchingEngine
from kestrel.matching.venue import SimVenue
from tests.sim.trading.conftest import (
    QUIET,
    SimFactory,
    client,
    futures_stream_url,
    quantity_for,
    spot_stream_url,
    user_stream,
)

RICH = Decimal(10**12)


def _venue_fills(
    exchange_info: dict[str, Any],
    market: Market,
    depth: dict[str, Any],
    request: OrderRequest,
    mark: Decimal | None,
) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    """The same order through SimVenue on a fresh engine holding the same book."""
    entry = next(e for e in exchange_info["symbols"] if e["symbol"] == request.symbol)
    engine = MatchingEngine([parse_instrument(entry, market)])
    engine.open_account(
        "backtest",
        spot_balances={"USDT": RICH, "BTC": Decimal(1)},
        futures_balances={"USDT": RICH},
    )
    ts = 1_000_000_000
    levels = {side: [(float(p), float(q)) for p, q in depth[side]] for side in ("bids", "asks")}
    engine.apply(DepthSnapshot(market, request.symbol, depth["lastUpdateId"], levels["bids"], levels["asks"], ts, ts))
    if mark is not None:
        engine.apply(MarkPrice(market, request.symbol, float(mark), float(mark), float(mark), 0.0, 0, ts, ts))
    clock = SimClock(ts)
    venue = SimVenue(engine, "backtest", clock)
    received: list[VenueEvent] = []
    venue.set_event_handler(received.append)
    venue.submit_order(request)
    venue.process_due(ts + 1)
    return [
        (e.fill.price, e.fill.quantity, e.fill.fee, e.fill.liquidity.value)
        for e in received
        if isinstance(e, OrderUpdate) and e.fill is not None
    ]


async def test_simulator_and_sim_venue_fill_the_same_order_identically(make_trading_sim: SimFactory) -> None:
    # balances large enough to sweep synthetic levels of any size, the same on both sides
    funded = {"default_spot_balances": {"USDT": RICH, "BTC": Decimal(1)}, "default_futures_balances": {"USDT": RICH}}
    async with make_trading_sim(rates=QUIET, trading=funded) as sim, client(sim) as c:
        assert type(sim.trading.engine) is MatchingEngine  # the very class SimVenue wraps
        for market, prefix, step, url_of in (
            (Market.FUTURES, "/fapi/v1", Decimal("0.001"), futures_stream_url),
            (Market.SPOT, "/api/v3", Decimal("0.00001"), spot_stream_url),
        ):
            exchange_info = await c.ok("GET", f"{prefix}/exchangeInfo", signed=False)
            depth = await c.ok("GET", f"{prefix}/depth", {"symbol": "BTCUSDT", "limit": 100}, signed=False)
            mark = None
            if market is Market.FUTURES:
                premium = await c.ok("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, signed=False)
                mark = Decimal(premium["markPrice"])
            asks = [(Decimal(p), Decimal(q)) for p, q in depth["asks"]]
            # a market buy sweeping the first two levels into the third
            quantity = asks[0][1] + asks[1][1] + quantity_for(Decimal(150), asks[2][0], step)
            path = "/fapi/v1/listenKey" if market is Market.FUTURES else "/api/v3/userDataStream"
            key = (await c.ok("POST", path, signed=False))["listenKey"]
            async with user_stream(url_of(sim, key)) as stream:
                params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": quantity}
                await c.ok("POST", f"{prefix}/order", {**params, "newClientOrderId": f"same-{market.value}"})
                wire_fills = []
                while sum((q for _, q, _, _ in wire_fills), start=Decimal(0)) < quantity:
                    if market is Market.FUTURES:
                        event = (await stream.next("ORDER_TRADE_UPDATE", where=lambda e: e["o"]["x"] == "TRADE"))["o"]
                        wire_fills.append((Decimal(event["L"]), Decimal(event["l"]), Decimal(event["n"]), event["m"]))
                    else:
                        event = await stream.next("executionReport", where=lambda e: e["x"] == "TRADE")
                        wire_fills.append((Decimal(event["L"]), Decimal(event["l"]), Decimal(event["n"]), event["m"]))
            request = OrderRequest(
                market, "BTCUSDT", Side.BUY, OrderType.MARKET, quantity, client_order_id=ClientOrderId("same")
            )
            venue_fills = _venue_fills(exchange_info, market, depth, request, mark)
            assert len(venue_fills) == 3
            expected = [
                (price, qty, fee, liquidity == LiquiditySide.MAKER.value) for price, qty, fee, liquidity in venue_fills
            ]
            assert wire_fills == expected, market

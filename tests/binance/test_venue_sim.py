"""BinanceVenue end to end against the real simulator over real sockets: OCO, algo orders, fills
reported by REST and the stream shown once, unknown outcomes resolved by query (no duplicate order),
listenKey expiry, disconnects and silence recovered without a lost fill, 429 back-off, 418 stop, and
the weight budget."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.binance.http.breaker import CircuitBreaker
from kestrel.binance.http.client import BinanceHttpClient
from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.venue import BinanceVenue
from kestrel.core.clock import LiveClock
from kestrel.core.enums import MarginType, Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import ExecutionType, OcoLeg, OcoRequest, OrderRequest, OrderUpdate, Venue, VenueEvent
from kestrel.sim import FaultPlan, MarketSimulator, ProtocolLimits
from tests.binance.venue_sim_helpers import (
    BUSY,
    FAST_STREAM,
    KEY,
    best,
    instrument,
    quantity_for,
    running_venue,
    settle,
    trading_sim,
    updates_of,
    venue_settings,
    wait_until,
)

FUT, SPOT = Market.FUTURES, Market.SPOT
D = Decimal


def engine_orders(sim: MarketSimulator, market: Market, client_id: str) -> list[object]:
    assert sim.trading is not None
    account = sim.trading.account_id(KEY)
    return [o for o in sim.trading.engine.all_orders(account, market, "BTCUSDT") if o.client_order_id == client_id]


def resting(sim: MarketSimulator, market: Market, client_id: str, below: str = "0.99") -> OrderRequest:
    bid, _ = best(sim, market)
    price = instrument(sim, market).round_price(bid * D(below))
    return OrderRequest(market, "BTCUSDT", Side.BUY, OrderType.LIMIT, quantity_for(sim, market, D(200)), price,
                        time_in_force=TimeInForce.GTC, client_order_id=ClientOrderId(client_id))  # fmt: skip


def market_buy(sim: MarketSimulator, market: Market, client_id: str) -> OrderRequest:
    return OrderRequest(market, "BTCUSDT", Side.BUY, OrderType.MARKET, quantity_for(sim, market, D(200)),
                        client_order_id=ClientOrderId(client_id))  # fmt: skip


def fills_of(updates: list[OrderUpdate]) -> list[tuple[int, Decimal]]:
    return [(u.fill.trade_id, u.fill.quantity) for u in updates if u.fill is not None]


async def test_spot_oco_places_two_legs_and_a_cancel_ends_both(shared_data: Path) -> None:
    async with trading_sim(shared_data, markets=(SPOT,)) as sim, running_venue(sim, (SPOT,)) as venue:
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        bid, ask = best(sim, SPOT)
        spot = instrument(sim, SPOT)
        oco = OcoRequest(
            "BTCUSDT", Side.SELL, quantity_for(sim, SPOT, D(50)),
            above=OcoLeg(OrderType.LIMIT_MAKER, price=spot.round_price(ask * D("1.02")),
                         client_order_id=ClientOrderId("tp-1")),
            below=OcoLeg(OrderType.STOP_LIMIT, price=spot.round_price(bid * D("0.97")),
                         stop_price=spot.round_price(bid * D("0.98")), time_in_force=TimeInForce.GTC,
                         client_order_id=ClientOrderId("sl-1")),
            list_client_order_id="oco-1",
        )  # fmt: skip
        assert venue.submit_oco(oco) == "oco-1"
        await settle(venue, events)
        for leg in ("tp-1", "sl-1"):
            (ack,) = updates_of(events, leg)
            assert ack.execution_type is ExecutionType.NEW and ack.order.order_list_id >= 0
        assert {o.client_order_id for o in venue.open_orders(SPOT)} == {"tp-1", "sl-1"}
        venue.cancel_order(SPOT, "BTCUSDT", ClientOrderId("sl-1"))
        await settle(venue, events)
        assert venue.open_orders(SPOT) == []
        for leg in ("tp-1", "sl-1"):
            final = updates_of(events, leg)[-1]
            assert final.order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED), final
        assert not [e for e in events if isinstance(e, OrderUpdate) and e.execution_type is ExecutionType.REJECTED]


async def test_futures_algo_stop_is_placed_queried_and_cancelled(shared_data: Path) -> None:
    async with trading_sim(shared_data, markets=(FUT,)) as sim, running_venue(sim, (FUT,)) as venue:
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        _, ask = best(sim, FUT)
        trigger = instrument(sim, FUT).round_price(ask * D("1.03"))
        stop = OrderRequest(FUT, "BTCUSDT", Side.BUY, OrderType.STOP_MARKET, quantity_for(sim, FUT, D(200)),
                            stop_price=trigger, client_order_id=ClientOrderId("algo-1"))  # fmt: skip
        venue.submit_order(stop)
        await settle(venue, events)
        (ack,) = updates_of(events, "algo-1")
        assert ack.execution_type is ExecutionType.NEW and ack.order.stop_price == trigger
        assert ack.order.order_type is OrderType.STOP_MARKET and not ack.order.triggered
        tracked = venue.view.get((FUT, "BTCUSDT", "algo-1"))
        assert tracked is not None and tracked.algo
        snapshot = await venue.reconcile_snapshot([(FUT, "BTCUSDT", "algo-1")])
        assert [o.client_order_id for o in snapshot.open_orders] == ["algo-1"]
        assert snapshot.queried_orders[0].status is OrderStatus.NEW
        venue.cancel_order(FUT, "BTCUSDT", ClientOrderId("algo-1"))
        await settle(venue, events)
        assert [u.execution_type for u in updates_of(events, "algo-1")] == [ExecutionType.NEW, ExecutionType.CANCELED]
        assert venue.open_orders() == []


@pytest.mark.slow
async def test_futures_algo_stop_triggers_and_fills_in_a_moving_market(shared_data: Path) -> None:
    async with trading_sim(shared_data, BUSY, markets=(FUT,)) as sim, running_venue(sim, (FUT,)) as venue:
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        futures = instrument(sim, FUT)
        for attempt in range(20):  # a buy stop a few ticks above the ask: the next up-move triggers it
            _, ask = best(sim, FUT)
            client_id = ClientOrderId(f"trig-{attempt}")
            venue.submit_order(OrderRequest(FUT, "BTCUSDT", Side.BUY, OrderType.STOP_MARKET,
                                            quantity_for(sim, FUT, D(200)), stop_price=ask + 2 * futures.tick_size,
                                            client_order_id=client_id))  # fmt: skip
            await settle(venue, events)
            if updates_of(events, client_id)[-1].execution_type is not ExecutionType.REJECTED:
                break
        try:
            await wait_until(lambda: venue.order(FUT, "BTCUSDT", client_id).status is OrderStatus.FILLED, 30, "fill")  # type: ignore[union-attr]
        finally:
            await settle(venue, events)
        kinds = [u.execution_type for u in updates_of(events, client_id)]
        assert kinds[:2] == [ExecutionType.NEW, ExecutionType.TRIGGERED] and kinds[-1] is ExecutionType.TRADE
        updates = updates_of(events, client_id)
        assert sum(q for _, q in fills_of(updates)) == updates[-1].order.quantity
        assert all(u.order.order_type is OrderType.STOP_MARKET for u in updates)


async def test_a_fill_reported_by_rest_and_stream_is_shown_once(shared_data: Path) -> None:
    async with trading_sim(shared_data, markets=(SPOT,)) as sim, running_venue(sim, (SPOT,)) as venue:
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        venue.submit_order(market_buy(sim, SPOT, "take-1"))
        await settle(venue, events)
        updates = updates_of(events, "take-1")
        fills = fills_of(updates)
        assert fills and len({trade for trade, _ in fills}) == len(fills)
        assert sum(q for _, q in fills) == updates[-1].order.filled_quantity == updates[-1].order.quantity
        assert venue.view.duplicate_fills >= len(fills)  # the FULL answer and the stream both reported each


async def test_5xx_with_the_order_placed_is_resolved_by_query_without_a_duplicate(shared_data: Path) -> None:
    async with trading_sim(shared_data, markets=(FUT,)) as sim, running_venue(sim, (FUT,)) as venue:
        assert sim.trading is not None
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        sim.trading.fail_next_orders(1, placed=True)
        venue.submit_order(resting(sim, FUT, "u-1"))
        await settle(venue, events)
        assert [u.execution_type for u in updates_of(events, "u-1")] == [ExecutionType.NEW]
        assert venue.counters.unknown_outcomes == 1 and len(engine_orders(sim, FUT, "u-1")) == 1
        assert sim.stats()["trading"]["order_5xx_placed_injected"] == 1
        sim.trading.fail_next_orders(1, placed=False)
        venue.submit_order(resting(sim, FUT, "u-2"))
        await settle(venue, events)
        (rejected,) = updates_of(events, "u-2")
        assert rejected.execution_type is ExecutionType.REJECTED and rejected.code == -2013
        assert engine_orders(sim, FUT, "u-2") == [] and venue.counters.never_placed == 1


async def test_a_timeout_is_resolved_by_query(shared_data: Path) -> None:
    async with (
        trading_sim(shared_data, markets=(SPOT,)) as sim,
        running_venue(sim, (SPOT,), request_timeout_ms=800) as venue,
    ):
        assert sim.trading is not None
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        sim.trading.timeout_next_orders(1, stall_s=2.0)
        venue.submit_order(resting(sim, SPOT, "t-1"))
        await settle(venue, events)
        assert [u.execution_type for u in updates_of(events, "t-1")] == [ExecutionType.NEW]
        assert len(engine_orders(sim, SPOT, "t-1")) == 1
        assert venue.counters.resolved_by_query + venue.counters.resolved_by_stream == 1


async def check_one_fill(venue: BinanceVenue, events: list[VenueEvent], client_id: str) -> None:
    await wait_until(lambda: venue.order(FUT, "BTCUSDT", ClientOrderId(client_id)).status is OrderStatus.FILLED,  # type: ignore[union-attr]
                     15, f"{client_id} filled")  # fmt: skip
    await settle(venue, events)
    updates = updates_of(events, client_id)
    fills = fills_of(updates)
    assert sum(q for _, q in fills) == updates[-1].order.quantity, fills
    assert len({trade for trade, _ in fills}) == len(fills)


async def test_listen_key_expiry_and_disconnects_lose_no_fill(shared_data: Path) -> None:
    async with trading_sim(shared_data, markets=(FUT,)) as sim, running_venue(sim, (FUT,)) as venue:
        assert sim.trading is not None
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        stream = venue.streams[FUT]
        sim.trading.expire_listen_keys()
        venue.submit_order(market_buy(sim, FUT, "x-1"))  # fills while the stream is being re-established
        await check_one_fill(venue, events, "x-1")
        await wait_until(lambda: stream.counters.expiries >= 1 and stream.connected, 10, "new listenKey")
        sim.disconnect_all()
        venue.submit_order(market_buy(sim, FUT, "x-2"))
        await check_one_fill(venue, events, "x-2")
        await wait_until(lambda: stream.counters.connects >= 3 and stream.connected, 10, "reconnected")
        venue.submit_order(market_buy(sim, FUT, "x-3"))  # and the stream delivers again
        await check_one_fill(venue, events, "x-3")
        account = sim.trading.account_id(KEY)
        (position,) = sim.trading.engine.positions(account, "BTCUSDT")
        assert {p.symbol: p.quantity for p in venue.positions()} == {"BTCUSDT": position.quantity}


async def test_silence_falls_back_to_rest_polling(shared_data: Path) -> None:
    async with trading_sim(shared_data, BUSY, markets=(SPOT,)) as sim, running_venue(sim, (SPOT,)) as venue:
        assert sim.trading is not None
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        sim.trading.silence_user_streams(30.0)  # events are dropped; the connection stays up
        spot = instrument(sim, SPOT)
        for _ in range(10):  # first in line at the bid: the next sell taker trades through it
            bid, ask = best(sim, SPOT)
            if bid + spot.tick_size < ask:
                break
            await asyncio.sleep(0.05)
        price = bid + spot.tick_size
        request = OrderRequest(SPOT, "BTCUSDT", Side.BUY, OrderType.LIMIT, quantity_for(sim, SPOT, D(20)), price,
                               time_in_force=TimeInForce.GTC, client_order_id=ClientOrderId("quiet-1"))  # fmt: skip
        venue.submit_order(request)
        await wait_until(lambda: venue.order(SPOT, "BTCUSDT", ClientOrderId("quiet-1")).filled_quantity > 0, 30,  # type: ignore[union-attr]
                         "a fill found by polling")  # fmt: skip
        assert venue.counters.poll_episodes >= 1 and venue.counters.polls >= 1
        (engine_order,) = engine_orders(sim, SPOT, "quiet-1")
        await wait_until(
            lambda: (
                venue.order(SPOT, "BTCUSDT", ClientOrderId("quiet-1")).filled_quantity  # type: ignore[union-attr]
                == engine_order.filled_quantity
            ),  # type: ignore[attr-defined]
            10,
            "the view catching up with the engine",
        )
        fills = fills_of(updates_of(events, "quiet-1"))
        assert sum(q for _, q in fills) == venue.order(SPOT, "BTCUSDT", ClientOrderId("quiet-1")).filled_quantity  # type: ignore[union-attr]
        assert sim.stats()["trading"]["user_events_dropped"] > 0


async def test_429_backs_off_and_418_stops(shared_data: Path) -> None:
    async with trading_sim(shared_data, markets=(FUT,)) as sim, running_venue(sim, (FUT,)) as venue:
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        loop = asyncio.get_running_loop()
        sim.set_faults(FaultPlan(rest_429_rate=1.0, retry_after_s=1))
        venue.submit_order(resting(sim, FUT, "r-1"))
        await settle(venue, events, quiet_s=0.05)
        refused_at = loop.time()
        (refused,) = updates_of(events, "r-1")
        assert refused.execution_type is ExecutionType.REJECTED and refused.code == -1003
        sim.set_faults(FaultPlan())
        venue.submit_order(resting(sim, FUT, "r-2"))
        await wait_until(lambda: bool(updates_of(events, "r-2")), 5, "r-2 answered")
        assert loop.time() - refused_at >= 0.8  # held back until Retry-After passed
        assert updates_of(events, "r-2")[0].execution_type is ExecutionType.NEW
        sim.set_faults(FaultPlan(rest_418_rate=1.0, retry_after_s=60))
        venue.submit_order(resting(sim, FUT, "r-3"))
        await settle(venue, events, quiet_s=0.05)
        assert updates_of(events, "r-3")[0].code == -1003
        sim.set_faults(FaultPlan())
        requests = sim.stats()["rest"]["requests"]
        venue.submit_order(resting(sim, FUT, "r-4"))
        await settle(venue, events, quiet_s=0.05)
        (stopped,) = updates_of(events, "r-4")
        assert stopped.execution_type is ExecutionType.REJECTED and "418" in (stopped.reason or "")
        assert sim.stats()["rest"]["requests"] == requests  # banned: nothing was sent
        assert engine_orders(sim, FUT, "r-4") == []


@pytest.mark.slow
async def test_request_weight_never_exceeds_the_budget(shared_data: Path) -> None:
    limit = 150
    clock = LiveClock()
    seconds_into_minute = (clock.timestamp_ns() // 1_000_000_000) % 60
    if seconds_into_minute > 50:  # keep the burst inside one minute window of both sides
        await asyncio.sleep(61 - seconds_into_minute)
    limits = ProtocolLimits(weight_per_minute_futures=limit)
    async with trading_sim(shared_data, markets=(FUT,), limits=limits) as sim:
        tracker = RateLimitTracker.from_exchange_info(
            [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit}]
        )
        settings = venue_settings(sim, (FUT,))
        http = BinanceHttpClient(sim.rest_url, clock, settings.api_key, settings.api_secret, limits=tracker,
                                 breaker=CircuitBreaker())  # fmt: skip
        venue = BinanceVenue(settings, clock, {FUT: http})
        await venue.start()
        try:
            rest = venue.rest[FUT]
            # twice the budget at once (each poll is openOrders + openAlgoOrders, weight 1 each)
            burst = [asyncio.create_task(rest.open_orders("BTCUSDT")) for _ in range(limit)]
            await asyncio.sleep(1.5)
            pending = [task for task in burst if not task.done()]
            assert pending, "the requests over the budget must wait for the next window"
            for task in pending:
                task.cancel()
            await asyncio.gather(*burst, return_exceptions=True)
            assert sim.state.weights[FUT].used <= limit * 0.9
            stats = sim.stats()["rest"]
            assert stats["rate_limited_429"] == 0 and stats["banned_418"] == 0
        finally:
            await venue.stop()


async def test_leverage_and_margin_type_setup_and_the_start_up_view(shared_data: Path) -> None:
    async with trading_sim(shared_data, markets=(FUT,)) as sim:
        async with running_venue(sim, (FUT,)) as venue:
            assert isinstance(venue, Venue)
            await venue.configure_futures(["BTCUSDT"], 5, MarginType.ISOLATED)
            await venue.configure_futures(["BTCUSDT"], 5, MarginType.ISOLATED)  # unchanged (-4046) is fine
            events: list[VenueEvent] = []
            venue.set_event_handler(events.append)
            venue.submit_order(market_buy(sim, FUT, "lev-1"))
            venue.submit_order(resting(sim, FUT, "lev-2"))
            await settle(venue, events)
            (position,) = venue.positions()
            assert position.margin_type is MarginType.ISOLATED and position.quantity > 0
            assert [b.asset for b in venue.balances(FUT)] == ["USDT"]
            assert venue.balances(FUT)[0].wallet < D(100_000)  # the taker fee
        # a new process finds the open order, the position and the balances, without events
        async with running_venue(sim, (FUT,)) as restarted:
            events = []
            restarted.set_event_handler(events.append)
            assert [o.client_order_id for o in restarted.open_orders(FUT)] == ["lev-2"]
            assert restarted.open_orders(FUT)[0].status is OrderStatus.NEW
            (found,) = restarted.positions()
            assert found.quantity == position.quantity and found.margin_type is MarginType.ISOLATED
            assert found.leverage == 5
            restarted.cancel_order(FUT, "BTCUSDT", ClientOrderId("lev-2"))
            await settle(restarted, events)
            assert [u.execution_type for u in updates_of(events, "lev-2")] == [ExecutionType.CANCELED]


@pytest.mark.parametrize(
    ("market", "changes"),
    [
        (SPOT, {"spot_user_stream": "listen_key"}),
        (FUT, {"user_stream": replace(FAST_STREAM, futures_route="legacy")}),
    ],
    ids=["spot-listen-key", "futures-legacy-route"],
)
async def test_legacy_user_stream_paths(shared_data: Path, market: Market, changes: dict[str, object]) -> None:
    async with trading_sim(shared_data, markets=(market,)) as sim, running_venue(sim, (market,), **changes) as venue:
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        venue.submit_order(market_buy(sim, market, "legacy-1"))
        await settle(venue, events)
        updates = updates_of(events, "legacy-1")
        assert updates[-1].order.status is OrderStatus.FILLED
        assert sum(q for _, q in fills_of(updates)) == updates[-1].order.quantity
        assert venue.dispatcher.last_event_ns.get(market, 0) > 0  # the stream delivered on that path


async def test_unknown_outcomes_of_oco_and_algo_orders_are_resolved_by_query(shared_data: Path) -> None:
    async with trading_sim(shared_data) as sim, running_venue(sim) as venue:
        assert sim.trading is not None
        events: list[VenueEvent] = []
        venue.set_event_handler(events.append)
        bid, ask = best(sim, SPOT)
        spot = instrument(sim, SPOT)
        sim.trading.fail_next_orders(1, placed=True)
        venue.submit_oco(
            OcoRequest(
                "BTCUSDT",
                Side.SELL,
                quantity_for(sim, SPOT, D(50)),
                above=OcoLeg(
                    OrderType.LIMIT_MAKER,
                    price=spot.round_price(ask * D("1.02")),
                    client_order_id=ClientOrderId("u-tp"),
                ),
                below=OcoLeg(
                    OrderType.STOP_MARKET,
                    stop_price=spot.round_price(bid * D("0.98")),
                    client_order_id=ClientOrderId("u-sl"),
                ),
                list_client_order_id="u-oco",
            )
        )
        await settle(venue, events)
        assert [u.execution_type for u in updates_of(events, "u-tp")] == [ExecutionType.NEW]
        assert [u.execution_type for u in updates_of(events, "u-sl")] == [ExecutionType.NEW]
        assert updates_of(events, "u-oco") == [] and len(engine_orders(sim, SPOT, "u-tp")) == 1
        _, futures_ask = best(sim, FUT)
        sim.trading.fail_next_orders(1, placed=True)
        venue.submit_order(OrderRequest(FUT, "BTCUSDT", Side.BUY, OrderType.TAKE_PROFIT_MARKET,
                                        quantity_for(sim, FUT, D(200)),
                                        stop_price=instrument(sim, FUT).round_price(futures_ask * D("0.97")),
                                        client_order_id=ClientOrderId("u-algo")))  # fmt: skip
        await settle(venue, events)
        assert [u.execution_type for u in updates_of(events, "u-algo")] == [ExecutionType.NEW]
        counters = venue.counters
        assert counters.unknown_outcomes == 2 and counters.resolved_by_query + counters.resolved_by_stream == 2

"""Trading faults, injected and counted: 5xx with and without the order placed, unanswered orders,
user-stream silence, listenKey expiry, disconnects, and the order-rate limit (429, then 418)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from kestrel.core.enums import Market
from kestrel.sim import FaultPlan, ProtocolLimits
from tests.sim.trading.conftest import (
    QUIET,
    SimFactory,
    best,
    client,
    futures_stream_url,
    quantity_for,
    spot_stream_url,
    user_stream,
)

SPOT, FUTURES = Market.SPOT, Market.FUTURES


def _resting_buy(sim: Any, market: Market, client_id: str) -> dict[str, Any]:
    bid, _ = best(sim, market)
    tick, step, notional = (
        (Decimal("0.01"), Decimal("0.00001"), Decimal(20))
        if market is SPOT
        else (Decimal("0.1"), Decimal("0.001"), Decimal(150))
    )
    price = bid - 20 * tick
    return {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "price": price,
        "quantity": quantity_for(notional, price, step),
        "newClientOrderId": client_id,
    }


async def test_5xx_with_and_without_the_order_placed(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            sim.trading.fail_next_orders(1, placed=True)
            status, body, _ = await c.call("POST", "/fapi/v1/order", _resting_buy(sim, FUTURES, "placed-1"))
            assert status == 503 and "unknown" in body["msg"].lower()
            assert (await stream.next("ORDER_TRADE_UPDATE"))["o"]["c"] == "placed-1"  # it exists
            found = await c.ok("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "placed-1"})
            assert found["status"] == "NEW"
            sim.trading.fail_next_orders(1, placed=False, status=502)
            status, body, _ = await c.call("POST", "/fapi/v1/order", _resting_buy(sim, FUTURES, "lost-1"))
            assert status == 502 and body["code"] == -1007
            status, body, _ = await c.call(
                "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "lost-1"}
            )
            assert (status, body["code"]) == (400, -2013)
            assert await stream.quiet(0.2) == []
        counters = sim.stats()["trading"]
        assert (counters["order_5xx_placed_injected"], counters["order_5xx_unplaced_injected"]) == (1, 1)


async def test_plan_rates_apply_to_every_order_request(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,), faults=FaultPlan(order_5xx_placed_rate=1.0)) as sim:
        async with client(sim) as c:
            for number in range(3):
                status, _, _ = await c.call("POST", "/api/v3/order", _resting_buy(sim, SPOT, f"rate-{number}"))
                assert status == 503
            assert len(await c.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})) == 3
            assert (await c.call("GET", "/api/v3/account"))[0] == 200  # reads are not order requests
        assert sim.stats()["trading"]["order_5xx_placed_injected"] == 3


async def test_unanswered_order_is_placed_and_the_connection_closes(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim, client(sim) as c:
        sim.trading.timeout_next_orders(1, stall_s=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
            await c.call("POST", "/api/v3/order", _resting_buy(sim, SPOT, "silent-1"))
        assert loop.time() - started >= 0.45  # it stalled, then closed without an answer
        found = await c.ok("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "silent-1"})
        assert found["status"] == "NEW"
        assert sim.stats()["trading"]["order_timeouts_injected"] == 1


async def test_user_stream_silence_and_forced_expiry(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim, client(sim) as c:
        key = (await c.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        async with user_stream(spot_stream_url(sim, key)) as stream:
            sim.trading.silence_user_streams(0.5)
            await c.ok("POST", "/api/v3/order", _resting_buy(sim, SPOT, "quiet-1"))
            assert await stream.quiet(0.2) == []
            await asyncio.sleep(0.4)
            await c.ok("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "quiet-1"})
            assert (await stream.next("executionReport"))["x"] == "CANCELED"
            assert sim.trading.expire_listen_keys() == 1
            assert (await stream.next("listenKeyExpired"))["listenKey"] == key
        counters = sim.stats()["trading"]
        assert counters["user_events_dropped"] == 2  # the NEW report and its balance update
        assert (counters["silences_injected"], counters["listen_key_expiries_injected"]) == (1, 1)


async def test_periodic_listen_key_expiry_and_disconnects(make_trading_sim: SimFactory) -> None:
    plan = FaultPlan(listen_key_expire_every_s=0.3)
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,), faults=plan) as sim, client(sim) as c:
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            await stream.next("listenKeyExpired", timeout=3.0)
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        sim.set_faults(FaultPlan())
        async with aiohttp.ClientSession() as session, session.ws_connect(futures_stream_url(sim, key)) as ws:
            await asyncio.sleep(0.1)
            assert sim.disconnect_all() >= 1  # user-data connections are the hub's too
            message = await ws.receive(timeout=3.0)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert sim.stats()["trading"]["listen_key_expiries_injected"] >= 1


async def test_order_rate_limit_then_ban(make_trading_sim: SimFactory) -> None:
    limits = ProtocolLimits(requests_over_limit_before_ban=2)
    trading = {"order_limits": {"spot_per_10s": 3}}
    async with make_trading_sim(rates=QUIET, markets=(SPOT,), limits=limits, trading=trading) as sim, client(sim) as c:
        for number in range(1, 4):
            status, _, headers = await c.call("POST", "/api/v3/order", _resting_buy(sim, SPOT, f"n-{number}"))
            assert status == 200 and headers["X-MBX-ORDER-COUNT-10S"] == str(number)
            assert headers["X-MBX-ORDER-COUNT-1D"] == str(number)
        status, body, headers = await c.call("POST", "/api/v3/order", _resting_buy(sim, SPOT, "n-4"))
        assert (status, body["code"]) == (429, -1015)
        assert body["msg"] == "Too many new orders; current limit is 3 orders per 10 SECOND."
        assert 1 <= int(headers["Retry-After"]) <= 10
        status, _, _ = await c.call("POST", "/api/v3/order", _resting_buy(sim, SPOT, "n-5"))
        assert status == 429
        status, body, headers = await c.call("POST", "/api/v3/order", _resting_buy(sim, SPOT, "n-6"))
        assert status == 429
        status, body, headers = await c.call("GET", "/api/v3/account")  # banned now: every request
        assert (status, body["code"]) == (418, -1003) and int(headers["Retry-After"]) > 0
        assert sim.stats()["trading"]["order_rate_limited_429"] == 3

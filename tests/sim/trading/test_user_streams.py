"""User data streams over real sockets: listenKey life cycle and expiry, the private route's forms,
SUBSCRIBE of a key, the spot WebSocket API subscription, and per-account isolation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

from kestrel.binance.http.signing import sign
from kestrel.core.enums import Market
from tests.sim.trading.conftest import (
    KEY,
    OTHER_KEY,
    OTHER_SECRET,
    QUIET,
    SECRET,
    SimFactory,
    best,
    client,
    futures_stream_url,
    quantity_for,
    spot_stream_url,
    user_stream,
)

SPOT, FUTURES = Market.SPOT, Market.FUTURES


def _market_buy(sim: Any, market: Market) -> dict[str, Any]:
    _, ask = best(sim, market)
    step, notional = (Decimal("0.00001"), Decimal(20)) if market is SPOT else (Decimal("0.001"), Decimal(150))
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": quantity_for(notional, ask, step)}


async def test_listen_key_life_cycle(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET) as sim, client(sim) as c:
        for path in ("/api/v3/userDataStream", "/fapi/v1/listenKey"):
            key = (await c.ok("POST", path, signed=False))["listenKey"]
            assert len(key) == 64 and key.isalnum()
            assert (await c.ok("POST", path, signed=False))["listenKey"] == key  # the active key, extended
            kept = await c.ok("PUT", path, {"listenKey": key}, signed=False)
            assert kept in ({}, {"listenKey": key})
            assert await c.ok("DELETE", path, {"listenKey": key}, signed=False) == {}
            status, body, _ = await c.call("PUT", path, {"listenKey": key}, signed=False)
            assert (status, body) == (400, {"code": -1125, "msg": "This listenKey does not exist."})
            assert (await c.ok("POST", path, signed=False))["listenKey"] != key
        # someone else's key is not yours
        status, body, _ = await c.call(
            "PUT", "/fapi/v1/listenKey", {"listenKey": key}, signed=False, key=OTHER_KEY, secret=OTHER_SECRET
        )
        assert (status, body["code"]) == (400, -1125)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{sim.futures_ws_url}/private/ws/{'x' * 64}")
            assert refused.value.status == 400


async def test_listen_key_expires_without_keepalive(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, trading={"listen_key_validity_s": 0.6}) as sim, client(sim) as c:
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with user_stream(futures_stream_url(sim, key)) as stream:
            expired = await stream.next("listenKeyExpired", timeout=5.0)
            assert expired["listenKey"] == key
            await c.ok("POST", "/fapi/v1/order", _market_buy(sim, FUTURES))
            assert await stream.quiet(0.3) == []  # nothing more on an expired key
        status, body, _ = await c.call("PUT", "/fapi/v1/listenKey", {"listenKey": key}, signed=False)
        assert (status, body["code"]) == (400, -1125)
        assert sim.stats()["trading"]["listen_keys_expired"] == 1


async def test_private_route_forms_and_subscribe(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET, markets=(FUTURES,)) as sim, client(sim) as c:
        key = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with (
            user_stream(f"{sim.futures_ws_url}/private/stream?listenKey={key}&events=ORDER_TRADE_UPDATE") as wrapped,
            user_stream(f"{sim.futures_ws_url}/private/ws?listenKey={key}") as raw,
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{sim.futures_ws_url}/private/ws") as subscriber,
        ):
            await subscriber.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": [key], "id": 7}).decode())
            assert orjson.loads((await subscriber.receive(timeout=5)).data) == {"result": None, "id": 7}
            await subscriber.send_str(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}).decode())
            assert orjson.loads((await subscriber.receive(timeout=5)).data) == {"result": [key], "id": 8}
            await c.ok("POST", "/fapi/v1/order", _market_buy(sim, FUTURES))
            await wrapped.next("ORDER_TRADE_UPDATE")
            assert wrapped.events[0]["stream"] == key and wrapped.events[0]["data"]["e"] == "ORDER_TRADE_UPDATE"
            assert (await raw.next("ORDER_TRADE_UPDATE"))["o"]["x"] == "NEW"
            assert orjson.loads((await subscriber.receive(timeout=5)).data)["e"] == "ORDER_TRADE_UPDATE"
            await subscriber.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": ["nope"], "id": 9}).decode())
            while (reply := orjson.loads((await subscriber.receive(timeout=5)).data)).get("id") != 9:
                pass
            assert reply["error"]["code"] == 2


async def test_accounts_see_only_their_own_events(make_trading_sim: SimFactory) -> None:
    async with (
        make_trading_sim(rates=QUIET, markets=(SPOT,)) as sim,
        client(sim) as alice,
        client(sim, OTHER_KEY, OTHER_SECRET) as bob,
    ):
        alice_key = (await alice.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        bob_key = (await bob.ok("POST", "/api/v3/userDataStream", signed=False))["listenKey"]
        assert alice_key != bob_key
        async with (
            user_stream(spot_stream_url(sim, alice_key)) as alice_stream,
            user_stream(spot_stream_url(sim, bob_key)) as bob_stream,
        ):
            order = await bob.ok("POST", "/api/v3/order", _market_buy(sim, SPOT))
            assert (await bob_stream.next("executionReport"))["i"] == order["orderId"]
            assert await alice_stream.quiet(0.3) == []
        status, _, _ = await alice.call("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order["orderId"]})
        assert status == 400  # bob's order does not exist for alice


def _signed_ws_params(secret: str, key: str, timestamp: int) -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": key, "timestamp": timestamp}
    params["signature"] = sign(secret, urlencode(sorted(params.items())))
    return params


async def test_spot_ws_api_user_data_subscription(make_trading_sim: SimFactory) -> None:
    async with (
        make_trading_sim(rates=QUIET, markets=(SPOT,), trading={"spot_listen_key": False}) as sim,
        client(sim) as c,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws-api/v3") as ws,
    ):
        status, body, _ = await c.call("POST", "/api/v3/userDataStream", signed=False)
        assert (status, body["code"]) == (410, -1000)  # the retired legacy path, when switched off

        async def request(method: str, params: dict[str, Any] | None = None, request_id: str = "r") -> Any:
            await ws.send_str(orjson.dumps({"id": request_id, "method": method, "params": params or {}}).decode())
            while True:
                reply = orjson.loads((await ws.receive(timeout=5)).data)
                if reply.get("id") == request_id:
                    return reply

        bad = _signed_ws_params("X" * 64, KEY, sim.server_time_ms())
        reply = await request("userDataStream.subscribe.signature", bad)
        assert (reply["status"], reply["error"]["code"]) == (400, -1022)
        reply = await request(
            "userDataStream.subscribe.signature", _signed_ws_params(SECRET, KEY, sim.server_time_ms())
        )
        assert (reply["status"], reply["result"]) == (200, {"subscriptionId": 0})
        again = await request(
            "userDataStream.subscribe.signature", _signed_ws_params(SECRET, KEY, sim.server_time_ms())
        )
        assert again["error"]["code"] == -2035
        assert (await request("session.subscriptions"))["result"] == [{"subscriptionId": 0}]
        assert (await request("session.logon", {"apiKey": KEY}))["status"] == 400
        order = await c.ok("POST", "/api/v3/order", _market_buy(sim, SPOT))
        frame = orjson.loads((await ws.receive(timeout=5)).data)
        assert frame["subscriptionId"] == 0
        assert (frame["event"]["e"], frame["event"]["i"]) == ("executionReport", order["orderId"])
        await ws.send_str(orjson.dumps({"id": "u", "method": "userDataStream.unsubscribe", "params": {}}).decode())
        frames = []
        while not frames or frames[-1].get("id") != "u":
            frames.append(orjson.loads((await ws.receive(timeout=5)).data))
        assert {"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": frames[-2]["event"]["E"]}} in frames
        assert frames[-1]["status"] == 200
        reply = await request("userDataStream.unsubscribe")
        assert reply["error"]["code"] == -2036

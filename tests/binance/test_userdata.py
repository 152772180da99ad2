"""User data stream connections over real sockets, against a small protocol server written for the
test (listenKey REST + WS, and the spot WS API subscription with its signature check)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web

from kestrel.binance.http.client import BinanceHttpClient
from kestrel.binance.http.endpoints import FUTURES, SPOT
from kestrel.binance.userdata import ListenKeyStream, UserStreamSettings, WsApiUserStream
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market

SECRET = "test-secret"
FAST = UserStreamSettings(keepalive_interval_s=0.2, keepalive_retry_s=0.1, heartbeat_s=5, backoff_initial_s=0.05,
                          backoff_max_s=0.2, stable_after_s=60)  # fmt: skip


@dataclass
class ProtocolServer:
    keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    valid: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    connected_keys: list[str] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    refuse_subscriptions: int = 0
    url: str = ""

    async def listen_key(self, request: web.Request) -> web.Response:
        self.calls.append((request.method, request.path))
        if request.headers.get("X-MBX-APIKEY") != "key":
            return web.json_response({"code": -2015, "msg": "Invalid API-key"}, status=401)
        if request.method == "POST":
            key = f"key{next(self.keys)}"
            self.valid.add(key)
            return web.json_response({"listenKey": key})
        key = request.query.get("listenKey") or (sorted(self.valid)[-1] if self.valid else "")
        if request.method == "PUT" and key not in self.valid:
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        if request.method == "DELETE":
            self.valid.discard(key)
        return web.json_response({})

    async def user_ws(self, request: web.Request) -> web.WebSocketResponse:
        key = request.match_info["key"]
        if key not in self.valid:
            raise web.HTTPBadRequest()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sockets.append(ws)
        self.connected_keys.append(key)
        async for _ in ws:
            pass
        return ws

    async def ws_api(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            body = orjson.loads(message.data)
            params = dict(body["params"])
            signature = params.pop("signature")
            payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
            expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
            self.subscriptions.append(body)
            if self.refuse_subscriptions > 0 or signature != expected:
                self.refuse_subscriptions -= 1
                error = {"code": -1022, "msg": "Signature invalid."}
                await ws.send_str(orjson.dumps({"id": body["id"], "status": 400, "error": error}).decode())
                continue
            await ws.send_str(orjson.dumps({"id": body["id"], "status": 200, "result": {"subscriptionId": 0}}).decode())
            self.sockets.append(ws)
        return ws

    async def push(self, event: dict[str, Any], wrapped: bool = False) -> None:
        ws = self.sockets[-1]
        body = {"subscriptionId": 0, "event": event} if wrapped else event
        await ws.send_str(orjson.dumps(body).decode())


@pytest.fixture
async def server() -> AsyncIterator[ProtocolServer]:
    state = ProtocolServer()
    app = web.Application()
    for path in ("/fapi/v1/listenKey", "/api/v3/userDataStream"):
        app.router.add_route("*", path, state.listen_key)
    app.router.add_get("/private/ws/{key}", state.user_ws)
    app.router.add_get("/ws/{key}", state.user_ws)
    app.router.add_get("/ws-api/v3", state.ws_api)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_futures_listen_key_stream_lifecycle(server: ProtocolServer) -> None:
    clock = LiveClock()
    http = BinanceHttpClient(f"http://{server.url}", clock, "key", SECRET)
    frames: list[tuple[bytes, int]] = []
    connects: list[Market] = []
    stream = ListenKeyStream(Market.FUTURES, clock, http, FUTURES, f"ws://{server.url}",
                             lambda data, ts: frames.append((data, ts)), connects.append, FAST)  # fmt: skip
    task = asyncio.create_task(stream.run())
    try:
        await until(lambda: stream.connected)
        assert server.connected_keys == ["key1"] and connects == [Market.FUTURES]
        await server.push({"e": "ACCOUNT_UPDATE", "E": 1})
        await until(lambda: len(frames) == 1)
        assert frames[0][0] == b'{"e":"ACCOUNT_UPDATE","E":1}' and frames[0][1] > 0
        await until(lambda: stream.counters.keepalives >= 2)  # PUT every keepalive interval
        server.valid.clear()  # the exchange forgot the key: the next keepalive gets -1125
        await until(lambda: server.connected_keys[-1:] == ["key2"])
        assert stream.counters.expiries == 1 and stream.listen_key == "key2"
        stream.expire("listenKey expired")  # as after a listenKeyExpired event
        await until(lambda: server.connected_keys[-1:] == ["key3"])
        await server.sockets[-1].close()  # a disconnect: same key, new connection
        await until(lambda: len(server.connected_keys) == 4)
        assert server.connected_keys[-1] == "key3" and len(connects) == 4
    finally:
        stream.stop()
        await task
        await http.close()
    assert ("DELETE", "/fapi/v1/listenKey") in server.calls
    assert ("PUT", "/fapi/v1/listenKey") in server.calls


async def test_legacy_routes(server: ProtocolServer) -> None:
    clock = LiveClock()
    http = BinanceHttpClient(f"http://{server.url}", clock, "key", SECRET)
    spot = ListenKeyStream(Market.SPOT, clock, http, SPOT, f"ws://{server.url}", lambda d, t: None, None, FAST)
    assert spot.url_for("abc") == f"ws://{server.url}/ws/abc"
    legacy = UserStreamSettings(futures_route="legacy")
    futures = ListenKeyStream(Market.FUTURES, clock, http, FUTURES, "wss://fstream.binance.com/", lambda d, t: None,
                              None, legacy)  # fmt: skip
    assert futures.url_for("abc") == "wss://fstream.binance.com/ws/abc"
    task = asyncio.create_task(spot.run())
    try:
        await until(lambda: spot.connected)
        await until(lambda: spot.counters.keepalives >= 1)
    finally:
        spot.stop()
        await task
        await http.close()
    assert ("PUT", "/api/v3/userDataStream") in server.calls and ("DELETE", "/api/v3/userDataStream") in server.calls


async def test_spot_ws_api_subscription(server: ProtocolServer) -> None:
    clock = LiveClock()
    frames: list[bytes] = []
    server.refuse_subscriptions = 1  # the first subscription is refused: retried with backoff
    stream = WsApiUserStream(clock, f"ws://{server.url}/ws-api/v3", "key", SECRET, lambda d, t: frames.append(d),
                             None, FAST)  # fmt: skip
    task = asyncio.create_task(stream.run())
    try:
        await until(lambda: stream.connected)
        assert stream.counters.failed_connects == 1 and stream.subscription_id == 0
        request = server.subscriptions[-1]
        assert request["method"] == "userDataStream.subscribe.signature"
        assert set(request["params"]) == {"apiKey", "timestamp", "signature"}
        await server.push({"e": "outboundAccountPosition", "E": 1, "u": 1, "B": []}, wrapped=True)
        await until(lambda: len(frames) == 1)
        stream.terminated("event stream terminated")
        await until(lambda: len(server.subscriptions) == 3 and stream.connected)
    finally:
        stream.stop()
        await task

"""User-data WebSocket endpoints (spec §6): listenKey streams and the spot WebSocket API.

Paths (on both WS sites; a listenKey says which account and market it is for):
- `/ws/<listenKey>`: the legacy raw stream (spot until 2026-02-20, USD-M before the route split);
- `/private/ws/<listenKey>`, `/private/ws?listenKey=<key>[&events=...]`: USD-M private route, raw;
- `/private/stream?listenKey=<key>` or `?streams=<key>`: wrapped `{"stream": <key>, "data": ...}`;
- `/ws-api/v3`: spot WebSocket API: `userDataStream.subscribe.signature` (HMAC over the sorted
  params), `userDataStream.unsubscribe`, `session.subscriptions`, `ping`, `time`, and the legacy
  `userDataStream.start` / `.ping` / `.stop`. `session.logon` needs an Ed25519 key, which this
  simulator does not issue: it answers an error that says so.

A listenKey stream connection also accepts SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS of listenKeys
(what the Binance connectors send). Connections join the market-data hub's connection list, so pings,
pong timeouts, the 24 h cut and the plan's disconnect / stall faults apply to them as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from aiohttp import WSMsgType, web

from kestrel.core.enums import Market
from kestrel.sim.hub import Connection
from kestrel.sim.rest import BinanceError
from kestrel.sim.trading.auth import check_signature, check_timestamp

if TYPE_CHECKING:
    from kestrel.sim.trading.desk import TradingDesk

_KEY = r"{key:[A-Za-z0-9]{60,64}}"


def _rate_exceeded(connection: Connection, now_s: float, limit: int) -> bool:
    incoming = connection.incoming_s
    incoming.append(now_s)
    while incoming and incoming[0] <= now_s - 1.0:
        incoming.popleft()
    return len(incoming) > limit


def _on_pong(connection: Connection, payload: bytes) -> None:
    if connection.ping_payload is not None and (
        connection.market is Market.FUTURES or payload == connection.ping_payload
    ):
        connection.ping_payload = None


class UserConnections:
    """The handlers of one WS site (`default_market` = the market of a route-less path)."""

    def __init__(self, desk: TradingDesk, default_market: Market) -> None:
        self.desk = desk
        self.default_market = default_market
        self._ids = itertools.count(0)

    # ---- listenKey streams -----------------------------------------------------------------------
    def _market_of_key(self, key: str) -> Market:
        found = self.desk.streams.keys.get(key)
        return found.market if found is not None else self.default_market

    async def stream(self, request: web.Request) -> web.StreamResponse:
        combined = request.path.rstrip("/").endswith("/stream")
        keys = [request.match_info["key"]] if "key" in request.match_info else []
        for name in ("listenKey", "streams"):
            keys.extend(part for part in request.query.get(name, "").split("/") if part)
        streams = self.desk.streams
        unknown = [key for key in keys if key not in streams.keys]
        if unknown:
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        market = self._market_of_key(keys[0]) if keys else Market.FUTURES
        return await self._serve(request, market, combined, keys)

    async def _serve(self, request: web.Request, market: Market, combined: bool, keys: list[str]) -> web.StreamResponse:
        state = self.desk.state
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        connection = Connection(
            ws, market, None, combined, state.timeline.monotonic_s(), state.options.limits.max_outbox_frames
        )
        state.hub.add(connection)
        state.stats.connections.opened += 1
        for key in keys:
            self.desk.streams.attach(connection, key, combined)
            connection.subscriptions[key] = None
        writer = asyncio.create_task(connection.run_writer(state.timeline), name=f"sim-user-writer-{connection.id}")
        try:
            await self._receive(connection, self._control)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.desk.streams.detach(connection)
            connection.subscriptions.clear()
            state.hub.remove(connection)
            connection.request_close(connection.close_reason or "client closed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=5.0)
            state.stats.connections.closed += 1
        return ws

    async def _receive(self, connection: Connection, handle: Any, rate_limited: bool = True) -> None:
        """Read frames until the client closes. Stream connections obey the incoming message rate
        (5/s spot, 10/s USD-M); the WS API is limited by request weight instead, not simulated here."""
        state = self.desk.state
        limits = state.options.limits
        limit = limits.messages_per_s_spot if connection.market is Market.SPOT else limits.messages_per_s_futures
        async for message in connection.ws:
            if connection.closed:
                return
            if rate_limited and _rate_exceeded(connection, state.timeline.monotonic_s(), limit):
                state.stats.connections.closed_rate_limit += 1
                connection.request_close("rate limit")
                return
            if message.type is WSMsgType.TEXT:
                for frame in handle(connection, message.data):
                    connection.push(frame)
            elif message.type is WSMsgType.PING:
                await connection.ws.pong(message.data)
            elif message.type is WSMsgType.PONG:
                _on_pong(connection, message.data)

    def _control(self, connection: Connection, text: str) -> list[bytes]:
        """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS of listenKeys on a user stream connection."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return [orjson.dumps({"error": {"code": 3, "msg": f"Invalid JSON: {exc}"}, "id": None})]
        if not isinstance(request, dict) or "id" not in request:
            return [orjson.dumps({"error": {"code": 2, "msg": "Invalid request: missing field `id`"}, "id": None})]
        request_id = request["id"]
        method = request.get("method")
        params = request.get("params", [])
        streams = self.desk.streams
        if method == "LIST_SUBSCRIPTIONS":
            return [orjson.dumps({"result": list(connection.subscriptions), "id": request_id})]
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            return [orjson.dumps({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": request_id})]
        names = [name.partition("@")[0] for name in params if isinstance(name, str)]
        if method == "SUBSCRIBE":
            if any(name not in streams.keys for name in names):
                return [
                    orjson.dumps({"error": {"code": 2, "msg": "Invalid request: unknown listenKey"}, "id": request_id})
                ]
            for name in names:
                streams.attach(connection, name, connection.combined)
                connection.subscriptions[name] = None
        else:
            for name in names:
                streams.detach(connection, name)
                connection.subscriptions.pop(name, None)
        return [orjson.dumps({"result": None, "id": request_id})]

    # ---- spot WebSocket API ----------------------------------------------------------------------
    async def ws_api(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_api(request)

    async def _serve_api(self, request: web.Request) -> web.StreamResponse:
        state = self.desk.state
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        connection = Connection(
            ws, Market.SPOT, None, False, state.timeline.monotonic_s(), state.options.limits.max_outbox_frames
        )
        state.hub.add(connection)
        state.stats.connections.opened += 1
        writer = asyncio.create_task(connection.run_writer(state.timeline), name=f"sim-ws-api-writer-{connection.id}")
        try:
            await self._receive(connection, self._api_request, rate_limited=False)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.desk.streams.detach(connection)
            state.hub.remove(connection)
            connection.request_close(connection.close_reason or "client closed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=5.0)
            state.stats.connections.closed += 1
        return ws

    def _api_request(self, connection: Connection, text: str) -> list[bytes]:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [_api_error(None, 400, -1000, "Malformed request: invalid JSON.")]
        if not isinstance(request, dict):
            return [_api_error(None, 400, -1000, "Malformed request: expected a JSON object.")]
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            return [_api_error(request_id, 400, -1000, "Malformed request: params must be an object.")]
        try:
            return self._api_method(connection, request_id, str(method), {k: str(v) for k, v in params.items()})
        except BinanceError as error:
            status = error.status if error.status != 400 or error.code != -1021 else 400
            return [_api_error(request_id, status, error.code, error.message)]

    def _api_method(self, connection: Connection, request_id: Any, method: str, params: dict[str, str]) -> list[bytes]:
        desk = self.desk
        streams = desk.streams
        if method == "ping":
            return [_api_result(request_id, {})]
        if method == "time":
            return [_api_result(request_id, {"serverTime": desk.state.server_time_ms()})]
        if method == "session.logon":
            raise BinanceError(
                -1002,
                "session.logon needs an Ed25519 API key; this simulator issues HMAC keys: "
                "use userDataStream.subscribe.signature.",
            )
        if method == "userDataStream.subscribe":
            raise BinanceError(-1002, "You are not authorized to execute this request.")
        if method == "userDataStream.subscribe.signature":
            account = self._signed(params)
            if any(s.account == account for s in streams.api_subscriptions(connection)):
                raise BinanceError(-2035, "User Data Stream subscription already active.")
            subscription_id = next(self._ids)
            streams.subscribe_api(connection, subscription_id, account)
            return [_api_result(request_id, {"subscriptionId": subscription_id})]
        if method == "userDataStream.unsubscribe":
            raw_id = params.get("subscriptionId")
            removed = streams.unsubscribe_api(connection, int(raw_id) if raw_id not in (None, "") else None)
            if not removed:
                raise BinanceError(-2036, "User Data Stream subscription not active.")
            now_ms = desk.state.server_time_ms()
            frames = [
                orjson.dumps(
                    {"subscriptionId": s.subscription_id, "event": {"e": "eventStreamTerminated", "E": now_ms}}
                )
                for s in removed
            ]
            return [*frames, _api_result(request_id, {})]
        if method == "session.subscriptions":
            return [
                _api_result(
                    request_id, [{"subscriptionId": s.subscription_id} for s in streams.api_subscriptions(connection)]
                )
            ]
        if method in ("userDataStream.start", "userDataStream.ping", "userDataStream.stop"):
            return [self._legacy_key(request_id, method, params)]
        raise BinanceError(-1000, f"Unknown method '{method}'.")

    def _signed(self, params: dict[str, str]) -> str:
        """The account of a signed WS-API request: params sorted by name (signature excluded)."""
        desk = self.desk
        account = desk.credentials.account(params.get("apiKey"))
        payload = urlencode(sorted((k, v) for k, v in params.items() if k != "signature"))
        try:
            check_signature(account.api_secret, payload, params.get("signature"))
            check_timestamp(params, desk.state.server_time_ms(), Market.SPOT, desk.options.spot_max_recv_window_ms)
        except BinanceError as error:
            if error.code == -1022:
                desk.counters.signature_failures += 1
            elif error.code == -1021:
                desk.counters.timestamp_failures += 1
            raise
        return account.name

    def _legacy_key(self, request_id: Any, method: str, params: dict[str, str]) -> bytes:
        desk = self.desk
        account = desk.credentials.account(params.get("apiKey")).name
        if method == "userDataStream.start":
            return _api_result(request_id, {"listenKey": desk.streams.create(account, Market.SPOT)})
        key = params.get("listenKey", "")
        if method == "userDataStream.ping":
            desk.streams.keepalive(key, account, Market.SPOT)
        else:
            desk.streams.close(key, account, Market.SPOT)
        return _api_result(request_id, {})


def _api_result(request_id: Any, result: Any) -> bytes:
    return orjson.dumps({"id": request_id, "status": 200, "result": result, "rateLimits": []})


def _api_error(request_id: Any, status: int, code: int, message: str) -> bytes:
    return orjson.dumps({"id": request_id, "status": status, "error": {"code": code, "msg": message}})


def add_user_stream_routes(app: web.Application, desk: TradingDesk, default_market: Market, ws_api: bool) -> None:
    """Register before the market-stream routes: `/ws/<listenKey>` must win over `/ws/<streams>`."""
    handlers = UserConnections(desk, default_market)
    app.router.add_get(f"/ws/{_KEY}", handlers.stream)
    app.router.add_get("/private/ws", handlers.stream)
    app.router.add_get(f"/private/ws/{_KEY}", handlers.stream)
    app.router.add_get("/private/stream", handlers.stream)
    if ws_api:
        app.router.add_get("/ws-api/v3", handlers.ws_api)

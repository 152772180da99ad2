"""Market-stream WebSocket endpoints (spec §1): raw `/ws/<streams>`, combined `/stream?streams=`,
USD-M routes `/public` and `/market`, control messages, and the limits the exchange enforces.

Paths, per WS site:
- the shared site (spot base; USD-M when a route is given): `/ws[/<s1>/<s2>...]`, `/stream?streams=..`
  are spot; `/public/...` and `/market/...` are USD-M;
- the USD-M site: the same paths without a route are USD-M with `/public` semantics (a route-less
  futures connection only receives /public streams; spec §1.1).

Control messages (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`)
answer `{"result": ..., "id": ...}`; errors answer `{"error": {"code": N, "msg": ...}, "id": ...}`, the
shape the live servers send (the docs' table prints the inner object only): code 0 unknown property,
1 wrong value type, 2 invalid request, 3 invalid JSON. A SUBSCRIBE that would pass the per-connection
stream cap is refused whole with code 4 "Too many subscriptions" (observed on the live server; a
connection URL naming too many streams is refused at the handshake with HTTP 400).

Limits: more incoming messages per second than allowed (pings, pongs and control messages all count)
closes the connection (code 1008); the server pings at the market's cadence and closes a connection
that leaves a ping unanswered past the timeout (spot needs a pong echoing the ping's payload; USD-M
market streams accept any pong); every connection is cut at the 24 h mark; more than 300 new
connections per 5 minutes are refused with HTTP 429. All durations follow `time_scale`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from kestrel.core.enums import Market
from kestrel.core.logs import get_logger
from kestrel.sim.hub import RATE_LIMIT, SLOW_CONSUMER, Connection
from kestrel.sim.state import SimulatorState
from kestrel.sim.streams import Route, is_valid_name

log = get_logger(__name__)

_METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class WsSite:
    """Which market a route-less path belongs to on one listening socket."""

    default_market: Market


def _error(code: int, message: str, request_id: Any) -> bytes:
    return orjson.dumps({"error": {"code": code, "msg": message}, "id": request_id})


def _valid_id(value: Any, market: Market) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return (0 <= value < 2**64) if market is Market.FUTURES else (-_INT64 <= value < _INT64)
    if isinstance(value, str) and market is Market.SPOT:
        return 0 < len(value) <= 36 and value.isalnum() and value.isascii()
    return False


class ControlHandler:
    """Answers the control messages of one connection."""

    def __init__(self, state: SimulatorState, connection: Connection) -> None:
        self.state = state
        self.connection = connection

    def handle(self, text: str) -> bytes:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return _error(3, f"Invalid JSON: {exc}", None)
        if not isinstance(request, dict):
            return _error(2, "Invalid request: expected a JSON object", None)
        connection = self.connection
        if "id" not in request or not _valid_id(request["id"], connection.market):
            return _error(2, "Invalid request: request ID must be an unsigned integer", request.get("id"))
        request_id = request["id"]
        method = request.get("method")
        if method is None:
            return _error(2, "Invalid request: missing field `method`", request_id)
        params = request.get("params", [])
        if method == "SUBSCRIBE":
            return self._subscribe(params, request_id)
        if method == "UNSUBSCRIBE":
            if not isinstance(params, list) or not all(isinstance(name, str) for name in params):
                return _error(2, "Invalid request: params must be a list of stream names", request_id)
            for name in params:
                self.state.hub.unsubscribe(connection, name)
            return orjson.dumps({"result": None, "id": request_id})
        if method == "LIST_SUBSCRIPTIONS":
            return orjson.dumps({"result": list(connection.subscriptions), "id": request_id})
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(method, params, request_id)
        return _error(2, f"Invalid request: unknown variant `{method}`, expected one of {_METHODS}", request_id)

    def _subscribe(self, params: Any, request_id: Any) -> bytes:
        if not isinstance(params, list) or not params or not all(is_valid_name(name) for name in params):
            return _error(2, "Invalid request: params must be a list of valid stream names", request_id)
        connection = self.connection
        new = [name for name in dict.fromkeys(params) if name not in connection.subscriptions]
        if len(connection.subscriptions) + len(new) > self.state.options.limits.streams_per_connection:
            self.state.stats.connections.rejected_too_many_streams += 1
            return _error(4, "Too many subscriptions", request_id)
        for name in new:
            self.state.hub.subscribe(connection, name)
        return orjson.dumps({"result": None, "id": request_id})

    def _property(self, method: str, params: Any, request_id: Any) -> bytes:
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            return _error(2, "Invalid request: property name must be a string", request_id)
        if params[0] != "combined":
            return _error(0, "Unknown property", request_id)
        if method == "GET_PROPERTY":
            return orjson.dumps({"result": self.connection.combined, "id": request_id})
        if len(params) != 2:
            return _error(
                2, "Invalid request: too many parameters" if len(params) > 2 else "Invalid request", request_id
            )
        if not isinstance(params[1], bool):
            return _error(1, "Invalid value type: expected Boolean", request_id)
        self.connection.combined = params[1]
        return orjson.dumps({"result": None, "id": request_id})


def _streams_of(request: web.Request, combined: bool) -> list[str]:
    raw = request.query.get("streams", "") if combined else request.match_info.get("streams", "")
    return [name for name in raw.split("/") if name]


def _admit(state: SimulatorState, now_s: float) -> bool:
    """The per-IP new-connection budget (300 per 5 minutes)."""
    window = state.options.scaled(300.0)
    times = state.connection_times_s
    while times and times[0] <= now_s - window:
        times.popleft()
    if len(times) >= state.options.limits.connections_per_5min:
        return False
    times.append(now_s)
    return True


def _over_rate(connection: Connection, now_s: float, limit: int) -> bool:
    incoming = connection.incoming_s
    incoming.append(now_s)
    while incoming and incoming[0] <= now_s - 1.0:
        incoming.popleft()
    return len(incoming) > limit


async def handle_stream_connection(request: web.Request, state: SimulatorState, site: WsSite) -> web.StreamResponse:
    route_text = request.match_info.get("route")
    route = Route(route_text) if route_text else None
    market = Market.FUTURES if route is not None else site.default_market
    combined = request.path.rstrip("/").endswith("/stream")
    streams = _streams_of(request, combined)
    now_s = state.timeline.monotonic_s()
    limits = state.options.limits
    if len(dict.fromkeys(streams)) > limits.streams_per_connection:
        state.stats.connections.rejected_too_many_streams += 1
        return web.json_response({"code": 4, "msg": "Too many subscriptions"}, status=400)
    if not _admit(state, now_s):
        state.stats.connections.rejected_too_many_connections += 1
        return web.json_response({"code": -1003, "msg": "Too many new connections"}, status=429)
    ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    connection = Connection(ws, market, route, combined, now_s, limits.max_outbox_frames, request.transport)
    state.hub.add(connection)
    state.stats.connections.opened += 1
    for name in dict.fromkeys(streams):
        if is_valid_name(name):
            state.hub.subscribe(connection, name)
    writer = asyncio.create_task(connection.run_writer(state.timeline), name=f"sim-ws-writer-{connection.id}")
    try:
        await _receive(state, connection)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        state.hub.remove(connection)
        connection.request_close(connection.close_reason or "client closed")
        if connection.close_reason == SLOW_CONSUMER:
            state.stats.connections.closed_slow_consumer += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer, timeout=5.0)
        state.stats.connections.closed += 1
    return ws


async def _receive(state: SimulatorState, connection: Connection) -> None:
    """Read the client's frames until it closes, enforcing the incoming message rate."""
    limits = state.options.limits
    rate_limit = limits.messages_per_s_spot if connection.market is Market.SPOT else limits.messages_per_s_futures
    controls = ControlHandler(state, connection)
    ws = connection.ws
    async for message in ws:
        if connection.closed:
            return
        if _over_rate(connection, state.timeline.monotonic_s(), rate_limit):
            state.stats.connections.closed_rate_limit += 1
            connection.request_close(RATE_LIMIT)
            return
        if message.type is WSMsgType.TEXT:
            state.stats.connections.control_messages += 1
            connection.push(controls.handle(message.data))
        elif message.type is WSMsgType.BINARY:
            connection.push(_error(3, "Invalid JSON: expected a text frame", None))
        elif message.type is WSMsgType.PING:
            await ws.pong(message.data)
        elif message.type is WSMsgType.PONG:
            _on_pong(connection, message.data)


def _on_pong(connection: Connection, payload: bytes) -> None:
    if connection.ping_payload is None:
        return
    # spot: only a pong copying the ping's payload answers it; USD-M market streams accept any pong
    if connection.market is Market.FUTURES or payload == connection.ping_payload:
        connection.ping_payload = None


async def housekeeping(state: SimulatorState) -> None:
    """Server pings, pong timeouts and the 24 h cut, for every connection."""
    options = state.options
    limits = options.limits
    cadence = {
        Market.SPOT: (
            options.scaled_ping(limits.ping_interval_s_spot),
            options.scaled_ping(limits.pong_timeout_s_spot),
        ),
        Market.FUTURES: (
            options.scaled_ping(limits.ping_interval_s_futures),
            options.scaled_ping(limits.pong_timeout_s_futures),
        ),
    }
    lifetime = options.scaled(limits.connection_lifetime_s)
    tick = max(0.005, min(0.25, lifetime / 20, min(interval for interval, _ in cadence.values()) / 4))
    while True:
        await asyncio.sleep(tick)
        now_s = state.timeline.monotonic_s()
        for connection in list(state.hub.connections.values()):
            if connection.closed:
                continue
            if now_s - connection.opened_s >= lifetime:
                state.stats.connections.closed_lifetime += 1
                connection.request_close("24h connection lifetime")
                continue
            interval, timeout = cadence[connection.market]
            if connection.ping_payload is not None and now_s - connection.ping_sent_s > timeout:
                state.stats.connections.closed_ping_timeout += 1
                connection.request_close("pong timeout")
                continue
            if now_s - connection.last_ping_s >= interval:
                payload = str(state.server_time_ms()).encode()
                connection.last_ping_s = now_s
                if connection.ping_payload is None:
                    connection.ping_sent_s = now_s
                connection.ping_payload = payload
                with contextlib.suppress(Exception):
                    await connection.ws.ping(payload)


def add_stream_routes(app: web.Application, state: SimulatorState, site: WsSite) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await handle_stream_connection(request, state, site)

    for prefix in ("", "/{route:public|market}"):
        app.router.add_get(f"{prefix}/ws", handler)
        app.router.add_get(f"{prefix}/ws/{{streams:.+}}", handler)
        app.router.add_get(f"{prefix}/stream", handler)

"""Market-data REST routes of the simulator, spot `/api/v3/...` and USD-M `/fapi/v1/...` (spec §4, §5).

Every response carries `X-MBX-USED-WEIGHT-1M` (the market's weight used in the current minute).
Going over the minute's REQUEST_WEIGHT answers HTTP 429 (-1003, `Retry-After` = seconds to the next
window); a client that keeps sending while limited is banned: HTTP 418 until the ban ends, as the
exchange does (first ban 2 minutes; durations follow `time_scale`). Injected REST faults (5xx, 429,
418) are decided after the weight is counted, and counted in the stats.

Errors use Binance's body `{"code": <negative>, "msg": ...}` with HTTP 400 for client errors.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from kestrel.core.enums import Market
from kestrel.sim.state import BookUnavailable, SimulatorState, UnknownSymbol
from kestrel.sim.streams import KLINE_INTERVALS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WeightRule = Callable[[web.Request], int]

STATE_KEY = web.AppKey("kestrel_sim_state", SimulatorState)
_weights: dict[str, WeightRule] = {}  # path → weight rule, filled by `add_route`


class BinanceError(Exception):
    """An error answered with Binance's JSON body."""

    def __init__(self, code: int, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(body=data, status=status, content_type="application/json", headers=headers)


def _market_of(path: str) -> Market | None:
    if path.startswith("/fapi/"):
        return Market.FUTURES
    if path.startswith(("/api/", "/sapi/")):  # SAPI (wallet) lives on the spot host
        return Market.SPOT
    return None


# ---- parameters ---------------------------------------------------------------------------------
def _integer(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


def _limit(request: web.Request, default: int, maximum: int) -> int:
    value = _integer(request, "limit", default)
    assert value is not None
    if value < 1:
        raise BinanceError(-1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")
    return min(value, maximum)


def _symbol(request: web.Request, required: bool = True) -> str | None:
    raw = request.query.get("symbol")
    if not raw:
        if required:
            raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return None
    state = request.app[STATE_KEY]
    market = _market_of(request.path)
    assert market is not None
    symbol = raw.upper()
    if symbol not in {spec.symbol for spec in state.source.specs(market)}:
        raise BinanceError(-1121, "Invalid symbol.")
    return symbol


# ---- route registry -----------------------------------------------------------------------------
def _constant_weight(value: int) -> WeightRule:
    def rule(request: web.Request) -> int:
        return value

    return rule


def add_route(app: web.Application, method: str, path: str, handler: Handler, weight: WeightRule | int) -> None:
    """Register a Binance REST route with its request weight (an int or a rule of the request).
    The trading half of the simulator registers its routes through this too."""
    _weights[path] = weight if callable(weight) else _constant_weight(weight)
    app.router.add_route(method, path, handler)


def _depth_weight(request: web.Request) -> int:
    try:
        limit = int(request.query.get("limit", "0") or 0)
    except ValueError:
        limit = 0
    if _market_of(request.path) is Market.SPOT:
        limit = limit or 100
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    limit = limit or 500
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def _klines_weight(request: web.Request) -> int:
    if _market_of(request.path) is Market.SPOT:
        return 2
    try:
        limit = int(request.query.get("limit", "500") or 500)
    except ValueError:
        limit = 500
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


# ---- handlers -----------------------------------------------------------------------------------
async def _ping(request: web.Request) -> web.Response:
    return json_response({})


async def _time(request: web.Request) -> web.Response:
    return json_response({"serverTime": request.app[STATE_KEY].server_time_ms()})


async def _exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    market = _market_of(request.path)
    assert market is not None
    document = state.source.exchange_info(market, state.server_time_ms())
    if market is Market.SPOT and ("symbol" in request.query or "symbols" in request.query):
        wanted = _requested_symbols(request)
        known = {entry["symbol"]: entry for entry in document["symbols"]}
        missing = [name for name in wanted if name not in known]
        if missing:
            raise BinanceError(-1121, "Invalid symbol.")
        document = {**document, "symbols": [known[name] for name in wanted]}
    return json_response(document)


def _requested_symbols(request: web.Request) -> list[str]:
    if "symbol" in request.query:
        return [request.query["symbol"]]
    try:
        value = orjson.loads(request.query["symbols"])
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise BinanceError(
            -1100,
            "Illegal characters found in parameter 'symbols'; expected a JSON array of symbol names.",
        )
    return list(value)


async def _depth(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    market = _market_of(request.path)
    assert market is not None
    symbol = _symbol(request)
    assert symbol is not None
    limit = _limit(request, 100 if market is Market.SPOT else 500, 5000 if market is Market.SPOT else 1000)
    stale = state.faults.plan.stale_snapshot_age_ms if state.faults.stale_snapshot() else 0
    if state.depth_gate is not None:
        await state.depth_gate(market, symbol)
    body, served_stale = state.source.depth_snapshot(market, symbol, limit, stale)
    state.stats.rest.snapshots_served += 1
    if served_stale:
        state.stats.rest.stale_snapshots_injected += 1
    return json_response(body)


async def _klines(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    market = _market_of(request.path)
    assert market is not None
    symbol = _symbol(request)
    assert symbol is not None
    interval = request.query.get("interval")
    if not interval:
        raise BinanceError(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
    if interval not in KLINE_INTERVALS:
        raise BinanceError(-1120, "Invalid interval.")
    limit = _limit(request, 500, 1000 if market is Market.SPOT else 1500)
    start_ms, end_ms = _integer(request, "startTime"), _integer(request, "endTime")
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise BinanceError(-1023, "Start time is greater than end time.")
    return json_response(state.source.klines(market, symbol, interval, start_ms, end_ms, limit))


async def _agg_trades(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    market = _market_of(request.path)
    assert market is not None
    symbol = _symbol(request)
    assert symbol is not None
    limit = _limit(request, 500, 1000)
    from_id = _integer(request, "fromId")
    start_ms, end_ms = _integer(request, "startTime"), _integer(request, "endTime")
    if start_ms is not None and end_ms is not None:
        if start_ms > end_ms:
            raise BinanceError(-1023, "Start time is greater than end time.")
        if end_ms - start_ms > 3_600_000:
            raise BinanceError(-1127, "More than 1 hours between startTime and endTime.")
    rows = state.source.agg_trades(market, symbol)
    if from_id is not None:
        rows = [row for row in rows if int(row["a"]) >= from_id]  # type: ignore[call-overload]
    elif start_ms is not None or end_ms is not None:
        low = start_ms if start_ms is not None else (end_ms or 0) - 3_600_000
        high = end_ms if end_ms is not None else low + 3_600_000
        rows = [row for row in rows if low <= int(row["T"]) <= high]  # type: ignore[call-overload]
    else:
        rows = rows[-limit:]
    return json_response(rows[:limit])


async def _premium_index(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    symbol = _symbol(request, required=False)
    rows = state.source.premium_index(symbol)
    return json_response(rows[0] if symbol and rows else rows)


def _premium_weight(request: web.Request) -> int:
    return 1 if request.query.get("symbol") else 10


async def _funding_rate(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    symbol = _symbol(request, required=False)
    limit = _limit(request, 100, 1000)
    start_ms, end_ms = _integer(request, "startTime"), _integer(request, "endTime")
    rows = state.source.funding_rates(symbol)
    if end_ms is not None:
        rows = [row for row in rows if int(row["fundingTime"]) <= end_ms]  # type: ignore[call-overload]
    if start_ms is not None:
        rows = [row for row in rows if int(row["fundingTime"]) >= start_ms][:limit]  # type: ignore[call-overload]
    else:
        rows = rows[-limit:]
    return json_response(rows)


async def _open_interest(request: web.Request) -> web.Response:
    symbol = _symbol(request)
    assert symbol is not None
    return json_response(request.app[STATE_KEY].source.open_interest(symbol))


async def _funding_info(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return json_response(
        [
            {
                "symbol": spec.symbol,
                "adjustedFundingRateCap": "0.02000000",
                "adjustedFundingRateFloor": "-0.02000000",
                "fundingIntervalHours": 8,
                "disclaimer": False,
            }
            for spec in state.source.specs(Market.FUTURES)
        ]
    )


# ---- weights, limits and faults -----------------------------------------------------------------
def _limited(status: int, message: str, retry_after_s: float, used: int) -> web.Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after_s))), "X-MBX-USED-WEIGHT-1M": str(used)}
    return json_response({"code": -1003, "msg": message}, status=status, headers=headers)


_FAULT_BODIES = {
    500: (-1000, "An unknown error occured while processing the request."),
    502: (-1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
    503: (-1008, "Service Unavailable."),
    504: (-1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
}


@web.middleware
async def binance_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    market = _market_of(request.path)
    rule = _weights.get(request.path)
    if market is None or rule is None:
        return await handler(request)
    state.stats.rest.requests += 1
    window = state.weights[market]
    now_s = state.timeline.monotonic_s()
    if window.banned_until_s > now_s:
        until_ms = state.server_time_ms() + int((window.banned_until_s - now_s) * 1000)
        state.stats.rest.banned_418 += 1
        return _limited(
            418,
            f"Way too many requests; IP(127.0.0.1) banned until {until_ms}.",
            window.banned_until_s - now_s,
            window.used,
        )
    used = window.add(rule(request), now_s)
    if used > window.limit:
        window.over_limit_requests += 1
        if window.over_limit_requests > state.options.limits.requests_over_limit_before_ban:
            ban_s = state.options.scaled(state.options.limits.ban_s)
            window.banned_until_s = now_s + ban_s
            window.over_limit_requests = 0
            state.stats.rest.banned_418 += 1
            return _limited(418, "Way too many requests; IP(127.0.0.1) banned.", ban_s, used)
        state.stats.rest.rate_limited_429 += 1
        message = f"Too many requests; current limit of IP(127.0.0.1) request weight per 1 MINUTE is {window.limit}."
        return _limited(429, message, window.seconds_to_reset(now_s), used)
    weight_header = {"X-MBX-USED-WEIGHT-1M": str(used)}
    injected = state.faults.rest_fault()
    if injected is not None:
        return _injected_fault(state, injected, used)
    try:
        response = await handler(request)
    except BinanceError as error:
        response = json_response({"code": error.code, "msg": error.message}, status=error.status, headers=error.headers)
    except UnknownSymbol:
        response = json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
    except BookUnavailable as exc:
        response = json_response({"code": -1000, "msg": f"Book unavailable: {exc}."}, status=503)
    response.headers.update(weight_header)
    return response


def _injected_fault(state: SimulatorState, status: int, used: int) -> web.Response:
    retry_after = state.faults.plan.retry_after_s
    if status == 429:
        state.stats.rest.errors_429_injected += 1
        return _limited(429, "Too many requests (injected).", retry_after, used)
    if status == 418:
        state.stats.rest.errors_418_injected += 1
        return _limited(418, "Way too many requests; IP(127.0.0.1) banned (injected).", retry_after, used)
    state.stats.rest.errors_5xx_injected += 1
    code, message = _FAULT_BODIES.get(status, (-1000, "An unknown error occured while processing the request."))
    return json_response({"code": code, "msg": message}, status=status, headers={"X-MBX-USED-WEIGHT-1M": str(used)})


def register_market_routes(app: web.Application, state: SimulatorState) -> None:
    """Add the market-data REST routes of both markets to `app` (which must use `binance_middleware`)."""
    app[STATE_KEY] = state
    for prefix, exchange_info_weight, agg_weight in (("/api/v3", 20, 4), ("/fapi/v1", 1, 20)):
        add_route(app, "GET", f"{prefix}/ping", _ping, 1)
        add_route(app, "GET", f"{prefix}/time", _time, 1)
        add_route(app, "GET", f"{prefix}/exchangeInfo", _exchange_info, exchange_info_weight)
        add_route(app, "GET", f"{prefix}/depth", _depth, _depth_weight)
        add_route(app, "GET", f"{prefix}/klines", _klines, _klines_weight)
        add_route(app, "GET", f"{prefix}/aggTrades", _agg_trades, agg_weight)
    add_route(app, "GET", "/fapi/v1/premiumIndex", _premium_index, _premium_weight)
    add_route(app, "GET", "/fapi/v1/fundingRate", _funding_rate, 1)
    add_route(app, "GET", "/fapi/v1/fundingInfo", _funding_info, 1)
    add_route(app, "GET", "/fapi/v1/openInterest", _open_interest, 1)

"""The common path of every trading REST request.

`trading_route(desk, endpoint, handler)` makes an aiohttp handler that reads the parameters (query +
form body), authenticates (key, signature, timestamp), brings the market up to now, applies the
order-count limit and the order faults, runs `handler(call)`, and answers with the exchange's JSON.
Refusals are `BinanceError`s (the market-data middleware writes them, with the weight header, and
applies the IP weight limits and the general REST faults before we run). An engine refusal
(`InvalidOrderError`) becomes its exchange code and message, HTTP 400.

Order faults (`desk.order_fault()`): `5xx_unplaced` answers before anything happens, `5xx_placed`
after the order was placed (the client cannot know it was), `timeout` after placing it stalls and then
closes the connection without an answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kestrel.binance.http.endpoints import Endpoint
from kestrel.core.enums import Market
from kestrel.core.errors import InvalidOrderError
from kestrel.core.orders import Fill
from kestrel.core.venue import OrderSnapshot, OrderUpdate
from kestrel.matching.base import EngineEvent
from kestrel.sim.rest import BinanceError, json_response
from kestrel.sim.trading import params as p
from kestrel.sim.trading.auth import RawRequest, authenticate, read_request
from kestrel.sim.trading.options import SimAccount

if TYPE_CHECKING:
    from kestrel.sim.trading.desk import PendingFault, TradingDesk

_FILTER_FAILURE = re.compile(r"Filter failure: ([A-Z_]+)")
_FUTURES_MESSAGES = {  # the exchange's wording of the filter codes (error-code list)
    -4003: "Quantity less than or equal to zero.",
    -4004: "Quantity less than min qty.",
    -4005: "Quantity greater than max qty.",
    -4013: "Price less than min price.",
    -4014: "Price not increased by tick size.",
    -4023: "Qty not increased by step size.",
}
_FAULT_BODIES = {
    500: (-1000, "An unknown error occured while processing the request."),
    502: (-1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
    503: (-1008, "Service Unavailable."),
    504: (-1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
}


@dataclass(slots=True)
class Call:
    """One authenticated request, as a handler sees it."""

    desk: TradingDesk
    endpoint: Endpoint
    market: Market
    params: dict[str, str]
    account: SimAccount | None
    ts: int  # engine time of the request (ns)
    headers: dict[str, str] = field(default_factory=dict)
    placed_order_ids: list[int] = field(default_factory=list)  # for the order-count limit

    @property
    def account_id(self) -> str:
        assert self.account is not None, "an unauthenticated endpoint has no account"
        return self.account.name

    def symbol(self, required: bool = True) -> str | None:
        raw = self.params.get("symbol")
        if not raw:
            if required:
                raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        symbol = raw.upper()
        if not self.desk.has_symbol(self.market, symbol):
            raise BinanceError(-1121, "Invalid symbol.")
        return symbol

    def required_symbol(self) -> str:
        symbol = self.symbol(required=True)
        assert symbol is not None
        return symbol

    @property
    def server_ms(self) -> int:
        return self.desk.to_ms(self.ts)


Handler = Callable[[Call], Awaitable[Any]]


def _market_of(path: str) -> Market:
    return Market.FUTURES if path.startswith("/fapi/") else Market.SPOT


def _fault_response(status: int, placed: bool = False) -> web.Response:
    code, message = _FAULT_BODIES.get(status, (-1000, "An unknown error occured while processing the request."))
    if placed and code == -1008:  # the order exists: the exchange says the outcome is unknown
        code, message = -1006, "An unexpected response was received from the message bus. Execution status unknown."
    return json_response({"code": code, "msg": message}, status=status)


LOCKSTEP_ONLY = "lockstep mode trades USD-M regular orders only (new order, cancel by origClientOrderId)"


def trading_route(
    desk: TradingDesk, endpoint: Endpoint, handler: Handler
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    market = _market_of(endpoint.path)
    max_window = desk.options.spot_max_recv_window_ms if market is Market.SPOT else 10**12

    async def handle(request: web.Request) -> web.StreamResponse:
        lockstep = desk.lockstep
        if lockstep is None or not lockstep.paces(endpoint.name, market):
            if lockstep is not None and endpoint.orders:  # would bypass SimVenue's latencies: refuse
                return json_response({"code": -1000, "msg": LOCKSTEP_ONLY}, status=400)
            return await answer(request)
        held_before = lockstep.counters.commands
        try:
            return await answer(request)
        finally:  # answered at once (refused before reaching the engine): the client counts it too
            if lockstep.counters.commands == held_before:
                lockstep.count_immediate()

    async def answer(request: web.Request) -> web.StreamResponse:
        raw = await read_request(request)
        account = _authenticate(desk, endpoint, raw, market, max_window)
        call = Call(desk, endpoint, market, raw.params, account, desk.sync())
        fault = None
        if endpoint.orders and account is not None:
            _check_order_rate(desk, call, endpoint.orders)
            fault = desk.order_fault()
            if fault is not None and fault.kind == "5xx_unplaced":
                desk.counters.order_5xx_unplaced_injected += 1
                return _fault_response(fault.status)
        try:
            body = await handler(call)
        except InvalidOrderError as error:
            if endpoint.orders:
                desk.counters.orders_rejected += 1
            raise _refusal(error, market) from None
        if endpoint.orders and account is not None:
            desk.limiter.count(account.name, market, endpoint.orders, call.server_ms, call.placed_order_ids)
            call.headers.update(desk.limiter.headers(account.name, market, call.server_ms))
        if fault is not None:
            return await _placed_fault(desk, request, fault)
        return json_response(body, headers=call.headers or None)

    return handle


def _refusal(error: InvalidOrderError, market: Market) -> BinanceError:
    """The engine's refusal as the exchange words it (spot filter failures are just "Filter failure: X")."""
    code = error.code if error.code is not None else -1013
    message = str(error)
    if market is Market.SPOT and code == -1013:
        match = _FILTER_FAILURE.search(message)
        if match is not None:
            message = f"Filter failure: {match.group(1)}"
    elif market is Market.FUTURES:
        message = _FUTURES_MESSAGES.get(code, message)
    return BinanceError(code, message)


def _authenticate(
    desk: TradingDesk, endpoint: Endpoint, raw: RawRequest, market: Market, max_window: int
) -> SimAccount | None:
    counters = desk.counters
    try:
        return authenticate(endpoint, raw, desk.credentials, desk.state.server_time_ms(), market, max_window)
    except BinanceError as error:
        if error.code == -1022:
            counters.signature_failures += 1
        elif error.code == -1021:
            counters.timestamp_failures += 1
        elif error.code in (-2014, -2015):
            counters.key_failures += 1
        raise


async def _placed_fault(desk: TradingDesk, request: web.Request, fault: PendingFault) -> web.StreamResponse:
    """The order was placed; the client is told nothing useful: a 5xx, or no answer at all."""
    if fault.kind == "5xx_placed":
        desk.counters.order_5xx_placed_injected += 1
        return _fault_response(fault.status, placed=True)
    desk.counters.order_timeouts_injected += 1
    await asyncio.sleep(fault.stall_s)
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


def _check_order_rate(desk: TradingDesk, call: Call, orders: int) -> None:
    """-1015 past an order-count window; a client that keeps sending gets the IP banned (418)."""
    account = call.account_id
    exceeded = desk.limiter.exceeded(account, call.market, orders, call.server_ms)
    if exceeded is None:
        return
    message, retry_s = exceeded
    desk.counters.order_rate_limited_429 += 1
    state = desk.state
    window = state.weights[call.market]
    window.over_limit_requests += 1
    if window.over_limit_requests > state.options.limits.requests_over_limit_before_ban:
        window.banned_until_s = state.timeline.monotonic_s() + state.options.scaled(state.options.limits.ban_s)
        window.over_limit_requests = 0
    headers = {"Retry-After": str(int(retry_s))}
    headers.update(desk.limiter.headers(account, call.market, call.server_ms))
    raise BinanceError(-1015, message, status=429, headers=headers)


def accepted_order_id(events: list[EngineEvent]) -> int:
    for event in events:
        if isinstance(event, OrderUpdate) and event.order.order_id:
            return event.order.order_id
    raise InvalidOrderError("The order was not accepted.", -1000)


def fills_of(events: list[EngineEvent], order_id: int) -> list[Fill]:
    return [
        event.fill
        for event in events
        if isinstance(event, OrderUpdate) and event.order.order_id == order_id and event.fill is not None
    ]


def order_history(call: Call, orders: list[OrderSnapshot]) -> list[OrderSnapshot]:
    """allOrders filters: `orderId` (from it on), `startTime`/`endTime`, `limit` (default 500, max 1000)."""
    limit = min(p.integer(call.params, "limit") or 500, 1000)
    from_id = p.integer(call.params, "orderId")
    start_ms = p.integer(call.params, "startTime")
    end_ms = p.integer(call.params, "endTime")
    desk = call.desk
    rows = sorted(orders, key=lambda o: o.order_id)
    if from_id is not None:
        return [o for o in rows if o.order_id >= from_id][:limit]
    if start_ms is not None:
        rows = [o for o in rows if desk.to_ms(o.ts_created) >= start_ms]
    if end_ms is not None:
        rows = [o for o in rows if desk.to_ms(o.ts_created) <= end_ms]
    return rows[:limit] if start_ms is not None else rows[-limit:]


def trade_history(call: Call, symbol: str) -> list[tuple[Fill, OrderSnapshot]]:
    """myTrades / userTrades filters: `orderId`, `fromId` (trade id), `startTime`/`endTime`, `limit`
    (default 500, max 1000); the most recent trades without `fromId` or a start."""
    desk = call.desk
    limit = min(p.integer(call.params, "limit") or 500, 1000)
    order_id = p.integer(call.params, "orderId")
    from_id = p.integer(call.params, "fromId")
    start_ms = p.integer(call.params, "startTime")
    end_ms = p.integer(call.params, "endTime")
    rows = [
        (fill, order)
        for fill, order in desk.trades.get((call.account_id, call.market), [])
        if fill.symbol == symbol and (order_id is None or order.order_id == order_id)
    ]
    if from_id is not None:
        return [row for row in rows if int(row[0].trade_id) >= from_id][:limit]
    if start_ms is not None:
        rows = [row for row in rows if desk.to_ms(row[0].ts_event) >= start_ms]
    if end_ms is not None:
        rows = [row for row in rows if desk.to_ms(row[0].ts_event) <= end_ms]
    return rows[:limit] if start_ms is not None else rows[-limit:]

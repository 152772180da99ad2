"""Spot trading REST routes (`/api/v3/...`, spec §5.6-§5.10).

Orders go to the matching engine under the requesting account; the engine's refusals come back with
the exchange's codes (filters -1013, balance / duplicate / would-trigger / would-take -2010, unknown
order -2011 on cancel and -2013 on query). Responses use the exchange's field names and 8-decimal
strings; FULL new-order responses carry the fills of that request.
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from kestrel.core.enums import Market, OrderStatus, Side
from kestrel.core.errors import InvalidOrderError
from kestrel.core.venue import AccountUpdate, AccountUpdateReason, OrderSnapshot, OrderUpdate
from kestrel.matching.orders import validate_shape
from kestrel.sim.rest import BinanceError, add_route
from kestrel.sim.trading import params as p
from kestrel.sim.trading import wire_spot
from kestrel.sim.trading.desk import TradingDesk
from kestrel.sim.trading.endpoints import WeightTable, trading_endpoints
from kestrel.sim.trading.http import (
    Call,
    Handler,
    accepted_order_id,
    fills_of,
    order_history,
    trade_history,
    trading_route,
)

SPOT = Market.SPOT
_cancel_ids = itertools.count(1)


def _snapshot(call: Call, symbol: str, order_id: int | None, client_id: str | None) -> OrderSnapshot:
    try:
        return call.desk.engine.query_order(
            call.account_id, call.market, symbol, order_id=order_id, client_order_id=client_id
        )
    except InvalidOrderError:
        raise BinanceError(-2013, "Order does not exist.") from None


def _order_ids(call: Call) -> tuple[int | None, str | None]:
    order_id = p.integer(call.params, "orderId")
    client_id = p.text(call.params, "origClientOrderId")
    if order_id is None and client_id is None:
        raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    return order_id, client_id


def _query_body(call: Call, order: OrderSnapshot) -> dict[str, Any]:
    desk = call.desk
    return wire_spot.order_query(order, desk.numbers(SPOT, order.symbol), desk.extras_of(order.order_id), desk.to_ms)


# ---- orders -----------------------------------------------------------------------------------------
async def new_order(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    request = p.spot_order(call.params, symbol)
    response_type = p.spot_response_type(call.params, request.order_type)
    desk.activate(SPOT, symbol, call.ts)
    events = desk.engine.submit_order(call.account_id, request, call.ts)
    order_id = accepted_order_id(events)
    extras = desk.extras_of(order_id)
    if request.quote_order_quantity is not None:
        extras.quote_order_quantity = request.quote_order_quantity
    desk.counters.orders_placed += 1
    call.placed_order_ids.append(order_id)
    desk.dispatch(events)
    order = desk.engine.query_order(call.account_id, SPOT, symbol, order_id=order_id)
    numbers = desk.numbers(SPOT, symbol)
    return wire_spot.order_result(
        order, numbers, extras, fills_of(events, order_id), response_type, call.server_ms, desk.to_ms
    )


async def test_order(call: Call) -> dict[str, Any]:
    """Validate like a new order, place nothing (the engine is not touched)."""
    symbol = call.required_symbol()
    request = p.spot_order(call.params, symbol)
    validate_shape(request, call.desk.engine.instrument(SPOT, symbol), call.ts)
    return {}


async def cancel_order(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    order_id, client_id = _order_ids(call)
    try:
        current = desk.engine.query_order(call.account_id, SPOT, symbol, order_id=order_id, client_order_id=client_id)
    except InvalidOrderError:
        raise BinanceError(-2011, "Unknown order sent.") from None
    restriction = p.text(call.params, "cancelRestrictions")
    if restriction is not None:
        allowed = {"ONLY_NEW": OrderStatus.NEW, "ONLY_PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED}.get(restriction)
        if allowed is None:
            raise BinanceError(-1100, "Illegal characters found in parameter 'cancelRestrictions'.")
        if current.status is not allowed:
            raise BinanceError(-2011, "Order was not canceled due to cancel restrictions.")
    extras = desk.extras_of(current.order_id)
    extras.cancel_client_id = p.text(call.params, "newClientOrderId") or f"sim-cancel-{next(_cancel_ids)}"
    events = desk.engine.cancel_order(call.account_id, SPOT, symbol, call.ts, order_id=current.order_id)
    desk.counters.cancels += 1
    desk.dispatch(events)
    order = desk.engine.query_order(call.account_id, SPOT, symbol, order_id=current.order_id)
    return wire_spot.cancel_result(order, desk.numbers(SPOT, symbol), extras, call.server_ms)


async def amend_order(call: Call) -> dict[str, Any]:
    """Keep-priority amend: a smaller quantity, same price, same place in the queue."""
    desk = call.desk
    symbol = call.required_symbol()
    order_id, client_id = _order_ids(call)
    new_quantity = p.decimal(call.params, "newQty", p.SPOT_DECIMALS)
    if new_quantity is None:
        raise p.mandatory("newQty")
    current = _snapshot(call, symbol, order_id, client_id)
    if not current.is_open:
        raise BinanceError(-2013, "Order does not exist.")
    if new_quantity >= current.quantity:
        raise BinanceError(-2038, "Order amend (quantity increase) is not supported.")
    events = desk.engine.modify_order(
        call.account_id, SPOT, symbol, call.ts, order_id=current.order_id, quantity=new_quantity
    )
    # the engine releases the freed lock silently; the exchange reports the balance it gives back
    instrument = desk.engine.instrument(SPOT, symbol)
    asset = instrument.quote_asset if current.side is Side.BUY else instrument.base_asset
    balance = desk.engine.account(call.account_id).spot.balance(asset)
    released = AccountUpdate(call.account_id, SPOT, AccountUpdateReason.ORDER, (balance,), (), call.ts, call.ts)
    desk.dispatch([*events, released])
    order = desk.engine.query_order(call.account_id, SPOT, symbol, order_id=current.order_id)
    numbers = desk.numbers(SPOT, symbol)
    extras = desk.extras_of(order.order_id)
    return wire_spot.amended_order(order, numbers, extras, desk.last_execution_id, call.server_ms, desk.to_ms)


async def cancel_open_orders(call: Call) -> list[dict[str, Any]]:
    desk = call.desk
    symbol = call.required_symbol()
    open_orders = desk.engine.open_orders(call.account_id, SPOT, symbol)
    for order in open_orders:
        desk.extras_of(order.order_id).cancel_client_id = f"sim-cancel-{next(_cancel_ids)}"
    events = desk.engine.cancel_all(call.account_id, SPOT, symbol, call.ts)
    desk.counters.cancels += len(open_orders)
    desk.dispatch(events)
    numbers = desk.numbers(SPOT, symbol)
    return [
        wire_spot.cancel_result(
            desk.engine.query_order(call.account_id, SPOT, symbol, order_id=order.order_id),
            numbers,
            desk.extras_of(order.order_id),
            call.server_ms,
        )
        for order in open_orders
    ]


async def query_order(call: Call) -> dict[str, Any]:
    symbol = call.required_symbol()
    order_id, client_id = _order_ids(call)
    return _query_body(call, _snapshot(call, symbol, order_id, client_id))


async def open_orders(call: Call) -> list[dict[str, Any]]:
    symbol = call.symbol(required=False)
    return [_query_body(call, order) for order in call.desk.engine.open_orders(call.account_id, SPOT, symbol)]


async def all_orders(call: Call) -> list[dict[str, Any]]:
    symbol = call.required_symbol()
    orders = call.desk.engine.all_orders(call.account_id, SPOT, symbol)
    return [_query_body(call, order) for order in order_history(call, orders)]


async def my_trades(call: Call) -> list[dict[str, Any]]:
    desk = call.desk
    symbol = call.required_symbol()
    numbers = desk.numbers(SPOT, symbol)
    return [wire_spot.trade_row(fill, order, numbers, desk.to_ms) for fill, order in trade_history(call, symbol)]


# ---- OCO --------------------------------------------------------------------------------------------
async def new_oco(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    request = p.spot_oco(call.params, symbol)
    desk.activate(SPOT, symbol, call.ts)
    events = desk.engine.submit_oco(call.account_id, request, call.ts)
    legs_by_id: dict[int, OrderSnapshot] = {}
    for event in events:
        if isinstance(event, OrderUpdate) and event.order.order_list_id >= 0:
            legs_by_id.setdefault(event.order.order_id, event.order)
    legs = list(legs_by_id.values())
    if not legs:
        raise InvalidOrderError("The order list was not accepted.", -1000)
    list_id = legs[0].order_list_id
    list_client_id = request.list_client_order_id or f"sim-list-{list_id}"
    oco = desk.register_list(list_id, list_client_id, symbol, call.account_id, [leg.order_id for leg in legs])
    desk.counters.orders_placed += len(legs)
    desk.counters.oco_lists_placed += 1
    call.placed_order_ids.extend(oco.order_ids)
    # the exchange reports the legs first, then the balance they lock (the engine locks first)
    desk.dispatch(sorted(events, key=lambda event: not isinstance(event, OrderUpdate)))
    if not oco.done:
        desk.streams.publish(
            call.account_id,
            SPOT,
            wire_spot.list_status(
                symbol,
                list_id,
                list_client_id,
                [(leg.order_id, leg.client_order_id) for leg in legs],
                False,
                call.server_ms,
            ),
        )
    return _list_body(call, oco.list_id, result=True)


def _list_body(call: Call, list_id: int, result: bool) -> dict[str, Any]:
    desk = call.desk
    oco = desk.lists[list_id]
    numbers = desk.numbers(SPOT, oco.symbol)
    reports = []
    for order_id in oco.order_ids:
        order = desk.engine.query_order(call.account_id, SPOT, oco.symbol, order_id=order_id)
        extras = desk.extras_of(order_id)
        if result:
            reports.append(wire_spot.order_result(order, numbers, extras, [], "RESULT", call.server_ms, desk.to_ms))
        else:
            reports.append(wire_spot.cancel_result(order, numbers, extras, call.server_ms))
    return wire_spot.order_list(oco.symbol, oco.list_id, oco.list_client_id, reports, oco.done, call.server_ms)


def _find_list(call: Call) -> int:
    desk = call.desk
    list_id = p.integer(call.params, "orderListId")
    client_id = p.text(call.params, "listClientOrderId") or p.text(call.params, "origClientOrderId")
    if list_id is None and client_id is None:
        raise BinanceError(-1102, "Param 'listClientOrderId' or 'orderListId' must be sent, but both were empty/null!")
    for oco in desk.lists.values():
        matches = (list_id is not None and oco.list_id == list_id) or (
            client_id is not None and oco.list_client_id == client_id
        )
        if matches and oco.account == call.account_id:
            return oco.list_id
    raise BinanceError(-2011, "Order list does not exist.")


async def cancel_list(call: Call) -> dict[str, Any]:
    desk = call.desk
    call.required_symbol()
    list_id = _find_list(call)
    oco = desk.lists[list_id]
    open_legs = [o for o in oco.order_ids if desk.engine.orders[o].is_open]
    if not open_legs:
        raise BinanceError(-2011, "Unknown order sent.")
    for order_id in open_legs:
        desk.extras_of(order_id).cancel_client_id = (
            p.text(call.params, "newClientOrderId") or f"sim-cancel-{next(_cancel_ids)}"
        )
    events = desk.engine.cancel_order(call.account_id, SPOT, oco.symbol, call.ts, order_id=open_legs[0])
    desk.counters.cancels += 1
    desk.dispatch(events)
    return _list_body(call, list_id, result=False)


def _list_summary(call: Call, list_id: int) -> dict[str, Any]:
    body = _list_body(call, list_id, result=True)
    body.pop("orderReports")
    return body


async def query_list(call: Call) -> dict[str, Any]:
    return _list_summary(call, _find_list(call))


async def open_lists(call: Call) -> list[dict[str, Any]]:
    desk = call.desk
    return [
        _list_summary(call, oco.list_id)
        for oco in sorted(desk.lists.values(), key=lambda o: o.list_id)
        if oco.account == call.account_id and not oco.done
    ]


# ---- account and listenKey ------------------------------------------------------------------------------
async def account(call: Call) -> dict[str, Any]:
    desk = call.desk
    rates = desk.engine.account(call.account_id).fees.rates(SPOT)
    omit = p.boolean(call.params, "omitZeroBalances")
    balances = desk.engine.balances(call.account_id, SPOT)
    uid = 1000 + [a.name for a in desk.accounts].index(call.account_id)
    return wire_spot.account(balances, rates.maker, rates.taker, call.server_ms, uid, omit)


def _listen_key_allowed(call: Call) -> None:
    if not call.desk.options.spot_listen_key:
        raise BinanceError(
            -1000,
            "The spot listenKey was retired on 2026-02-20: use userDataStream.subscribe on the WebSocket API.",
            status=410,
        )


async def listen_key_create(call: Call) -> dict[str, Any]:
    _listen_key_allowed(call)
    return {"listenKey": call.desk.streams.create(call.account_id, SPOT)}


async def listen_key_keepalive(call: Call) -> dict[str, Any]:
    _listen_key_allowed(call)
    key = p.text(call.params, "listenKey", required=True) or ""
    call.desk.streams.keepalive(key, call.account_id, SPOT)
    return {}


async def listen_key_close(call: Call) -> dict[str, Any]:
    _listen_key_allowed(call)
    key = p.text(call.params, "listenKey", required=True) or ""
    call.desk.streams.close(key, call.account_id, SPOT)
    return {}


HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", "/api/v3/order"): new_order,
    ("POST", "/api/v3/order/test"): test_order,
    ("DELETE", "/api/v3/order"): cancel_order,
    ("PUT", "/api/v3/order/amend/keepPriority"): amend_order,
    ("GET", "/api/v3/order"): query_order,
    ("GET", "/api/v3/openOrders"): open_orders,
    ("DELETE", "/api/v3/openOrders"): cancel_open_orders,
    ("GET", "/api/v3/allOrders"): all_orders,
    ("POST", "/api/v3/orderList/oco"): new_oco,
    ("DELETE", "/api/v3/orderList"): cancel_list,
    ("GET", "/api/v3/orderList"): query_list,
    ("GET", "/api/v3/openOrderList"): open_lists,
    ("GET", "/api/v3/account"): account,
    ("GET", "/api/v3/myTrades"): my_trades,
    ("POST", "/api/v3/userDataStream"): listen_key_create,
    ("PUT", "/api/v3/userDataStream"): listen_key_keepalive,
    ("DELETE", "/api/v3/userDataStream"): listen_key_close,
}


def register_spot_routes(app: web.Application, desk: TradingDesk, weights: WeightTable) -> None:
    for endpoint in trading_endpoints(SPOT):
        handler = HANDLERS.get((endpoint.method, endpoint.path))
        if handler is not None:
            add_route(app, endpoint.method, endpoint.path, trading_route(desk, endpoint, handler), weights.weight)

"""USD-M order REST routes: regular orders (`/fapi/v1/order` ...) and the Algo Service's conditional
orders (`/fapi/v1/algoOrder` ...), spec §5.6, §5.6.1, §5.7.

Since 2025-12-09 the exchange takes STOP / STOP_MARKET / TAKE_PROFIT / TAKE_PROFIT_MARKET /
TRAILING_STOP_MARKET only on `/fapi/v1/algoOrder` (-4120 on `/fapi/v1/order`). An algo order is an
engine conditional order that regular order queries do not show until it triggers; then the order it
places appears under the same engine order id (`actualOrderId`), as a MARKET or LIMIT order.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kestrel.core.enums import Market
from kestrel.core.errors import InvalidOrderError
from kestrel.core.venue import OrderSnapshot, OrderUpdate
from kestrel.sim.rest import BinanceError, add_route
from kestrel.sim.trading import params as p
from kestrel.sim.trading import wire_futures
from kestrel.sim.trading.desk import TradingDesk
from kestrel.sim.trading.endpoints import WeightTable, trading_endpoints
from kestrel.sim.trading.futures_account import ACCOUNT_HANDLERS
from kestrel.sim.trading.http import Call, Handler, accepted_order_id, order_history, trade_history, trading_route
from kestrel.sim.trading.wire_futures import AlgoOrder

FUTURES = Market.FUTURES
_CANCEL_ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


def _body(call: Call, order: OrderSnapshot, with_time: bool = False) -> dict[str, Any]:
    desk = call.desk
    return wire_futures.order_body(order, desk.numbers(FUTURES, order.symbol), desk.to_ms, with_time)


def _request(call: Call, symbol: str, algo: bool) -> Any:
    numbers = call.desk.numbers(FUTURES, symbol)
    return p.futures_order(call.params, symbol, numbers.price_decimals, numbers.quantity_decimals, algo=algo)


def _visible(call: Call, order_id: int | None, client_id: str | None, symbol: str) -> OrderSnapshot | None:
    """A regular order (or a triggered algo order's order) of the caller, or None."""
    try:
        order = call.desk.engine.query_order(
            call.account_id, FUTURES, symbol, order_id=order_id, client_order_id=client_id
        )
    except InvalidOrderError:
        return None
    return None if call.desk.is_hidden(order) else order


def _ids(call: Call) -> tuple[int | None, str | None]:
    order_id = p.integer(call.params, "orderId")
    client_id = p.text(call.params, "origClientOrderId")
    if order_id is None and client_id is None:
        raise BinanceError(-1102, "Either orderId or origClientOrderId must be sent.")
    return order_id, client_id


# ---- regular orders ------------------------------------------------------------------------------------
async def new_order(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    request = _request(call, symbol, algo=False)
    response_type = p.futures_response_type(call.params)
    if desk.lockstep is not None:  # answered when the order's first update is delivered
        update = await desk.lockstep.submit(call.account_id, request)
        desk.counters.orders_placed += 1
        call.placed_order_ids.append(update.order.order_id)
        return _body(call, update.order)
    desk.activate(FUTURES, symbol, call.ts)
    events = desk.engine.submit_order(call.account_id, request, call.ts)
    order_id = accepted_order_id(events)
    accepted = next(e.order for e in events if isinstance(e, OrderUpdate) and e.order.order_id == order_id)
    desk.counters.orders_placed += 1
    call.placed_order_ids.append(order_id)
    desk.dispatch(events)
    if response_type == "ACK":
        return _body(call, accepted)
    return _body(call, desk.engine.query_order(call.account_id, FUTURES, symbol, order_id=order_id))


async def cancel_order(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    order_id, client_id = _ids(call)
    if desk.lockstep is not None:  # the cancel's own outcome, when delivered
        if client_id is None:
            raise BinanceError(-1000, "lockstep mode cancels by origClientOrderId only")
        update = await desk.lockstep.cancel(call.account_id, FUTURES, symbol, client_id)
        desk.counters.cancels += 1
        return _body(call, update.order)
    order = _visible(call, order_id, client_id, symbol)
    if order is None or not order.is_open:
        raise BinanceError(-2011, "Unknown order sent.")
    events = desk.engine.cancel_order(call.account_id, FUTURES, symbol, call.ts, order_id=order.order_id)
    desk.counters.cancels += 1
    desk.dispatch(events)
    return _body(call, desk.engine.query_order(call.account_id, FUTURES, symbol, order_id=order.order_id))


async def modify_order(call: Call) -> dict[str, Any]:
    """PUT /fapi/v1/order: a resting LIMIT order's price and quantity (both mandatory). A new price
    loses the queue place (and may trade at once); the same price with a smaller quantity keeps it."""
    desk = call.desk
    symbol = call.required_symbol()
    order_id, client_id = _ids(call)
    side = p.side(call.params)
    numbers = desk.numbers(FUTURES, symbol)
    quantity = p.decimal(call.params, "quantity", numbers.quantity_decimals)
    price = p.decimal(call.params, "price", numbers.price_decimals)
    if quantity is None:
        raise p.mandatory("quantity")
    if price is None:
        raise p.mandatory("price")
    order = _visible(call, order_id, client_id, symbol)
    if order is None or not order.is_open:
        raise BinanceError(-2013, "Order does not exist.")
    if side is not order.side:
        raise BinanceError(-1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
    if price == order.price and quantity == order.quantity:
        raise BinanceError(-5027, "No need to modify the order.")
    events = desk.engine.modify_order(
        call.account_id, FUTURES, symbol, call.ts, order_id=order.order_id, price=price, quantity=quantity
    )
    desk.dispatch(events)
    return _body(call, desk.engine.query_order(call.account_id, FUTURES, symbol, order_id=order.order_id))


async def query_order(call: Call) -> dict[str, Any]:
    symbol = call.required_symbol()
    order_id, client_id = _ids(call)
    order = _visible(call, order_id, client_id, symbol)
    if order is None:
        raise BinanceError(-2013, "Order does not exist.")
    return _body(call, order, with_time=True)


async def query_open_order(call: Call) -> dict[str, Any]:
    symbol = call.required_symbol()
    order_id, client_id = _ids(call)
    order = _visible(call, order_id, client_id, symbol)
    if order is None or not order.is_open:
        raise BinanceError(-2013, "Order does not exist.")
    return _body(call, order, with_time=True)


async def open_orders(call: Call) -> list[dict[str, Any]]:
    desk = call.desk
    symbol = call.symbol(required=False)
    orders = desk.engine.open_orders(call.account_id, FUTURES, symbol)
    return [_body(call, order, with_time=True) for order in orders if not desk.is_hidden(order)]


async def all_orders(call: Call) -> list[dict[str, Any]]:
    desk = call.desk
    symbol = call.required_symbol()
    orders = [o for o in desk.engine.all_orders(call.account_id, FUTURES, symbol) if not desk.is_hidden(o)]
    return [_body(call, order, with_time=True) for order in order_history(call, orders)]


async def cancel_all(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    for order in desk.engine.open_orders(call.account_id, FUTURES, symbol):
        if desk.is_hidden(order) or not desk.engine.orders[order.order_id].is_open:
            continue
        events = desk.engine.cancel_order(call.account_id, FUTURES, symbol, call.ts, order_id=order.order_id)
        desk.counters.cancels += 1
        desk.dispatch(events)
    return dict(_CANCEL_ALL_DONE)


async def user_trades(call: Call) -> list[dict[str, Any]]:
    desk = call.desk
    symbol = call.required_symbol()
    numbers = desk.numbers(FUTURES, symbol)
    return [wire_futures.trade_row(fill, order, numbers, desk.to_ms) for fill, order in trade_history(call, symbol)]


# ---- algo (conditional) orders ---------------------------------------------------------------------------
def _algo_body(call: Call, algo: AlgoOrder) -> dict[str, Any]:
    desk = call.desk
    order = desk.engine.query_order(call.account_id, FUTURES, algo.symbol, order_id=algo.order_id)
    return wire_futures.algo_body(algo, order, desk.numbers(FUTURES, algo.symbol), desk.to_ms)


def _own_algos(call: Call) -> list[AlgoOrder]:
    desk = call.desk
    return [
        algo
        for algo in sorted(desk.algos.values(), key=lambda a: a.algo_id)
        if desk.engine.orders[algo.order_id].account_id == call.account_id
    ]


def _find_algo(call: Call) -> AlgoOrder | None:
    algo_id = p.integer(call.params, "algoId")
    client_id = p.text(call.params, "clientAlgoId")
    if algo_id is None and client_id is None:
        raise BinanceError(-1102, "Either algoId or clientAlgoId must be sent.")
    matches = [
        algo
        for algo in _own_algos(call)
        if (algo_id is not None and algo.algo_id == algo_id)
        or (client_id is not None and algo.client_algo_id == client_id)
    ]
    return matches[-1] if matches else None


async def new_algo_order(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    request = _request(call, symbol, algo=True)
    desk.activate(FUTURES, symbol, call.ts)
    events = desk.engine.submit_order(call.account_id, request, call.ts)
    order_id = accepted_order_id(events)
    accepted = next(e.order for e in events if isinstance(e, OrderUpdate) and e.order.order_id == order_id)
    algo = desk.register_algo(accepted, call.ts)
    desk.counters.algo_orders_placed += 1
    call.placed_order_ids.append(order_id)
    desk.dispatch(events)
    return _algo_body(call, algo)


async def cancel_algo_order(call: Call) -> dict[str, Any]:
    desk = call.desk
    algo = _find_algo(call)
    if algo is None or not algo.is_open:
        raise BinanceError(-2011, "Unknown order sent.")
    events = desk.engine.cancel_order(call.account_id, FUTURES, algo.symbol, call.ts, order_id=algo.order_id)
    desk.counters.cancels += 1
    desk.dispatch(events)
    return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}


async def query_algo_order(call: Call) -> dict[str, Any]:
    algo = _find_algo(call)
    if algo is None:
        raise BinanceError(-2013, "Order does not exist.")
    return _algo_body(call, algo)


async def open_algo_orders(call: Call) -> list[dict[str, Any]]:
    symbol = call.symbol(required=False)
    return [
        _algo_body(call, algo)
        for algo in _own_algos(call)
        if algo.is_open and (symbol is None or algo.symbol == symbol)
    ]


async def all_algo_orders(call: Call) -> list[dict[str, Any]]:
    symbol = call.required_symbol()
    limit = min(p.integer(call.params, "limit") or 500, 1000)
    rows = [algo for algo in _own_algos(call) if algo.symbol == symbol]
    return [_algo_body(call, algo) for algo in rows[-limit:]]


async def cancel_all_algo(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    for algo in _own_algos(call):
        if algo.is_open and algo.symbol == symbol:
            events = desk.engine.cancel_order(call.account_id, FUTURES, symbol, call.ts, order_id=algo.order_id)
            desk.counters.cancels += 1
            desk.dispatch(events)
    return dict(_CANCEL_ALL_DONE)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", "/fapi/v1/order"): new_order,
    ("DELETE", "/fapi/v1/order"): cancel_order,
    ("PUT", "/fapi/v1/order"): modify_order,
    ("GET", "/fapi/v1/order"): query_order,
    ("GET", "/fapi/v1/openOrder"): query_open_order,
    ("GET", "/fapi/v1/openOrders"): open_orders,
    ("GET", "/fapi/v1/allOrders"): all_orders,
    ("DELETE", "/fapi/v1/allOpenOrders"): cancel_all,
    ("GET", "/fapi/v1/userTrades"): user_trades,
    ("POST", "/fapi/v1/algoOrder"): new_algo_order,
    ("DELETE", "/fapi/v1/algoOrder"): cancel_algo_order,
    ("GET", "/fapi/v1/algoOrder"): query_algo_order,
    ("GET", "/fapi/v1/openAlgoOrders"): open_algo_orders,
    ("GET", "/fapi/v1/allAlgoOrders"): all_algo_orders,
    ("DELETE", "/fapi/v1/algoOpenOrders"): cancel_all_algo,
    **ACCOUNT_HANDLERS,
}


def register_futures_routes(app: web.Application, desk: TradingDesk, weights: WeightTable) -> None:
    for endpoint in trading_endpoints(FUTURES):
        handler = HANDLERS.get((endpoint.method, endpoint.path))
        if handler is not None:
            add_route(app, endpoint.method, endpoint.path, trading_route(desk, endpoint, handler), weights.weight)

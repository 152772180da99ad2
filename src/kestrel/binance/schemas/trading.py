"""Trading requests, core → wire (spec §5.6–§5.8): which endpoint, which parameters.

`OrderRequest` / `OcoRequest` are translated faithfully: no client-side validation beyond what the
translation itself needs, so the exchange (or our simulator, which is the same matching engine as
`SimVenue`) answers exactly as it would for any client, and a strategy sees the same rejections on
both venues. Money is Decimal all the way to the query string (`signing.encode_value` refuses floats).

Order-type names differ between markets (`kestrel.core.enums.OrderType` keeps one vocabulary):

| core                 | spot wire          | futures wire (endpoint)               |
|----------------------|--------------------|---------------------------------------|
| MARKET / LIMIT       | same               | same (`/fapi/v1/order`)               |
| LIMIT_MAKER          | LIMIT_MAKER        | — (futures post-only is LIMIT + GTX)  |
| STOP_MARKET          | STOP_LOSS          | STOP_MARKET (`/fapi/v1/algoOrder`)    |
| STOP_LIMIT           | STOP_LOSS_LIMIT    | STOP (`algoOrder`)                    |
| TAKE_PROFIT_MARKET   | TAKE_PROFIT        | TAKE_PROFIT_MARKET (`algoOrder`)      |
| TAKE_PROFIT_LIMIT    | TAKE_PROFIT_LIMIT  | TAKE_PROFIT (`algoOrder`)             |
| TRAILING_STOP_MARKET | — (spot trails with `trailingDelta` on stop types) | TRAILING_STOP_MARKET (`algoOrder`) |

Futures conditional orders go to the Algo service since 2025-12-09 (`/fapi/v1/order` answers -4120);
their client id travels as `clientAlgoId`, and the venue keys them by it like any other order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kestrel.core.enums import Market, OrderType
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import OcoLeg, OcoRequest, OrderRequest

NANOS_PER_MILLI = 1_000_000

SPOT_WIRE_TYPE: dict[OrderType, str] = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.LIMIT_MAKER: "LIMIT_MAKER",
    OrderType.STOP_MARKET: "STOP_LOSS",
    OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
    OrderType.TAKE_PROFIT_MARKET: "TAKE_PROFIT",
    OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT_LIMIT",
    # not a spot type: sent by its core name so the exchange refuses it with its own code (-1116)
    OrderType.TRAILING_STOP_MARKET: "TRAILING_STOP_MARKET",
}
FUTURES_WIRE_TYPE: dict[OrderType, str] = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.LIMIT_MAKER: "LIMIT_MAKER",  # not a futures type: the exchange refuses it (-1116)
    OrderType.STOP_MARKET: "STOP_MARKET",
    OrderType.STOP_LIMIT: "STOP",
    OrderType.TAKE_PROFIT_MARKET: "TAKE_PROFIT_MARKET",
    OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT",
    OrderType.TRAILING_STOP_MARKET: "TRAILING_STOP_MARKET",
}
SPOT_CORE_TYPE: dict[str, OrderType] = {wire: core for core, wire in SPOT_WIRE_TYPE.items()}
FUTURES_CORE_TYPE: dict[str, OrderType] = {wire: core for core, wire in FUTURES_WIRE_TYPE.items()}


def core_order_type(market: Market, wire: str) -> OrderType:
    """The core type of a wire type name (futures `LIQUIDATION` orders are reported as MARKET)."""
    table = SPOT_CORE_TYPE if market is Market.SPOT else FUTURES_CORE_TYPE
    found = table.get(wire)
    if found is not None:
        return found
    if wire in ("LIQUIDATION", "ADL"):
        return OrderType.MARKET
    raise ValueError(f"unknown {market.value} order type {wire!r}")


def is_algo_order(request_market: Market, order_type: OrderType) -> bool:
    """True when a futures order of this type lives on the Algo service (`/fapi/v1/algoOrder`)."""
    return request_market is Market.FUTURES and order_type.is_conditional


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One REST call to make: the endpoint's name in `endpoints.SPOT` / `FUTURES` and its parameters."""

    endpoint: str
    params: dict[str, object]


def _ms(ts_ns: int | None) -> int | None:
    return None if ts_ns is None else ts_ns // NANOS_PER_MILLI


def new_order(request: OrderRequest, client_order_id: ClientOrderId) -> WireRequest:
    """`POST /api/v3/order`, `POST /fapi/v1/order` or `POST /fapi/v1/algoOrder`."""
    if request.market is Market.SPOT:
        return WireRequest("new_order", _spot_order(request, client_order_id))
    if is_algo_order(request.market, request.order_type):
        return WireRequest("new_algo_order", _algo_order(request, client_order_id))
    return WireRequest("new_order", _futures_order(request, client_order_id))


def _spot_order(request: OrderRequest, client_order_id: str) -> dict[str, object]:
    # FULL: the answer lists the immediate fills with their trade ids, so they are known even when the
    # user data stream lags; the stream's copies of the same trades are recognised by trade id
    params: dict[str, object] = {
        "symbol": request.symbol,
        "side": request.side.value,
        "type": SPOT_WIRE_TYPE[request.order_type],
        "timeInForce": request.time_in_force.value if request.time_in_force is not None else None,
        "quantity": request.quantity,
        "quoteOrderQty": request.quote_order_quantity,
        "price": request.price,
        "stopPrice": request.stop_price,
        "trailingDelta": request.trailing_delta_bips,
        "icebergQty": request.iceberg_quantity,
        "newClientOrderId": client_order_id,
        "newOrderRespType": "FULL",
    }
    if request.reduce_only:
        params["reduceOnly"] = True  # not a spot parameter: the exchange refuses it as it should
    if request.close_position:
        params["closePosition"] = True
    if request.trailing_callback_rate is not None:
        params["callbackRate"] = request.trailing_callback_rate
    if request.activation_price is not None:
        params["activationPrice"] = request.activation_price
    if request.good_till_ns is not None:
        params["goodTillDate"] = _ms(request.good_till_ns)
    return params


def _futures_order(request: OrderRequest, client_order_id: str) -> dict[str, object]:
    return {
        "symbol": request.symbol,
        "side": request.side.value,
        "type": FUTURES_WIRE_TYPE[request.order_type],
        "timeInForce": request.time_in_force.value if request.time_in_force is not None else None,
        "quantity": request.quantity,
        "price": request.price,
        "reduceOnly": True if request.reduce_only else None,
        "quoteOrderQty": request.quote_order_quantity,  # spot only: the exchange refuses it
        "icebergQty": request.iceberg_quantity,  # spot only: the exchange refuses it
        "newClientOrderId": client_order_id,
        "goodTillDate": _ms(request.good_till_ns),
        # RESULT: MARKET and IOC/FOK/GTX limits come back in their final state (spec §5.6)
        "newOrderRespType": "RESULT",
    }


def _algo_order(request: OrderRequest, client_order_id: str) -> dict[str, object]:
    return {
        "algoType": "CONDITIONAL",
        "symbol": request.symbol,
        "side": request.side.value,
        "type": FUTURES_WIRE_TYPE[request.order_type],
        "timeInForce": request.time_in_force.value if request.time_in_force is not None else None,
        "quantity": request.quantity,
        "price": request.price,
        "triggerPrice": request.stop_price,
        "workingType": request.working_type.value,
        "closePosition": True if request.close_position else None,
        "reduceOnly": True if request.reduce_only else None,
        "activatePrice": request.activation_price,
        "callbackRate": request.trailing_callback_rate,
        "clientAlgoId": client_order_id,
        "goodTillDate": _ms(request.good_till_ns),
    }


def new_oco(request: OcoRequest, list_client_order_id: str) -> WireRequest:
    """`POST /api/v3/orderList/oco` (spot only)."""
    params: dict[str, object] = {
        "symbol": request.symbol,
        "side": request.side.value,
        "quantity": request.quantity,
        "listClientOrderId": list_client_order_id,
    }
    params.update(_oco_leg("above", request.above))
    params.update(_oco_leg("below", request.below))
    params["newOrderRespType"] = "RESULT"
    return WireRequest("new_oco", params)


def _oco_leg(prefix: str, leg: OcoLeg) -> dict[str, object]:
    return {
        f"{prefix}Type": SPOT_WIRE_TYPE[leg.order_type],
        f"{prefix}ClientOrderId": leg.client_order_id,
        f"{prefix}Price": leg.price,
        f"{prefix}StopPrice": leg.stop_price,
        f"{prefix}TrailingDelta": leg.trailing_delta_bips,
        f"{prefix}TimeInForce": leg.time_in_force.value if leg.time_in_force is not None else None,
    }


def cancel_order(market: Market, symbol: str, client_order_id: str, algo: bool) -> WireRequest:
    if algo:
        return WireRequest("cancel_algo_order", {"clientAlgoId": client_order_id})
    return WireRequest("cancel_order", {"symbol": symbol, "origClientOrderId": client_order_id})


def query_order(market: Market, symbol: str, client_order_id: str, algo: bool) -> WireRequest:
    if algo:
        return WireRequest("query_algo_order", {"clientAlgoId": client_order_id})
    return WireRequest("query_order", {"symbol": symbol, "origClientOrderId": client_order_id})


def order_trades(market: Market, symbol: str, order_id: int) -> WireRequest:
    """The trades of one order (`myTrades` / `userTrades`): the REST fallback for fills."""
    return WireRequest("order_trades", {"symbol": symbol, "orderId": order_id})


def modify_order(
    market: Market,
    symbol: str,
    client_order_id: str,
    side: str,
    price: Decimal,
    quantity: Decimal,
) -> WireRequest:
    """Futures `PUT /fapi/v1/order` (both price and quantity are mandatory on USD-M)."""
    return WireRequest(
        "modify_order",
        {"symbol": symbol, "origClientOrderId": client_order_id, "side": side, "quantity": quantity, "price": price},
    )


def amend_quantity(symbol: str, client_order_id: str, quantity: Decimal) -> WireRequest:
    """Spot `PUT /api/v3/order/amend/keepPriority`: a smaller quantity, same price and queue place."""
    return WireRequest("amend_order", {"symbol": symbol, "origClientOrderId": client_order_id, "newQty": quantity})

"""Request parameters → engine requests, with the exchange's parameter errors (spec §5.6, §5.8, §7).

Syntax is checked here (mandatory parameters -1102, illegal characters -1100, unknown enum values
-1115/-1116/-1117, too many decimals -1111); everything that needs the instrument or the market (filters,
balances, triggers) is the engine's, so the simulator and the backtester refuse the same orders.
"""

from __future__ import annotations

import re
from decimal import Decimal

from kestrel.core.enums import Market, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import OcoLeg, OcoRequest, OrderRequest, WorkingType
from kestrel.sim.rest import BinanceError
from kestrel.sim.trading.names import FUTURES_TYPES, SPOT_TYPES

Params = dict[str, str]
_DECIMAL = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
_INTEGER = re.compile(r"^-?[0-9]{1,20}$")
SPOT_DECIMALS = 8
ALGO_TYPES = frozenset(
    {
        OrderType.STOP_LIMIT,
        OrderType.STOP_MARKET,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TRAILING_STOP_MARKET,
    }
)


def mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def text(params: Params, name: str, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise mandatory(name)
        return None
    return value


def decimal(params: Params, name: str, max_decimals: int | None = None) -> Decimal | None:
    raw = text(params, name)
    if raw is None:
        return None
    if not _DECIMAL.match(raw):
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
        )
    value = Decimal(raw)
    if max_decimals is not None:
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > max_decimals:
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
    return value


def integer(params: Params, name: str, required: bool = False) -> int | None:
    raw = text(params, name, required)
    if raw is None:
        return None
    if not _INTEGER.match(raw):
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


def boolean(params: Params, name: str) -> bool:
    raw = text(params, name)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is 'true|false'.")
    return raw.lower() == "true"


def side(params: Params) -> Side:
    raw = text(params, "side", required=True) or ""
    try:
        return Side(raw)
    except ValueError:
        raise BinanceError(-1117, "Invalid side.") from None


def time_in_force(params: Params, name: str = "timeInForce") -> TimeInForce | None:
    raw = text(params, name)
    if raw is None:
        return None
    try:
        return TimeInForce(raw)
    except ValueError:
        raise BinanceError(-1115, "Invalid timeInForce.") from None


def client_id(params: Params, name: str) -> ClientOrderId | None:
    raw = text(params, name)
    return ClientOrderId(raw) if raw is not None else None


# ---- spot ------------------------------------------------------------------------------------------
def spot_order_type(raw: str | None) -> OrderType:
    if raw is None:
        raise mandatory("type")
    kind = SPOT_TYPES.get(raw)
    if kind is None:
        raise BinanceError(-1116, "Invalid orderType.")
    return kind


def spot_order(params: Params, symbol: str) -> OrderRequest:
    """POST /api/v3/order parameters → OrderRequest."""
    kind = spot_order_type(text(params, "type", required=True))
    quantity = decimal(params, "quantity", SPOT_DECIMALS)
    quote = decimal(params, "quoteOrderQty", SPOT_DECIMALS)
    if kind is OrderType.MARKET and quantity is None and quote is None:
        raise BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
    trailing = integer(params, "trailingDelta")
    return OrderRequest(
        market=Market.SPOT,
        symbol=symbol,
        side=side(params),
        order_type=kind,
        quantity=quantity,
        price=decimal(params, "price", SPOT_DECIMALS),
        stop_price=decimal(params, "stopPrice", SPOT_DECIMALS),
        time_in_force=time_in_force(params),
        client_order_id=client_id(params, "newClientOrderId"),
        iceberg_quantity=decimal(params, "icebergQty", SPOT_DECIMALS),
        quote_order_quantity=quote,
        trailing_delta_bips=trailing,
    )


def spot_response_type(params: Params, kind: OrderType) -> str:
    raw = text(params, "newOrderRespType")
    if raw is None:
        return "FULL" if kind in (OrderType.MARKET, OrderType.LIMIT) else "ACK"
    if raw not in ("ACK", "RESULT", "FULL"):
        raise BinanceError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
    return raw


_OCO_TYPES = {
    "STOP_LOSS": OrderType.STOP_MARKET,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "LIMIT_MAKER": OrderType.LIMIT_MAKER,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT_MARKET,
    "TAKE_PROFIT_LIMIT": OrderType.TAKE_PROFIT_LIMIT,
}


def _oco_leg(params: Params, prefix: str) -> OcoLeg:
    raw = text(params, f"{prefix}Type", required=True)
    kind = _OCO_TYPES.get(raw or "")
    if kind is None or (prefix == "below" and kind is OrderType.LIMIT_MAKER):
        raise BinanceError(-1116, "Invalid orderType.")
    return OcoLeg(
        order_type=kind,
        price=decimal(params, f"{prefix}Price", SPOT_DECIMALS),
        stop_price=decimal(params, f"{prefix}StopPrice", SPOT_DECIMALS),
        time_in_force=time_in_force(params, f"{prefix}TimeInForce"),
        client_order_id=client_id(params, f"{prefix}ClientOrderId"),
        trailing_delta_bips=integer(params, f"{prefix}TrailingDelta"),
    )


def spot_oco(params: Params, symbol: str) -> OcoRequest:
    """POST /api/v3/orderList/oco parameters → OcoRequest."""
    quantity = decimal(params, "quantity", SPOT_DECIMALS)
    if quantity is None:
        raise mandatory("quantity")
    return OcoRequest(
        symbol=symbol,
        side=side(params),
        quantity=quantity,
        above=_oco_leg(params, "above"),
        below=_oco_leg(params, "below"),
        list_client_order_id=text(params, "listClientOrderId"),
    )


# ---- USD-M -----------------------------------------------------------------------------------------
def futures_order_type(raw: str | None) -> OrderType:
    if raw is None:
        raise mandatory("type")
    kind = FUTURES_TYPES.get(raw)
    if kind is None:
        raise BinanceError(-1116, "Invalid orderType.")
    return kind


def _position_side(params: Params) -> None:
    raw = text(params, "positionSide")
    if raw is not None and raw != "BOTH":
        if raw in ("LONG", "SHORT"):
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        raise BinanceError(-1100, "Illegal characters found in parameter 'positionSide'.")


def _working_type(params: Params) -> WorkingType:
    raw = text(params, "workingType")
    if raw is None:
        return WorkingType.CONTRACT_PRICE
    try:
        return WorkingType(raw)
    except ValueError:
        raise BinanceError(-1100, "Illegal characters found in parameter 'workingType'.") from None


def futures_order(
    params: Params, symbol: str, price_decimals: int, quantity_decimals: int, algo: bool = False
) -> OrderRequest:
    """POST /fapi/v1/order (LIMIT / MARKET) or /fapi/v1/algoOrder (conditional) parameters."""
    kind = futures_order_type(text(params, "type", required=True))
    if not algo and kind in ALGO_TYPES:
        raise BinanceError(
            -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
        )
    if algo:
        algo_type = text(params, "algoType", required=True)
        if algo_type != "CONDITIONAL":
            raise BinanceError(-1100, "Illegal characters found in parameter 'algoType'; legal range is 'CONDITIONAL'.")
        if kind not in ALGO_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
    _position_side(params)
    if text(params, "priceMatch") not in (None, "NONE"):
        raise BinanceError(-1106, "Parameter 'priceMatch' sent when not required.")
    good_till = integer(params, "goodTillDate")
    tif = time_in_force(params)
    if algo and tif is None and kind.has_price:
        tif = TimeInForce.GTC
    close_position = boolean(params, "closePosition")
    return OrderRequest(
        market=Market.FUTURES,
        symbol=symbol,
        side=side(params),
        order_type=kind,
        quantity=decimal(params, "quantity", quantity_decimals),
        price=decimal(params, "price", price_decimals),
        stop_price=decimal(params, "triggerPrice" if algo else "stopPrice", price_decimals),
        time_in_force=tif,
        client_order_id=client_id(params, "clientAlgoId" if algo else "newClientOrderId"),
        reduce_only=boolean(params, "reduceOnly"),
        close_position=close_position,
        trailing_callback_rate=decimal(params, "callbackRate", 2),
        activation_price=decimal(params, "activatePrice", price_decimals),
        working_type=_working_type(params),
        good_till_ns=(good_till // 1000) * 1_000_000_000 if good_till is not None else None,
    )


def futures_response_type(params: Params) -> str:
    raw = text(params, "newOrderRespType")
    if raw is None:
        return "ACK"
    if raw not in ("ACK", "RESULT"):
        raise BinanceError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
    return raw

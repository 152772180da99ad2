"""Spot wire formats: REST order bodies and the user-data events (spec §5.6-§5.9, §6.1).

Every function turns engine data (`OrderSnapshot`, `Fill`, `Balance`) into the exchange's JSON with
its field names and string decimals. Times: engine ns → server ms through `to_ms` (clock skew).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kestrel.core.enums import Market, OrderStatus, OrderType
from kestrel.core.orders import Fill
from kestrel.core.venue import AccountUpdate, Balance, ExecutionType, OrderSnapshot, OrderUpdate
from kestrel.sim.trading.names import ZERO, Numbers, ToMillis, money, type_name

STP_MODE = "EXPIRE_MAKER"
# a stop's trigger is reported as the order starting to work; an amendment is REPLACED on spot
_EXECUTION_NAMES = {ExecutionType.TRIGGERED: "NEW", ExecutionType.AMENDMENT: "REPLACED"}
_EXPIRY_REASONS = {
    "IOC_REMAINDER": "UNFILLED_IOC_QUANTITY_EXPIRED",
    "MARKET_REMAINDER": "INSUFFICIENT_LIQUIDITY",
    "OCO_TRIGGER": "OCO_TRIGGER",
    "INSUFFICIENT_BALANCE": "INSUFFICIENT_BALANCES",
}


@dataclass(slots=True)
class OrderExtras:
    """What the wire shows that the engine's snapshot does not carry."""

    quote_order_quantity: Decimal = ZERO
    working_ns: int | None = None  # when the order started working (a stop: its trigger time)
    cancel_client_id: str = ""  # the cancel request's id (executionReport `c`, `C` = original)
    list_client_id: str = ""


def _is_working(order: OrderSnapshot) -> bool:
    return not order.order_type.is_conditional or order.triggered


def _common(order: OrderSnapshot, numbers: Numbers, extras: OrderExtras) -> dict[str, Any]:
    body: dict[str, Any] = {
        "price": numbers.price(order.price),
        "origQty": numbers.quantity(order.quantity),
        "executedQty": numbers.quantity(order.filled_quantity),
        "origQuoteOrderQty": money(extras.quote_order_quantity),
        "cummulativeQuoteQty": money(order.cumulative_quote),
        "status": order.status.value,
        "timeInForce": (order.time_in_force.value if order.time_in_force else "GTC"),
        "type": type_name(Market.SPOT, order.order_type),
        "side": order.side.value,
    }
    if order.stop_price is not None:
        body["stopPrice"] = numbers.price(order.stop_price)
    if order.trailing_delta_bips is not None:
        body["trailingDelta"] = order.trailing_delta_bips
    if order.iceberg_quantity is not None:
        body["icebergQty"] = numbers.quantity(order.iceberg_quantity)
    return body


def order_result(
    order: OrderSnapshot,
    numbers: Numbers,
    extras: OrderExtras,
    fills: Sequence[Fill],
    response_type: str,
    transact_ms: int,
    to_ms: ToMillis,
) -> dict[str, Any]:
    """POST /api/v3/order: ACK (ids), RESULT (the order) or FULL (plus this request's fills)."""
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": order.order_list_id,
        "clientOrderId": order.client_order_id,
        "transactTime": transact_ms,
    }
    if response_type == "ACK":
        return body
    body.update(_common(order, numbers, extras))
    body["workingTime"] = to_ms(extras.working_ns) if extras.working_ns is not None else -1
    body["selfTradePreventionMode"] = STP_MODE
    if response_type == "FULL":
        body["fills"] = [
            {
                "price": numbers.price(fill.price),
                "qty": numbers.quantity(fill.quantity),
                "commission": money(fill.fee),
                "commissionAsset": fill.fee_asset,
                "tradeId": int(fill.trade_id),
            }
            for fill in fills
        ]
    return body


def order_query(order: OrderSnapshot, numbers: Numbers, extras: OrderExtras, to_ms: ToMillis) -> dict[str, Any]:
    """GET /api/v3/order, openOrders, allOrders."""
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": order.order_list_id,
        "clientOrderId": order.client_order_id,
    }
    body.update(_common(order, numbers, extras))
    body.setdefault("stopPrice", numbers.price(ZERO))
    body.setdefault("icebergQty", numbers.quantity(ZERO))
    body["time"] = to_ms(order.ts_created)
    body["updateTime"] = to_ms(order.ts_updated)
    body["isWorking"] = _is_working(order)
    body["workingTime"] = to_ms(extras.working_ns) if extras.working_ns is not None else -1
    body["selfTradePreventionMode"] = STP_MODE
    return body


def cancel_result(order: OrderSnapshot, numbers: Numbers, extras: OrderExtras, transact_ms: int) -> dict[str, Any]:
    """DELETE /api/v3/order: the order as cancelled, `clientOrderId` = the cancel's own id."""
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "origClientOrderId": order.client_order_id,
        "orderId": order.order_id,
        "orderListId": order.order_list_id,
        "clientOrderId": extras.cancel_client_id or order.client_order_id,
        "transactTime": transact_ms,
    }
    body.update(_common(order, numbers, extras))
    body["selfTradePreventionMode"] = STP_MODE
    return body


def execution_report(
    update: OrderUpdate, numbers: Numbers, extras: OrderExtras, execution_id: int, to_ms: ToMillis
) -> dict[str, Any]:
    """The `executionReport` event of one order update (a stop's trigger is reported as NEW, working)."""
    order = update.order
    fill = update.fill
    execution = update.execution_type
    execution_name = _EXECUTION_NAMES.get(execution, execution.value)
    status = order.status
    event_ms = to_ms(update.ts_event)
    cancelled = status is OrderStatus.CANCELED and execution is ExecutionType.CANCELED
    body: dict[str, Any] = {
        "e": "executionReport",
        "E": event_ms,
        "s": order.symbol,
        "c": extras.cancel_client_id if cancelled and extras.cancel_client_id else order.client_order_id,
        "S": order.side.value,
        "o": type_name(Market.SPOT, order.order_type),
        "f": order.time_in_force.value if order.time_in_force else "GTC",
        "q": numbers.quantity(order.quantity),
        "p": numbers.price(order.price),
        "P": numbers.price(order.stop_price),
        "F": numbers.quantity(order.iceberg_quantity),
        "g": order.order_list_id,
        "C": order.client_order_id if cancelled and extras.cancel_client_id else "",
        "x": execution_name,
        "X": status.value,
        "r": "NONE",
        "i": order.order_id,
        "l": numbers.quantity(fill.quantity if fill else ZERO),
        "z": numbers.quantity(order.filled_quantity),
        "L": numbers.price(fill.price if fill else ZERO),
        "n": money(fill.fee if fill else ZERO),
        "N": fill.fee_asset if fill else None,
        "T": event_ms,
        "t": int(fill.trade_id) if fill else -1,
        "I": execution_id,
        "w": order.status.is_open and _is_working(order) and order.order_type is not OrderType.MARKET,
        "m": bool(fill and fill.liquidity.value == "MAKER"),
        "M": False,
        "O": to_ms(order.ts_created),
        "Z": money(order.cumulative_quote),
        "Y": money(fill.notional if fill else ZERO),
        "Q": money(extras.quote_order_quantity),
        "W": to_ms(extras.working_ns) if extras.working_ns is not None else -1,
        "V": STP_MODE,
    }
    if order.trailing_delta_bips is not None:
        body["d"] = order.trailing_delta_bips
    if status is OrderStatus.EXPIRED and order.expiry_reason in _EXPIRY_REASONS:
        body["eR"] = _EXPIRY_REASONS[order.expiry_reason]
    return body


def account_position(update: AccountUpdate, to_ms: ToMillis) -> dict[str, Any]:
    """`outboundAccountPosition`: the balances an update touched."""
    event_ms = to_ms(update.ts_event)
    return {
        "e": "outboundAccountPosition",
        "E": event_ms,
        "u": event_ms,
        "B": [{"a": b.asset, "f": money(b.free), "l": money(b.locked)} for b in update.balances],
    }


def list_status(
    symbol: str,
    list_id: int,
    list_client_id: str,
    orders: Sequence[tuple[int, str]],
    done: bool,
    event_ms: int,
) -> dict[str, Any]:
    """`listStatus` of an OCO: EXEC_STARTED/EXECUTING when placed, ALL_DONE when its last leg ended."""
    return {
        "e": "listStatus",
        "E": event_ms,
        "s": symbol,
        "g": list_id,
        "c": "OCO",
        "l": "ALL_DONE" if done else "EXEC_STARTED",
        "L": "ALL_DONE" if done else "EXECUTING",
        "r": "NONE",
        "C": list_client_id,
        "T": event_ms,
        "O": [{"s": symbol, "i": order_id, "c": client_id} for order_id, client_id in orders],
    }


def order_list(
    symbol: str,
    list_id: int,
    list_client_id: str,
    reports: Sequence[dict[str, Any]],
    done: bool,
    transaction_ms: int,
) -> dict[str, Any]:
    """POST /api/v3/orderList/oco and DELETE /api/v3/orderList."""
    return {
        "orderListId": list_id,
        "contingencyType": "OCO",
        "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
        "listOrderStatus": "ALL_DONE" if done else "EXECUTING",
        "listClientOrderId": list_client_id,
        "transactionTime": transaction_ms,
        "symbol": symbol,
        "orders": [
            {"symbol": r["symbol"], "orderId": r["orderId"], "clientOrderId": r["clientOrderId"]} for r in reports
        ],
        "orderReports": list(reports),
    }


def account(
    balances: Sequence[Balance], maker: Decimal, taker: Decimal, update_ms: int, uid: int, omit_zero: bool
) -> dict[str, Any]:
    """GET /api/v3/account."""
    rows = [b for b in balances if not omit_zero or b.free != 0 or b.locked != 0]
    return {
        "makerCommission": int(maker * 10_000),
        "takerCommission": int(taker * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": money(maker), "taker": money(taker), "buyer": money(ZERO), "seller": money(ZERO)},
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": update_ms,
        "accountType": "SPOT",
        "balances": [{"asset": b.asset, "free": money(b.free), "locked": money(b.locked)} for b in rows],
        "permissions": ["SPOT"],
        "uid": uid,
    }


def trade_row(fill: Fill, order: OrderSnapshot, numbers: Numbers, to_ms: ToMillis) -> dict[str, Any]:
    """One row of GET /api/v3/myTrades."""
    return {
        "symbol": fill.symbol,
        "id": int(fill.trade_id),
        "orderId": order.order_id,
        "orderListId": order.order_list_id,
        "price": numbers.price(fill.price),
        "qty": numbers.quantity(fill.quantity),
        "quoteQty": money(fill.notional),
        "commission": money(fill.fee),
        "commissionAsset": fill.fee_asset,
        "time": to_ms(fill.ts_event),
        "isBuyer": fill.side.value == "BUY",
        "isMaker": fill.liquidity.value == "MAKER",
        "isBestMatch": True,
    }


def amended_order(
    order: OrderSnapshot, numbers: Numbers, extras: OrderExtras, execution_id: int, transact_ms: int, to_ms: ToMillis
) -> dict[str, Any]:
    """PUT /api/v3/order/amend/keepPriority."""
    return {
        "transactTime": transact_ms,
        "executionId": execution_id,
        "amendedOrder": {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": order.order_list_id,
            "origClientOrderId": order.client_order_id,
            "clientOrderId": order.client_order_id,
            "price": numbers.price(order.price),
            "qty": numbers.quantity(order.quantity),
            "executedQty": numbers.quantity(order.filled_quantity),
            "preventedQty": numbers.quantity(ZERO),
            "quoteOrderQty": money(extras.quote_order_quantity),
            "cumulativeQuoteQty": money(order.cumulative_quote),
            "status": order.status.value,
            "timeInForce": order.time_in_force.value if order.time_in_force else "GTC",
            "type": type_name(Market.SPOT, order.order_type),
            "side": order.side.value,
            "workingTime": to_ms(extras.working_ns) if extras.working_ns is not None else -1,
            "selfTradePreventionMode": STP_MODE,
        },
    }

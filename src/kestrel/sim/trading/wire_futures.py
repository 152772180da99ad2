"""USD-M wire formats: REST order, algo order, balance, account and position bodies, and the user-data
events ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ALGO_UPDATE (spec §5.6-§5.10, §6.2).

One-way position mode only (`positionSide` BOTH). A conditional order lives in the Algo Service until
it triggers; the order it then places is a MARKET (for *_MARKET and trailing types) or LIMIT order
whose `origType` keeps the conditional type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kestrel.core.enums import LiquiditySide, MarginType, Market, OrderStatus, OrderType
from kestrel.core.orders import Fill
from kestrel.core.venue import AccountUpdate, AccountUpdateReason, OrderSnapshot, OrderUpdate, PositionSnapshot
from kestrel.sim.trading.names import ZERO, Numbers, ToMillis, money, type_name

STP_MODE = "EXPIRE_MAKER"
_EXPIRY_CODES = {
    "IOC_REMAINDER": "2",
    "REDUCE_ONLY": "4",
    "POSITION_ZERO": "4",
    "LIQUIDATION": "5",
    "MARKET_REMAINDER": "9",
}
_MARGIN_NAMES = {MarginType.CROSSED: "cross", MarginType.ISOLATED: "isolated"}


def working_type_name(order: OrderSnapshot) -> str:
    """The type an order works as: a triggered conditional becomes MARKET or LIMIT."""
    if order.order_type.is_conditional and order.triggered:
        return "LIMIT" if order.order_type.has_price else "MARKET"
    if order.client_order_id.startswith("autoclose-"):
        return "LIQUIDATION"
    return type_name(Market.FUTURES, order.order_type)


def order_body(order: OrderSnapshot, numbers: Numbers, to_ms: ToMillis, with_time: bool = False) -> dict[str, Any]:
    """A USD-M order (new / cancel / query / open orders)."""
    body: dict[str, Any] = {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "status": order.status.value,
        "clientOrderId": order.client_order_id,
        "price": numbers.price(order.price),
        "avgPrice": numbers.average(order.average_price),
        "origQty": numbers.quantity(order.quantity),
        "executedQty": numbers.quantity(order.filled_quantity),
        "cumQty": numbers.quantity(order.filled_quantity),
        "cumQuote": money(order.cumulative_quote),
        "timeInForce": order.time_in_force.value if order.time_in_force else "GTC",
        "type": working_type_name(order),
        "reduceOnly": order.reduce_only,
        "closePosition": order.close_position,
        "side": order.side.value,
        "positionSide": "BOTH",
        "stopPrice": numbers.price(order.stop_price),
        "workingType": order.working_type.value,
        "priceProtect": False,
        "origType": type_name(Market.FUTURES, order.order_type),
        "priceMatch": "NONE",
        "selfTradePreventionMode": STP_MODE,
        "goodTillDate": to_ms(order.good_till_ns) if order.good_till_ns else 0,
        "updateTime": to_ms(order.ts_updated),
    }
    if order.order_type is OrderType.TRAILING_STOP_MARKET:
        body["activatePrice"] = numbers.price(order.activation_price)
        body["priceRate"] = str(order.trailing_callback_rate or ZERO)
    if with_time:
        body["time"] = to_ms(order.ts_created)
    return body


def order_trade_update(
    update: OrderUpdate, numbers: Numbers, to_ms: ToMillis, open_notional: tuple[Decimal, Decimal]
) -> dict[str, Any]:
    order = update.order
    fill = update.fill
    event_ms = to_ms(update.ts_event)
    liquidation = order.client_order_id.startswith("autoclose-")
    inner: dict[str, Any] = {
        "s": order.symbol,
        "c": order.client_order_id,
        "S": order.side.value,
        "o": working_type_name(order),
        "f": "IOC" if liquidation else (order.time_in_force.value if order.time_in_force else "GTC"),
        "q": numbers.quantity(order.quantity),
        "p": numbers.price(order.price),
        "ap": numbers.average(order.average_price),
        "sp": numbers.price(order.stop_price),
        "x": update.execution_type.value,
        "X": order.status.value,
        "i": order.order_id,
        "l": numbers.quantity(fill.quantity if fill else ZERO),
        "z": numbers.quantity(order.filled_quantity),
        "L": numbers.price(fill.price if fill else ZERO),
        "T": event_ms,
        "t": int(fill.trade_id) if fill else 0,
        "b": money(open_notional[0]),
        "a": money(open_notional[1]),
        "m": bool(fill and fill.liquidity is LiquiditySide.MAKER),
        "R": order.reduce_only,
        "wt": order.working_type.value,
        "ot": "LIQUIDATION" if liquidation else type_name(Market.FUTURES, order.order_type),
        "ps": "BOTH",
        "cp": order.close_position,
        "rp": money(fill.realized_pnl if fill else ZERO),
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": STP_MODE,
        "pm": "NONE",
        "gtd": to_ms(order.good_till_ns) if order.good_till_ns else 0,
        "er": _EXPIRY_CODES.get(order.expiry_reason or "", "0") if order.status is OrderStatus.EXPIRED else "0",
    }
    if fill is not None:
        inner["N"] = fill.fee_asset
        inner["n"] = money(fill.fee)
    if order.order_type is OrderType.TRAILING_STOP_MARKET:
        inner["AP"] = numbers.price(order.activation_price)
        inner["cr"] = str(order.trailing_callback_rate or ZERO)
    return {"e": "ORDER_TRADE_UPDATE", "E": event_ms, "T": event_ms, "o": inner}


def _reason(reason: AccountUpdateReason) -> str:
    # the exchange has no LIQUIDATION / LEVERAGE_CHANGE reasons: a liquidation is booked as an ORDER
    if reason in (AccountUpdateReason.LIQUIDATION, AccountUpdateReason.LEVERAGE_CHANGE):
        return "ORDER"
    return reason.value


def position_entry(position: PositionSnapshot) -> dict[str, Any]:
    return {
        "s": position.symbol,
        "pa": str(position.quantity),
        "ep": str(position.entry_price),
        "bep": str(position.entry_price),
        "cr": money(position.realized_pnl),
        "up": money(position.unrealized_pnl),
        "mt": _MARGIN_NAMES[position.margin_type],
        "iw": money(position.isolated_wallet),
        "ps": "BOTH",
        "ma": "USDT",
    }


def account_update(update: AccountUpdate, cross_wallets: dict[str, Decimal], to_ms: ToMillis) -> dict[str, Any]:
    event_ms = to_ms(update.ts_event)
    change = update.reason is AccountUpdateReason.DEPOSIT
    return {
        "e": "ACCOUNT_UPDATE",
        "E": event_ms,
        "T": event_ms,
        "a": {
            "m": _reason(update.reason),
            "B": [
                {
                    "a": b.asset,
                    "wb": money(b.wallet),
                    "cw": money(cross_wallets.get(b.asset, b.wallet)),
                    "bc": money(b.wallet if change else ZERO),
                }
                for b in update.balances
            ],
            "P": [position_entry(p) for p in update.positions],
        },
    }


def leverage_update(symbol: str, leverage: int, event_ms: int) -> dict[str, Any]:
    return {"e": "ACCOUNT_CONFIG_UPDATE", "E": event_ms, "T": event_ms, "ac": {"s": symbol, "l": leverage}}


# ---- algo (conditional) orders --------------------------------------------------------------------
@dataclass(slots=True)
class AlgoOrder:
    """A conditional order of the Algo Service; `order_id` is its engine order (the triggered order)."""

    algo_id: int
    client_algo_id: str
    order_id: int
    symbol: str
    status: str = "NEW"  # NEW, CANCELED, TRIGGERING, TRIGGERED, FINISHED, REJECTED, EXPIRED
    ts_created: int = 0
    ts_updated: int = 0
    ts_triggered: int = 0
    reason: str = ""

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"


def algo_body(algo: AlgoOrder, order: OrderSnapshot, numbers: Numbers, to_ms: ToMillis) -> dict[str, Any]:
    """POST/GET /fapi/v1/algoOrder, openAlgoOrders, allAlgoOrders."""
    trailing = order.order_type is OrderType.TRAILING_STOP_MARKET
    return {
        "algoId": algo.algo_id,
        "clientAlgoId": algo.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": type_name(Market.FUTURES, order.order_type),
        "symbol": order.symbol,
        "side": order.side.value,
        "positionSide": "BOTH",
        "timeInForce": order.time_in_force.value if order.time_in_force else "GTC",
        "quantity": numbers.quantity(order.quantity),
        "algoStatus": algo.status,
        "actualOrderId": str(algo.order_id) if algo.ts_triggered else "",
        "actualPrice": numbers.average(order.average_price),
        "triggerPrice": numbers.price(order.stop_price),
        "price": numbers.price(order.price),
        "icebergQuantity": None,
        "selfTradePreventionMode": STP_MODE,
        "workingType": order.working_type.value,
        "priceMatch": "NONE",
        "closePosition": order.close_position,
        "priceProtect": False,
        "reduceOnly": order.reduce_only,
        "activatePrice": numbers.price(order.activation_price) if trailing and order.activation_price else "",
        "callbackRate": str(order.trailing_callback_rate) if trailing else "",
        "createTime": to_ms(algo.ts_created),
        "updateTime": to_ms(algo.ts_updated),
        "triggerTime": to_ms(algo.ts_triggered) if algo.ts_triggered else 0,
        "goodTillDate": to_ms(order.good_till_ns) if order.good_till_ns else 0,
    }


def algo_update(algo: AlgoOrder, order: OrderSnapshot, numbers: Numbers, to_ms: ToMillis, ts: int) -> dict[str, Any]:
    event_ms = to_ms(ts)
    return {
        "e": "ALGO_UPDATE",
        "T": event_ms,
        "E": event_ms,
        "o": {
            "caid": algo.client_algo_id,
            "aid": algo.algo_id,
            "at": "CONDITIONAL",
            "o": type_name(Market.FUTURES, order.order_type),
            "s": order.symbol,
            "S": order.side.value,
            "ps": "BOTH",
            "f": order.time_in_force.value if order.time_in_force else "GTC",
            "q": numbers.quantity(order.quantity),
            "X": algo.status,
            "ai": str(algo.order_id) if algo.ts_triggered else "",
            "ap": numbers.average(order.average_price),
            "aq": numbers.quantity(order.filled_quantity),
            "act": working_type_name(order) if algo.ts_triggered else "0",
            "tp": numbers.price(order.stop_price),
            "p": numbers.price(order.price),
            "V": STP_MODE,
            "wt": order.working_type.value,
            "pm": "NONE",
            "cp": order.close_position,
            "pP": False,
            "R": order.reduce_only,
            "tt": to_ms(algo.ts_triggered) if algo.ts_triggered else 0,
            "gtd": to_ms(order.good_till_ns) if order.good_till_ns else 0,
            "rm": algo.reason,
        },
    }


# ---- balances, account, positions -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AssetState:
    """One margin asset of an account, as the REST bodies need it."""

    asset: str
    wallet: Decimal
    cross_wallet: Decimal
    cross_unrealized: Decimal
    unrealized: Decimal
    available: Decimal
    position_margin: Decimal
    order_margin: Decimal
    maintenance: Decimal

    @property
    def margin_balance(self) -> Decimal:
        return self.wallet + self.unrealized


def balance_rows(assets: Sequence[AssetState], alias: str, update_ms: int) -> list[dict[str, Any]]:
    return [
        {
            "accountAlias": alias,
            "asset": a.asset,
            "balance": money(a.wallet),
            "crossWalletBalance": money(a.cross_wallet),
            "crossUnPnl": money(a.cross_unrealized),
            "availableBalance": money(a.available),
            "maxWithdrawAmount": money(max(ZERO, min(a.available, a.wallet))),
            "marginAvailable": True,
            "updateTime": update_ms,
        }
        for a in assets
    ]


def account_body(
    assets: Sequence[AssetState],
    positions: Sequence[dict[str, Any]],
    update_ms: int,
    fee_tier: int,
    version: int,
) -> dict[str, Any]:
    def total(name: str) -> Decimal:
        return sum((getattr(a, name) for a in assets), start=ZERO)

    body: dict[str, Any] = {
        "totalInitialMargin": money(total("position_margin") + total("order_margin")),
        "totalMaintMargin": money(total("maintenance")),
        "totalWalletBalance": money(total("wallet")),
        "totalUnrealizedProfit": money(total("unrealized")),
        "totalMarginBalance": money(total("wallet") + total("unrealized")),
        "totalPositionInitialMargin": money(total("position_margin")),
        "totalOpenOrderInitialMargin": money(total("order_margin")),
        "totalCrossWalletBalance": money(total("cross_wallet")),
        "totalCrossUnPnl": money(total("cross_unrealized")),
        "availableBalance": money(total("available")),
        "maxWithdrawAmount": money(max(ZERO, min(total("available"), total("wallet")))),
        "assets": [
            {
                "asset": a.asset,
                "walletBalance": money(a.wallet),
                "unrealizedProfit": money(a.unrealized),
                "marginBalance": money(a.margin_balance),
                "maintMargin": money(a.maintenance),
                "initialMargin": money(a.position_margin + a.order_margin),
                "positionInitialMargin": money(a.position_margin),
                "openOrderInitialMargin": money(a.order_margin),
                "crossWalletBalance": money(a.cross_wallet),
                "crossUnPnl": money(a.cross_unrealized),
                "availableBalance": money(a.available),
                "maxWithdrawAmount": money(max(ZERO, min(a.available, a.wallet))),
                "marginAvailable": True,
                "updateTime": update_ms,
            }
            for a in assets
        ],
        "positions": list(positions),
    }
    if version == 2:
        body = {
            "feeTier": fee_tier,
            "feeBurn": False,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            **body,
        }
    return body


def position_risk(
    position: PositionSnapshot,
    numbers: Numbers,
    open_notional: tuple[Decimal, Decimal],
    order_margin: Decimal,
    max_notional: Decimal,
    to_ms: ToMillis,
    version: int,
) -> dict[str, Any]:
    """GET /fapi/v2|v3/positionRisk (and the v2/v3 account `positions[]` use a subset)."""
    liquidation = position.liquidation_price
    isolated = position.margin_type is MarginType.ISOLATED
    common: dict[str, Any] = {
        "symbol": position.symbol,
        "positionSide": "BOTH",
        "positionAmt": numbers.quantity(position.quantity),
        "entryPrice": numbers.average(position.entry_price),
        "breakEvenPrice": numbers.average(position.entry_price),
        "markPrice": numbers.average(position.mark_price),
        "unRealizedProfit": money(position.unrealized_pnl),
        "liquidationPrice": numbers.average(liquidation if liquidation is not None else ZERO),
        "isolatedMargin": money(position.isolated_wallet + position.unrealized_pnl if isolated else ZERO),
        "notional": money(position.notional),
        "marginAsset": "USDT",
        "isolatedWallet": money(position.isolated_wallet),
        "updateTime": to_ms(position.ts_updated) if position.ts_updated else 0,
    }
    if version == 2:
        return {
            **common,
            "marginType": _MARGIN_NAMES[position.margin_type],
            "isAutoAddMargin": "false",
            "leverage": str(position.leverage),
            "maxNotionalValue": str(max_notional),
        }
    return {
        **common,
        "initialMargin": money(position.initial_margin + order_margin),
        "maintMargin": money(position.maintenance_margin),
        "positionInitialMargin": money(position.initial_margin),
        "openOrderInitialMargin": money(order_margin),
        "adl": 0,
        "bidNotional": money(open_notional[0]),
        "askNotional": money(open_notional[1]),
    }


def account_position(
    position: PositionSnapshot, open_notional: tuple[Decimal, Decimal], version: int
) -> dict[str, Any]:
    """One `positions[]` entry of GET /fapi/v2|v3/account."""
    body: dict[str, Any] = {
        "symbol": position.symbol,
        "positionSide": "BOTH",
        "positionAmt": str(position.quantity),
        "unrealizedProfit": money(position.unrealized_pnl),
        "isolatedMargin": money(position.isolated_wallet if position.margin_type is MarginType.ISOLATED else ZERO),
        "notional": money(position.notional),
        "isolatedWallet": money(position.isolated_wallet),
        "initialMargin": money(position.initial_margin),
        "maintMargin": money(position.maintenance_margin),
        "updateTime": 0,
    }
    if version == 2:
        body.update(
            {
                "leverage": str(position.leverage),
                "isolated": position.margin_type is MarginType.ISOLATED,
                "entryPrice": str(position.entry_price),
                "breakEvenPrice": str(position.entry_price),
                "maxNotional": "0",
                "bidNotional": money(open_notional[0]),
                "askNotional": money(open_notional[1]),
                "positionInitialMargin": money(position.initial_margin),
                "openOrderInitialMargin": "0",
            }
        )
    return body


def trade_row(fill: Fill, order: OrderSnapshot, numbers: Numbers, to_ms: ToMillis) -> dict[str, Any]:
    """One row of GET /fapi/v1/userTrades."""
    return {
        "buyer": fill.side.value == "BUY",
        "commission": money(fill.fee),
        "commissionAsset": fill.fee_asset,
        "id": int(fill.trade_id),
        "maker": fill.liquidity is LiquiditySide.MAKER,
        "orderId": order.order_id,
        "price": numbers.price(fill.price),
        "qty": numbers.quantity(fill.quantity),
        "quoteQty": money(fill.notional),
        "realizedPnl": money(fill.realized_pnl),
        "side": fill.side.value,
        "positionSide": "BOTH",
        "symbol": fill.symbol,
        "time": to_ms(fill.ts_event),
    }

"""Trading REST answers, wire → core (spec §5.6–§5.9): orders, trades, balances, positions.

One msgspec Struct per answer shape, with the exchange's field names and Decimal money (msgspec turns
the quoted decimal strings into exact Decimals), and one `parse_*` function into the core types of
`kestrel.core.venue`. Wire times are milliseconds; core times integer nanoseconds.

- Spot orders (`POST/DELETE/GET /api/v3/order`, FULL / RESULT / ACK answers, OCO `orderReports`):
  `WireSpotOrder`. A cancel answer names the order in `origClientOrderId` (`clientOrderId` is the
  cancel's own id), so the order's client id is `origClientOrderId` when present.
- Futures orders (`/fapi/v1/order`): `WireFuturesOrder`; Algo-service orders: `WireAlgoOrder`.
- Trades (`GET /api/v3/myTrades`, `GET /fapi/v1/userTrades`): the REST fallback for fills, with the
  same trade ids the user data stream carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from kestrel.binance.schemas.trading import NANOS_PER_MILLI, core_order_type
from kestrel.core.enums import LiquiditySide, MarginType, Market, OrderStatus, Side, TimeInForce
from kestrel.core.errors import DataError
from kestrel.core.identifiers import ClientOrderId, TradeId, VenueOrderId
from kestrel.core.orders import Fill
from kestrel.core.venue import Balance, OrderSnapshot, PositionSnapshot, WorkingType

ZERO = Decimal(0)
S = TypeVar("S", bound=msgspec.Struct)

_STATUS = {status.value: status for status in OrderStatus}
_STATUS["EXPIRED_IN_MATCH"] = OrderStatus.EXPIRED  # self-trade prevention expired it
_STATUS["PENDING_NEW"] = OrderStatus.NEW  # an order-list leg not yet working
_TIME_IN_FORCE = {tif.value: tif for tif in TimeInForce}
_WORKING_TYPE = {kind.value: kind for kind in WorkingType}


def without_blanks(value: Any) -> Any:
    """Binance (and our simulator) write "" for an absent number (`activatePrice`, `actualOrderId`):
    drop such keys so the field takes its default."""
    if isinstance(value, dict):
        return {key: without_blanks(item) for key, item in value.items() if item != ""}
    if isinstance(value, list):
        return [without_blanks(item) for item in value]
    return value


def convert(body: Any, kind: type[S], what: str) -> S:
    """A decoded JSON body as the wire Struct `kind`; a `DataError` naming `what` when it does not fit."""
    try:
        return msgspec.convert(without_blanks(body), kind, strict=False)
    except msgspec.ValidationError as exc:
        raise DataError(f"{what}: unexpected answer ({exc}): {str(body)[:200]}") from None


def order_status(wire: str) -> OrderStatus:
    try:
        return _STATUS[wire]
    except KeyError:
        raise DataError(f"unknown order status {wire!r}") from None


def time_in_force(wire: str | None) -> TimeInForce | None:
    return _TIME_IN_FORCE.get(wire) if wire else None


def ns(ms: int) -> int:
    return ms * NANOS_PER_MILLI


def positive(value: Decimal | None) -> Decimal | None:
    """Binance writes "0" (or "0.00") for an absent price; core uses None."""
    return value if value is not None and value != 0 else None


# ---- spot orders ---------------------------------------------------------------------------------
class WireSpotFill(msgspec.Struct, gc=False):
    price: Decimal
    qty: Decimal
    commission: Decimal
    commissionAsset: str  # noqa: N815 - the wire name
    tradeId: int  # noqa: N815


class WireSpotOrder(msgspec.Struct, gc=False, rename="camel"):
    """Spot order answer (new FULL/RESULT/ACK, cancel, query, OCO order report)."""

    symbol: str
    order_id: int
    client_order_id: str
    order_list_id: int = -1
    orig_client_order_id: str | None = None
    transact_time: int = 0
    time: int = 0
    update_time: int = 0
    working_time: int = 0
    price: Decimal = ZERO
    orig_qty: Decimal = ZERO
    executed_qty: Decimal = ZERO
    cummulative_quote_qty: Decimal = ZERO
    orig_quote_order_qty: Decimal = ZERO
    status: str = "NEW"  # an ACK answer has no status: the order was accepted
    time_in_force: str | None = None
    type: str = "LIMIT"
    side: str = "BUY"
    stop_price: Decimal | None = None
    iceberg_qty: Decimal | None = None
    trailing_delta: int | None = None
    is_working: bool | None = None  # query answers; new-order answers say `workingTime: -1` instead
    fills: list[WireSpotFill] = []


def parse_spot_order(wire: WireSpotOrder, ts_init: int) -> tuple[OrderSnapshot, list[Fill]]:
    """The order, and the fills a FULL answer lists (taker fills at placement, stamped `transactTime`)."""
    client_id = ClientOrderId(wire.orig_client_order_id or wire.client_order_id)
    order_type = core_order_type(Market.SPOT, wire.type)
    created = wire.time or wire.transact_time or max(wire.working_time, 0)
    updated = max(wire.update_time, wire.transact_time, created)
    ts_created = ns(created) if created else ts_init
    ts_updated = ns(updated) if updated else ts_init
    quantity = wire.orig_qty
    snapshot = OrderSnapshot(
        order_id=wire.order_id,
        client_order_id=client_id,
        market=Market.SPOT,
        symbol=wire.symbol,
        side=Side(wire.side),
        order_type=order_type,
        status=order_status(wire.status),
        quantity=quantity,
        filled_quantity=wire.executed_qty,
        cumulative_quote=wire.cummulative_quote_qty,
        ts_created=ts_created,
        ts_updated=ts_updated,
        price=positive(wire.price),
        stop_price=positive(wire.stop_price),
        time_in_force=time_in_force(wire.time_in_force),
        iceberg_quantity=positive(wire.iceberg_qty),
        trailing_delta_bips=wire.trailing_delta or None,
        order_list_id=wire.order_list_id,
        triggered=order_type.is_conditional and _spot_working(wire),
    )
    fills = [
        Fill(
            client_order_id=client_id,
            venue_order_id=VenueOrderId(wire.order_id),
            trade_id=TradeId(item.tradeId),
            market=Market.SPOT,
            symbol=wire.symbol,
            side=snapshot.side,
            price=item.price,
            quantity=item.qty,
            fee=item.commission,
            fee_asset=item.commissionAsset,
            liquidity=LiquiditySide.TAKER,  # fills listed in the placement answer took liquidity
            ts_event=ts_updated,
            ts_init=ts_init,
        )
        for item in wire.fills
    ]
    return snapshot, fills


def _spot_working(wire: WireSpotOrder) -> bool:
    """A spot stop / take-profit has triggered once it works (or has traded)."""
    if wire.executed_qty > 0:
        return True
    return wire.is_working if wire.is_working is not None else wire.working_time > 0


class WireOrderListEntry(msgspec.Struct, gc=False, rename="camel"):
    symbol: str
    order_id: int
    client_order_id: str


class WireSpotOrderList(msgspec.Struct, gc=False, rename="camel"):
    """`POST /api/v3/orderList/oco` answer."""

    order_list_id: int
    list_client_order_id: str
    symbol: str
    list_order_status: str = "EXECUTING"
    transaction_time: int = 0
    orders: list[WireOrderListEntry] = []
    order_reports: list[WireSpotOrder] = []


# ---- futures orders ------------------------------------------------------------------------------
class WireFuturesOrder(msgspec.Struct, gc=False, rename="camel"):
    """USD-M order answer (new RESULT/ACK, cancel, query, modify)."""

    symbol: str
    order_id: int
    client_order_id: str
    status: str = "NEW"
    price: Decimal = ZERO
    avg_price: Decimal = ZERO
    orig_qty: Decimal = ZERO
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    time_in_force: str | None = None
    type: str = "LIMIT"
    orig_type: str | None = None
    side: str = "BUY"
    reduce_only: bool = False
    close_position: bool = False
    stop_price: Decimal | None = None
    working_type: str = "CONTRACT_PRICE"
    activate_price: Decimal | None = None
    price_rate: Decimal | None = None
    good_till_date: int = 0
    time: int = 0
    update_time: int = 0


def parse_futures_order(wire: WireFuturesOrder, ts_init: int) -> OrderSnapshot:
    order_type = core_order_type(Market.FUTURES, wire.orig_type or wire.type)
    created = wire.time or wire.update_time
    return OrderSnapshot(
        order_id=wire.order_id,
        client_order_id=ClientOrderId(wire.client_order_id),
        market=Market.FUTURES,
        symbol=wire.symbol,
        side=Side(wire.side),
        order_type=order_type,
        status=order_status(wire.status),
        quantity=wire.orig_qty,
        filled_quantity=wire.executed_qty,
        cumulative_quote=wire.cum_quote,
        ts_created=ns(created) if created else ts_init,
        ts_updated=ns(wire.update_time) if wire.update_time else ts_init,
        price=positive(wire.price),
        stop_price=positive(wire.stop_price),
        time_in_force=time_in_force(wire.time_in_force),
        reduce_only=wire.reduce_only,
        close_position=wire.close_position,
        working_type=_WORKING_TYPE.get(wire.working_type, WorkingType.CONTRACT_PRICE),
        activation_price=positive(wire.activate_price),
        trailing_callback_rate=positive(wire.price_rate),
        good_till_ns=ns(wire.good_till_date) if wire.good_till_date else None,
    )


# ---- futures algo (conditional) orders -----------------------------------------------------------
ALGO_STATUS: Mapping[str, OrderStatus] = {
    "NEW": OrderStatus.NEW,
    "TRIGGERING": OrderStatus.NEW,  # condition met, on its way to the matching engine
    "TRIGGERED": OrderStatus.NEW,  # working in the matching engine: its own updates follow
    "FINISHED": OrderStatus.NEW,  # done in the matching engine: the resulting order tells how
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}
ALGO_TRIGGERED = frozenset({"TRIGGERING", "TRIGGERED", "FINISHED"})


class WireAlgoOrder(msgspec.Struct, gc=False, rename="camel"):
    """`/fapi/v1/algoOrder` answer (new, cancel, query) and `openAlgoOrders` rows."""

    algo_id: int
    client_algo_id: str
    symbol: str = ""
    order_type: str = "STOP_MARKET"
    side: str = "BUY"
    time_in_force: str | None = None
    quantity: Decimal = ZERO
    algo_status: str = "NEW"
    actual_order_id: str | int | None = None
    trigger_price: Decimal | None = None
    price: Decimal | None = None
    working_type: str = "CONTRACT_PRICE"
    close_position: bool = False
    reduce_only: bool = False
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None
    create_time: int = 0
    update_time: int = 0
    trigger_time: int = 0
    good_till_date: int = 0

    @property
    def resulting_order_id(self) -> int | None:
        """The matching-engine order created when the condition was met (None before)."""
        value = self.actual_order_id
        if value is None or value == "":
            return None
        return int(value)


def parse_algo_order(wire: WireAlgoOrder, ts_init: int) -> OrderSnapshot:
    """The conditional order as the venue's order, keyed by its client algo id. Its fills and final
    state come from the resulting order (`resulting_order_id`); `order_id` is the algo id."""
    try:
        status = ALGO_STATUS[wire.algo_status]
    except KeyError:
        raise DataError(f"unknown algo status {wire.algo_status!r}") from None
    updated = max(wire.update_time, wire.trigger_time, wire.create_time)
    return OrderSnapshot(
        order_id=wire.algo_id,
        client_order_id=ClientOrderId(wire.client_algo_id),
        market=Market.FUTURES,
        symbol=wire.symbol,
        side=Side(wire.side),
        order_type=core_order_type(Market.FUTURES, wire.order_type),
        status=status,
        quantity=wire.quantity,
        filled_quantity=ZERO,
        cumulative_quote=ZERO,
        ts_created=ns(wire.create_time) if wire.create_time else ts_init,
        ts_updated=ns(updated) if updated else ts_init,
        price=positive(wire.price),
        stop_price=positive(wire.trigger_price),
        time_in_force=time_in_force(wire.time_in_force),
        reduce_only=wire.reduce_only,
        close_position=wire.close_position,
        working_type=_WORKING_TYPE.get(wire.working_type, WorkingType.CONTRACT_PRICE),
        activation_price=positive(wire.activate_price),
        trailing_callback_rate=positive(wire.callback_rate),
        triggered=wire.algo_status in ALGO_TRIGGERED,
        good_till_ns=ns(wire.good_till_date) if wire.good_till_date else None,
    )


# ---- trades (REST fallback for fills) ------------------------------------------------------------
class WireSpotTrade(msgspec.Struct, gc=False, rename="camel"):
    """`GET /api/v3/myTrades` row."""

    symbol: str
    id: int
    order_id: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


class WireFuturesTrade(msgspec.Struct, gc=False, rename="camel"):
    """`GET /fapi/v1/userTrades` row."""

    symbol: str
    id: int
    order_id: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    side: str
    maker: bool
    realized_pnl: Decimal = ZERO


def parse_trade(wire: WireSpotTrade | WireFuturesTrade, client_order_id: ClientOrderId, ts_init: int) -> Fill:
    if isinstance(wire, WireSpotTrade):
        market, side, maker, realized = (
            Market.SPOT,
            Side.BUY if wire.is_buyer else Side.SELL,
            wire.is_maker,
            ZERO,
        )
    else:
        market, side, maker, realized = Market.FUTURES, Side(wire.side), wire.maker, wire.realized_pnl
    return Fill(
        client_order_id=client_order_id,
        venue_order_id=VenueOrderId(wire.order_id),
        trade_id=TradeId(wire.id),
        market=market,
        symbol=wire.symbol,
        side=side,
        price=wire.price,
        quantity=wire.qty,
        fee=wire.commission,
        fee_asset=wire.commission_asset,
        liquidity=LiquiditySide.MAKER if maker else LiquiditySide.TAKER,
        ts_event=ns(wire.time),
        ts_init=ts_init,
        realized_pnl=realized,
    )


# ---- balances and positions ----------------------------------------------------------------------
class WireSpotBalance(msgspec.Struct, gc=False):
    asset: str
    free: Decimal
    locked: Decimal


class WireSpotAccount(msgspec.Struct, gc=False, rename="camel"):
    """`GET /api/v3/account` (the fields we use)."""

    balances: list[WireSpotBalance]
    update_time: int = 0


def parse_spot_balances(wire: WireSpotAccount) -> list[Balance]:
    return [Balance(Market.SPOT, b.asset, b.free, b.locked, b.free + b.locked) for b in wire.balances]


class WireFuturesBalance(msgspec.Struct, gc=False, rename="camel"):
    """`GET /fapi/v3/balance` row."""

    asset: str
    balance: Decimal
    available_balance: Decimal = ZERO
    cross_un_pnl: Decimal = ZERO
    cross_wallet_balance: Decimal = ZERO
    update_time: int = 0


def parse_futures_balance(wire: WireFuturesBalance) -> Balance:
    """Wallet as reported; free = available balance; locked = margin balance − available (the margin
    in use), never negative."""
    margin_balance = wire.balance + wire.cross_un_pnl
    locked = max(ZERO, margin_balance - wire.available_balance)
    return Balance(Market.FUTURES, wire.asset, wire.available_balance, locked, wire.balance, wire.cross_un_pnl)


class WirePositionRisk(msgspec.Struct, gc=False, rename="camel"):
    """`GET /fapi/v3/positionRisk` row (v2 adds `leverage` and `marginType`, read when present)."""

    symbol: str
    position_amt: Decimal
    entry_price: Decimal = ZERO
    mark_price: Decimal = ZERO
    un_realized_profit: Decimal = ZERO
    liquidation_price: Decimal = ZERO
    isolated_margin: Decimal = ZERO
    isolated_wallet: Decimal = ZERO
    notional: Decimal = ZERO
    initial_margin: Decimal = ZERO
    position_initial_margin: Decimal = ZERO
    maint_margin: Decimal = ZERO
    position_side: str = "BOTH"
    leverage: int | None = None
    margin_type: str | None = None
    update_time: int = 0


def parse_position_risk(
    wire: WirePositionRisk, ts_init: int, leverage: int | None = None, margin_type: MarginType | None = None
) -> PositionSnapshot:
    """A position row. Leverage and margin type: the row's own (v2), else what this process set
    (`leverage`, `margin_type`), else derived (notional / position margin; isolated when the row has
    an isolated wallet), else 0 (unknown) and CROSSED (Binance's default)."""
    if wire.leverage is not None:
        leverage = wire.leverage
    elif leverage is None:
        margin = wire.position_initial_margin or wire.initial_margin
        leverage = int((abs(wire.notional) / margin).to_integral_value()) if margin and wire.notional else 0
    if wire.margin_type is not None:
        margin_type = MarginType.ISOLATED if wire.margin_type.lower() == "isolated" else MarginType.CROSSED
    elif margin_type is None:
        isolated = wire.isolated_wallet != 0 or wire.isolated_margin != 0
        margin_type = MarginType.ISOLATED if isolated else MarginType.CROSSED
    return PositionSnapshot(
        market=Market.FUTURES,
        symbol=wire.symbol,
        quantity=wire.position_amt,
        entry_price=wire.entry_price,
        mark_price=wire.mark_price,
        unrealized_pnl=wire.un_realized_profit,
        realized_pnl=ZERO,  # positionRisk has none; the stream's ACCOUNT_UPDATE `cr` fills it in
        leverage=leverage,
        margin_type=margin_type,
        isolated_wallet=wire.isolated_wallet,
        initial_margin=wire.position_initial_margin or wire.initial_margin,
        maintenance_margin=wire.maint_margin,
        liquidation_price=positive(wire.liquidation_price),
        ts_updated=ns(wire.update_time) if wire.update_time else ts_init,
    )

"""The engine's order record and the exchange's acceptance rules for new orders.

Validation follows spec/binance-protocol.md §5.6 and §7: the same request is refused with the same
code the exchange would give (spot filter failures are -1013 "Filter failure: ...", futures have one code
per violation; duplicate client ids -2010 spot / -4116 futures; and so on).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.errors import InvalidOrderError
from kestrel.core.identifiers import CLIENT_ORDER_ID_PATTERN, ClientOrderId
from kestrel.core.instrument import FUTURES_CODES, SPOT_FILTER_FAILURE, Instrument
from kestrel.core.venue import OrderRequest, OrderSnapshot, WorkingType
from kestrel.matching.accounts import Lock

ZERO = Decimal(0)

# expiry reasons (OrderSnapshot.expiry_reason), see docs/matching.md
EXPIRED_IOC = "IOC_REMAINDER"
EXPIRED_MARKET = "MARKET_REMAINDER"
EXPIRED_REDUCE_ONLY = "REDUCE_ONLY"
EXPIRED_OCO = "OCO_TRIGGER"
EXPIRED_LIQUIDATION = "LIQUIDATION"
EXPIRED_GTD = "GTD"
EXPIRED_BALANCE = "INSUFFICIENT_BALANCE"
EXPIRED_NO_POSITION = "POSITION_ZERO"

SPOT_TYPES = frozenset(
    {
        OrderType.MARKET,
        OrderType.LIMIT,
        OrderType.LIMIT_MAKER,
        OrderType.STOP_MARKET,
        OrderType.STOP_LIMIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TAKE_PROFIT_LIMIT,
    }
)
FUTURES_TYPES = frozenset(set(OrderType) - {OrderType.LIMIT_MAKER})
SPOT_TIME_IN_FORCE = frozenset({TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK})
STOP_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})
TAKE_PROFIT_TYPES = frozenset({OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT})
MARKET_LIKE = frozenset(
    {OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET, OrderType.TRAILING_STOP_MARKET}
)


def reject(message: str, code: int) -> InvalidOrderError:
    return InvalidOrderError(message, code)


def mandatory(name: str) -> InvalidOrderError:
    return reject(f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.", -1102)


def not_required(name: str) -> InvalidOrderError:
    return reject(f"Parameter '{name}' sent when not required.", -1106)


@dataclass(slots=True, eq=False)
class SimOrder:
    """An order inside the engine. Decimal money; `slot` is its row in the kernel's order table."""

    order_id: int
    account_id: str
    client_order_id: ClientOrderId
    instrument: Instrument
    side: Side
    order_type: OrderType
    quantity: Decimal
    ts_created: int
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    close_position: bool = False
    iceberg_quantity: Decimal | None = None
    quote_order_quantity: Decimal | None = None
    working_type: WorkingType = WorkingType.CONTRACT_PRICE
    activation_price: Decimal | None = None
    trailing_callback_rate: Decimal | None = None
    trailing_delta_bips: int | None = None
    good_till_ns: int | None = None
    order_list_id: int = -1
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = ZERO
    cumulative_quote: Decimal = ZERO
    ts_updated: int = 0
    triggered: bool = False
    expiry_reason: str | None = None
    slot: int = -1
    lock: Lock | None = None
    margin_reserved: Decimal = ZERO
    reported: OrderSnapshot | None = None  # the snapshot of the last order update the engine emitted

    @property
    def market(self) -> Market:
        return self.instrument.market

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def leaves(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def is_conditional(self) -> bool:
        return self.order_type.is_conditional

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def works_as_market(self) -> bool:
        """Market orders, and conditional ones that execute as market orders once triggered."""
        return self.order_type in MARKET_LIKE

    def final_snapshot(self) -> OrderSnapshot:
        """The order as it is now. A terminal order was reported at its last visible change (the engine
        emits an update whenever status, fills or reasons change), so that report is reused."""
        if self.reported is not None and self.status.is_terminal:
            return self.reported
        return self.snapshot()

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            market=self.market,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            status=self.status,
            quantity=self.quantity,
            filled_quantity=self.filled,
            cumulative_quote=self.cumulative_quote,
            ts_created=self.ts_created,
            ts_updated=self.ts_updated,
            price=self.price,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
            reduce_only=self.reduce_only,
            close_position=self.close_position,
            iceberg_quantity=self.iceberg_quantity,
            working_type=self.working_type,
            activation_price=self.activation_price,
            trailing_callback_rate=self.trailing_callback_rate,
            trailing_delta_bips=self.trailing_delta_bips,
            order_list_id=self.order_list_id,
            triggered=self.triggered,
            good_till_ns=self.good_till_ns,
            expiry_reason=self.expiry_reason,
        )


def validate_client_order_id(value: str, market: Market) -> None:
    if market is Market.FUTURES and len(value) > 36:
        raise reject("Client order id is not valid.", -4015)
    if CLIENT_ORDER_ID_PATTERN.fullmatch(value) is None:
        raise reject(
            "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            -1100,
        )


def validate_shape(request: OrderRequest, instrument: Instrument, now_ns: int) -> None:
    """Parameter rules that need no market state: types, mandatory and forbidden parameters, filters."""
    market = instrument.market
    kind = request.order_type
    allowed = SPOT_TYPES if market is Market.SPOT else FUTURES_TYPES
    if kind not in allowed:
        raise reject("Invalid orderType.", -1116)
    tif = request.time_in_force
    if tif is not None and market is Market.SPOT and tif not in SPOT_TIME_IN_FORCE:
        raise reject("Invalid timeInForce.", -1115)
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT) and tif is None:
        raise mandatory("timeInForce")
    if kind is OrderType.MARKET and tif is not None and market is Market.SPOT:
        raise not_required("timeInForce")
    if tif is TimeInForce.GTD:
        if request.good_till_ns is None:
            raise mandatory("goodTillDate")
        if request.good_till_ns <= now_ns + 600 * 1_000_000_000:
            raise reject("goodTillDate must be greater than current time plus 600 seconds.", -1130)
    if kind.has_price and request.price is None:
        raise mandatory("price")
    if not kind.has_price and request.price is not None:
        raise not_required("price")
    _validate_conditional(request, market)
    _validate_quantity_rules(request, market)
    _validate_filters(request, instrument)


def _validate_conditional(request: OrderRequest, market: Market) -> None:
    kind = request.order_type
    if kind is OrderType.TRAILING_STOP_MARKET:
        rate = request.trailing_callback_rate
        if rate is None:
            raise mandatory("callbackRate")
        if not Decimal("0.1") <= rate <= Decimal(10):
            raise reject("Invalid callBack rate.", -2007)
    elif kind.is_conditional:
        spot_trailing = market is Market.SPOT and request.trailing_delta_bips is not None
        if request.stop_price is None and not spot_trailing:
            raise mandatory("stopPrice")
        if request.trailing_delta_bips is not None and not 10 <= request.trailing_delta_bips <= 2000:
            raise reject("Filter failure: TRAILING_DELTA", -1013)
    elif request.stop_price is not None:
        raise not_required("stopPrice")
    if request.trailing_delta_bips is not None and (market is Market.FUTURES or not kind.is_conditional):
        raise not_required("trailingDelta")
    if request.activation_price is not None and kind is not OrderType.TRAILING_STOP_MARKET:
        raise not_required("activationPrice")
    if request.working_type is WorkingType.MARK_PRICE and (market is Market.SPOT or not kind.is_conditional):
        raise not_required("workingType")


def _validate_quantity_rules(request: OrderRequest, market: Market) -> None:
    kind = request.order_type
    if request.close_position:
        if market is Market.SPOT or kind not in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
            raise not_required("closePosition")
        if request.quantity is not None:
            raise not_required("quantity")
        if request.reduce_only:
            raise not_required("reduceOnly")
    elif request.quote_order_quantity is not None:
        if market is Market.FUTURES or kind is not OrderType.MARKET:
            raise not_required("quoteOrderQty")
        if request.quantity is not None:
            raise reject("Cannot send both quantity and quoteOrderQty.", -1102)
        if request.quote_order_quantity <= 0:
            raise mandatory("quoteOrderQty")
    elif request.quantity is None:
        raise mandatory("quantity")
    if request.reduce_only and market is Market.SPOT:
        raise not_required("reduceOnly")
    _validate_iceberg(request, market)


def _validate_iceberg(request: OrderRequest, market: Market) -> None:
    if request.iceberg_quantity is None:
        return
    if market is Market.FUTURES or request.order_type not in (OrderType.LIMIT, OrderType.LIMIT_MAKER):
        raise not_required("icebergQty")
    if request.time_in_force not in (None, TimeInForce.GTC):
        raise reject("Iceberg orders must be GTC.", -2010)
    if request.quantity is not None and not ZERO < request.iceberg_quantity < request.quantity:
        raise reject("Filter failure: ICEBERG_PARTS", -1013)


def price_error(instrument: Instrument, price: Decimal) -> InvalidOrderError | None:
    """The exchange's error for a price off PRICE_FILTER (also used for stop and activation prices)."""
    if price <= 0:
        kind, reason = "non_positive", f"price must be positive, got {price}"
    else:
        problem = instrument.price_filter.violation(price, instrument.market)
        if problem is None:
            return None
        kind, reason = problem
    if instrument.market is Market.SPOT:
        code = SPOT_FILTER_FAILURE
    else:
        code = FUTURES_CODES.get(("price", kind), SPOT_FILTER_FAILURE)
    return InvalidOrderError(f"{instrument.symbol}: Filter failure: PRICE_FILTER: {reason}", code)


def _validate_filters(request: OrderRequest, instrument: Instrument) -> None:
    """Grid rules of quantity and prices; the notional rule needs a price and is the engine's."""
    lot_type = OrderType.MARKET if request.order_type in MARKET_LIKE else OrderType.LIMIT
    if request.quantity is not None:
        instrument.validate(None, request.quantity, lot_type)
    if request.iceberg_quantity is not None:
        instrument.validate(None, request.iceberg_quantity, OrderType.LIMIT)
    for price in (request.price, request.stop_price, request.activation_price):
        if price is not None:
            error = price_error(instrument, price)
            if error is not None:
                raise error

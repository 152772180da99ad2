"""Order-side domain types: Order (a state machine), Fill, Position, Intent, Signal.

Money and quantities are Decimal. Times are integer nanoseconds (`ts_*`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from kestrel.core.enums import (
    Decision,
    LiquiditySide,
    Market,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    TimeInForce,
)
from kestrel.core.errors import KestrelError
from kestrel.core.identifiers import ClientOrderId, IntentId, SignalId, StrategyId, TradeId, VenueOrderId

_ZERO = Decimal(0)

# Allowed status transitions. UNKNOWN is entered when a submission's outcome is not known (HTTP 5xx,
# timeout) and left only by what a query or the user data stream says.
_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.INITIALIZED: frozenset({OrderStatus.SUBMITTED, OrderStatus.REJECTED}),
    OrderStatus.SUBMITTED: frozenset(
        {
            OrderStatus.NEW,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
            OrderStatus.CANCELED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.UNKNOWN: frozenset(
        {
            OrderStatus.NEW,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
            OrderStatus.CANCELED,
        }
    ),
    OrderStatus.NEW: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.PENDING_CANCEL,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.PENDING_CANCEL,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PENDING_CANCEL: frozenset(
        {OrderStatus.CANCELED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class InvalidTransition(KestrelError):
    """An order event arrived that its current status does not allow (a bug or a venue anomaly)."""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order. `fee` is in `fee_asset`; `realized_pnl` is the venue's (futures)."""

    client_order_id: ClientOrderId
    venue_order_id: VenueOrderId
    trade_id: TradeId
    market: Market
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: LiquiditySide
    ts_event: int
    ts_init: int
    realized_pnl: Decimal = _ZERO

    @property
    def notional(self) -> Decimal:
        return self.price * self.quantity


@dataclass(slots=True)
class Order:
    """An order and its life cycle. Mutate only through `apply_status` and `apply_fill`."""

    client_order_id: ClientOrderId
    intent_id: IntentId
    market: Market
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    ts_init: int
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    close_position: bool = False
    iceberg_quantity: Decimal | None = None
    trailing_callback_rate: Decimal | None = None  # percent, futures TRAILING_STOP_MARKET
    activation_price: Decimal | None = None
    status: OrderStatus = OrderStatus.INITIALIZED
    venue_order_id: VenueOrderId | None = None
    filled_quantity: Decimal = _ZERO
    average_price: Decimal = _ZERO
    fees: dict[str, Decimal] = field(default_factory=dict)
    ts_last: int = 0
    reject_reason: str | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0 and not self.close_position:
            raise ValueError(f"order {self.client_order_id}: quantity must be positive")
        if self.order_type.has_price and (self.price is None or self.price <= 0):
            raise ValueError(f"order {self.client_order_id}: {self.order_type.value} needs a positive price")
        needs_stop = self.order_type.is_conditional and self.order_type is not OrderType.TRAILING_STOP_MARKET
        if needs_stop and (self.stop_price is None or self.stop_price <= 0):
            raise ValueError(f"order {self.client_order_id}: {self.order_type.value} needs a stop price")
        self.ts_last = self.ts_init

    @classmethod
    def restore(cls, **fields: object) -> Order:
        """Rebuild an order as a venue or the ledger reported it, without the entry checks of a new
        order: a reported order may legitimately lack fields (a rejected order with no price)."""
        order = object.__new__(cls)
        defaults = {
            "price": None, "stop_price": None, "time_in_force": None, "reduce_only": False,
            "close_position": False, "iceberg_quantity": None, "trailing_callback_rate": None,
            "activation_price": None, "status": OrderStatus.INITIALIZED, "venue_order_id": None,
            "filled_quantity": _ZERO, "average_price": _ZERO, "reject_reason": None,
        }  # fmt: skip
        values = {**defaults, **fields}
        values.setdefault("fees", {})
        values.setdefault("ts_last", values["ts_init"])
        for name in cls.__dataclass_fields__:
            object.__setattr__(order, name, values[name])
        return order

    @property
    def leaves_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def can_transition(self, status: OrderStatus) -> bool:
        return status in _TRANSITIONS[self.status]

    def apply_status(self, status: OrderStatus, ts: int, reason: str | None = None) -> None:
        """Move to `status`; raises InvalidTransition when the life cycle forbids it."""
        if status is self.status and status is not OrderStatus.PARTIALLY_FILLED:
            self.ts_last = max(self.ts_last, ts)
            return
        if not self.can_transition(status):
            raise InvalidTransition(f"order {self.client_order_id}: {self.status.value} -> {status.value}")
        self.status = status
        self.ts_last = max(self.ts_last, ts)
        if reason is not None:
            self.reject_reason = reason

    def apply_fill(self, fill: Fill) -> None:
        """Account a fill: filled quantity, volume-weighted average price, fees, status."""
        if fill.client_order_id != self.client_order_id:
            raise ValueError(f"fill for {fill.client_order_id} applied to {self.client_order_id}")
        if fill.quantity <= 0:
            raise ValueError("fill quantity must be positive")
        new_filled = self.filled_quantity + fill.quantity
        if new_filled > self.quantity and not self.close_position:
            raise InvalidTransition(f"order {self.client_order_id}: overfill {new_filled} > {self.quantity}")
        self.average_price = (self.average_price * self.filled_quantity + fill.price * fill.quantity) / new_filled
        self.filled_quantity = new_filled
        self.fees[fill.fee_asset] = self.fees.get(fill.fee_asset, _ZERO) + fill.fee
        if fill.venue_order_id and self.venue_order_id is None:
            self.venue_order_id = fill.venue_order_id
        target = OrderStatus.FILLED if new_filled >= self.quantity else OrderStatus.PARTIALLY_FILLED
        self.apply_status(target, fill.ts_event)


@dataclass(slots=True)
class Position:
    """Net position in one instrument (one-way mode). `quantity` is signed: > 0 long, < 0 short."""

    market: Market
    symbol: str
    quantity: Decimal = _ZERO
    average_entry_price: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO  # price PnL only, before fees and funding
    fees: Decimal = _ZERO  # in the quote/margin asset
    funding: Decimal = _ZERO  # received (+) or paid (−)
    ts_opened: int = 0
    ts_last: int = 0

    @property
    def side(self) -> PositionSide:
        if self.quantity > 0:
            return PositionSide.LONG
        if self.quantity < 0:
            return PositionSide.SHORT
        return PositionSide.FLAT

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        return (price - self.average_entry_price) * self.quantity

    def apply_fill(self, side: Side, price: Decimal, quantity: Decimal, fee_quote: Decimal, ts: int) -> Decimal:
        """Apply a fill; returns the price PnL it realised. Reversals close first, then open the rest."""
        if quantity <= 0 or price <= 0:
            raise ValueError("fill price and quantity must be positive")
        signed = quantity * side.sign
        realized = _ZERO
        self.fees += fee_quote
        if self.quantity == 0 or (self.quantity > 0) == (signed > 0):
            total = self.quantity + signed
            self.average_entry_price = (self.average_entry_price * abs(self.quantity) + price * quantity) / abs(total)
            if self.quantity == 0:
                self.ts_opened = ts
            self.quantity = total
        else:
            closing = min(abs(signed), abs(self.quantity))
            direction = 1 if self.quantity > 0 else -1
            realized = (price - self.average_entry_price) * closing * direction
            self.realized_pnl += realized
            remainder = abs(signed) - closing
            if remainder > 0:  # reversal: the rest opens a new position at the fill price
                self.quantity = remainder * side.sign
                self.average_entry_price = price
                self.ts_opened = ts
            else:
                self.quantity += signed
                if self.quantity == 0:
                    self.average_entry_price = _ZERO
        self.ts_last = ts
        return realized


@dataclass(frozen=True, slots=True)
class Intent:
    """What a strategy wants done; the router turns it into orders (client ids derive from intent_id)."""

    intent_id: IntentId
    strategy_id: StrategyId
    market: Market
    symbol: str
    side: Side
    quantity: Decimal
    ts_init: int
    order_type: OrderType = OrderType.LIMIT
    price: Decimal | None = None
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    reduce_only: bool = False
    signal_id: SignalId | None = None
    config_rev: str | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"intent {self.intent_id}: quantity must be positive")
        if self.price is not None and self.price <= 0:
            raise ValueError(f"intent {self.intent_id}: price must be positive")


@dataclass(frozen=True, slots=True)
class Signal:
    """A decision and why (R-OP-9). `ts_infer` is when the decision used the data."""

    signal_id: SignalId
    strategy_id: StrategyId
    market: Market
    symbol: str
    decision: Decision
    ts_event: int
    ts_init: int
    ts_infer: int
    side: Side | None = None
    p_up: float | None = None
    expected_return: float | None = None
    utility: float | None = None
    size_multiplier: float = 1.0
    regime: str | None = None
    model_version: str | None = None
    config_rev: str | None = None
    reasons: tuple[str, ...] = ()
    features_top: tuple[tuple[str, float], ...] = ()
    quality_flags: int = 0

    @property
    def decision_latency_ns(self) -> int:
        return self.ts_infer - self.ts_init

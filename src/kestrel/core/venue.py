"""The `Venue` interface: the one way strategy, execution and risk code talks to an exchange.

Firm (ARCHITECTURE.md §1): the same strategy class runs against `SimVenue` (our matching engine, in
process, for backtests and paper trading) and against `BinanceVenue` (REST + user data stream, real
exchange or our simulator). So the interface is event-driven and synchronous:

- commands (`submit_order`, `submit_oco`, `cancel_order`, `modify_order`) return at once; their
  outcome arrives later as `OrderUpdate` events (acknowledged, filled, rejected ...) through the handler
  given to `set_event_handler`. A rejection is an event, never an exception, because on a real venue it
  is only known after a round trip.
- queries (`order`, `open_orders`, `positions`, `balances`) answer from what the venue has reported so
  far (the local view), without I/O.

Everything here is plain data: the simulator's protocol server and the live adapter both translate
these objects to and from Binance's wire formats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum, unique
from typing import Protocol, runtime_checkable

from kestrel.core.enums import MarginType, Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.orders import Fill

_ZERO = Decimal(0)


@unique
class WorkingType(StrEnum):
    """Which price a futures conditional order watches (Binance `workingType`)."""

    CONTRACT_PRICE = "CONTRACT_PRICE"  # last traded price
    MARK_PRICE = "MARK_PRICE"


@unique
class ExecutionType(StrEnum):
    """Why an order update was sent (Binance execution type `x`, plus TRIGGERED for conditionals)."""

    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    TRIGGERED = "TRIGGERED"  # a stop / take-profit / trailing order's condition was met
    AMENDMENT = "AMENDMENT"  # price or quantity modified
    CALCULATED = "CALCULATED"  # liquidation execution (futures)


@unique
class AccountUpdateReason(StrEnum):
    """Why balances or positions changed (Binance ACCOUNT_UPDATE `m`)."""

    DEPOSIT = "DEPOSIT"
    WITHDRAW = "WITHDRAW"  # money left the wallet (a transfer out, on Binance too)
    ORDER = "ORDER"
    FUNDING_FEE = "FUNDING_FEE"
    LIQUIDATION = "LIQUIDATION"
    MARGIN_TYPE_CHANGE = "MARGIN_TYPE_CHANGE"
    LEVERAGE_CHANGE = "LEVERAGE_CHANGE"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order as the strategy asks for it. Decimal money; optional fields by order type.

    - `quantity` is None only for `close_position` orders and spot MARKET orders sized by
      `quote_order_quantity`.
    - `stop_price` is the trigger of STOP_* / TAKE_PROFIT_* orders (futures `triggerPrice`).
    - trailing stops: futures `trailing_callback_rate` (percent, 0.1–10) with optional
      `activation_price`; spot uses `trailing_delta_bips` (basis points) on stop / take-profit types.
    - `good_till_ns` is the expiry of a GTD order.
    """

    market: Market
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    client_order_id: ClientOrderId | None = None
    reduce_only: bool = False
    close_position: bool = False
    iceberg_quantity: Decimal | None = None
    quote_order_quantity: Decimal | None = None
    trailing_callback_rate: Decimal | None = None
    trailing_delta_bips: int | None = None
    activation_price: Decimal | None = None
    working_type: WorkingType = WorkingType.CONTRACT_PRICE
    good_till_ns: int | None = None


@dataclass(frozen=True, slots=True)
class OcoLeg:
    """One leg of a spot OCO order list (`above*` / `below*` parameters)."""

    order_type: OrderType
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    client_order_id: ClientOrderId | None = None
    trailing_delta_bips: int | None = None


@dataclass(frozen=True, slots=True)
class OcoRequest:
    """A spot OCO: two legs on one quantity; when one executes (or is cancelled) the other is cancelled."""

    symbol: str
    side: Side
    quantity: Decimal
    above: OcoLeg
    below: OcoLeg
    list_client_order_id: str | None = None
    market: Market = Market.SPOT


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """An order as the venue reports it at one moment."""

    order_id: int
    client_order_id: ClientOrderId
    market: Market
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal
    cumulative_quote: Decimal
    ts_created: int
    ts_updated: int
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    close_position: bool = False
    iceberg_quantity: Decimal | None = None
    working_type: WorkingType = WorkingType.CONTRACT_PRICE
    activation_price: Decimal | None = None
    trailing_callback_rate: Decimal | None = None
    trailing_delta_bips: int | None = None
    order_list_id: int = -1
    triggered: bool = False
    good_till_ns: int | None = None
    expiry_reason: str | None = None

    @property
    def average_price(self) -> Decimal:
        return self.cumulative_quote / self.filled_quantity if self.filled_quantity else _ZERO

    @property
    def leaves_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status.is_open


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An execution report: the order after the change, why it changed, and the fill if it traded.

    `code` / `reason` carry the exchange error code and message of a rejection, or the expiry reason.
    `ts_event` is when the venue made the change, `ts_init` when we learned of it.
    """

    account_id: str
    order: OrderSnapshot
    execution_type: ExecutionType
    ts_event: int
    ts_init: int
    fill: Fill | None = None
    code: int | None = None
    reason: str | None = None

    def received_at(self, ts_init: int) -> OrderUpdate:
        """The same update, learned of at `ts_init` (cheaper than dataclasses.replace on a hot path)."""
        return OrderUpdate(
            self.account_id, self.order, self.execution_type, self.ts_event, ts_init, self.fill, self.code, self.reason
        )


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset of one account.

    Spot: `free` and `locked` (by open orders); `wallet` = free + locked.
    Futures: `wallet` is the wallet balance (deposits + realised PnL − fees ± funding), `free` the
    available balance (margin balance − initial margin in use), `locked` the initial margin in use and
    `unrealized_pnl` the sum over positions at mark price.
    """

    market: Market
    asset: str
    free: Decimal
    locked: Decimal
    wallet: Decimal
    unrealized_pnl: Decimal = _ZERO

    @property
    def margin_balance(self) -> Decimal:
        return self.wallet + self.unrealized_pnl


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A futures position (one-way mode: signed `quantity`, > 0 long). `liquidation_price` is None when
    the position cannot be liquidated or, in an `AccountUpdate`, when it was not computed (Binance's
    ACCOUNT_UPDATE carries none; position queries do)."""

    market: Market
    symbol: str
    quantity: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    leverage: int
    margin_type: MarginType
    isolated_wallet: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    liquidation_price: Decimal | None
    ts_updated: int

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.mark_price


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """Balances and positions after a change (only the changed ones), and why."""

    account_id: str
    market: Market
    reason: AccountUpdateReason
    balances: tuple[Balance, ...]
    positions: tuple[PositionSnapshot, ...]
    ts_event: int
    ts_init: int

    def received_at(self, ts_init: int) -> AccountUpdate:
        return AccountUpdate(
            self.account_id, self.market, self.reason, self.balances, self.positions, self.ts_event, ts_init
        )


VenueEvent = OrderUpdate | AccountUpdate
VenueEventHandler = Callable[[VenueEvent], None]


@runtime_checkable
class Venue(Protocol):
    """What strategy, execution and risk code may do with an exchange (see module docstring)."""

    def set_event_handler(self, handler: VenueEventHandler) -> None:
        """Where `OrderUpdate` and `AccountUpdate` events are delivered, in the order they arrive."""
        ...

    def submit_order(self, request: OrderRequest) -> ClientOrderId:
        """Send a new order; returns its client order id (generated when the request has none)."""
        ...

    def submit_oco(self, request: OcoRequest) -> str:
        """Send a spot OCO order list; returns its list client id."""
        ...

    def cancel_order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> None: ...

    def modify_order(
        self,
        market: Market,
        symbol: str,
        client_order_id: ClientOrderId,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> None:
        """Change a resting limit order's price and/or quantity (keeps queue priority only when the
        price is unchanged and the quantity decreases)."""
        ...

    def order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> OrderSnapshot | None: ...

    def open_orders(self, market: Market | None = None, symbol: str | None = None) -> list[OrderSnapshot]: ...

    def positions(self) -> list[PositionSnapshot]: ...

    def balances(self, market: Market) -> list[Balance]: ...


@runtime_checkable
class BookView(Protocol):
    """A read-only view of one symbol's order book as the strategy sees it (backtest: the delayed local
    book; live: the synchronised local book). Prices and quantities are exact Decimals; `*_tick` are
    the same prices in integer ticks (-1: that side is empty)."""

    @property
    def symbol(self) -> str: ...

    @property
    def best_bid_price(self) -> Decimal | None: ...

    @property
    def best_ask_price(self) -> Decimal | None: ...

    @property
    def best_bid_qty(self) -> Decimal: ...

    @property
    def best_ask_qty(self) -> Decimal: ...

    @property
    def best_bid_tick(self) -> int: ...

    @property
    def best_ask_tick(self) -> int: ...

    @property
    def mid(self) -> float | None: ...

    def bids(self, depth: int = 10) -> list[tuple[Decimal, Decimal]]: ...

    def asks(self, depth: int = 10) -> list[tuple[Decimal, Decimal]]: ...

"""Domain enums. Values equal the Binance wire strings where one exists."""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class Market(StrEnum):
    SPOT = "spot"
    FUTURES = "futures"  # USDT-M perpetual futures


@unique
class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


@unique
class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"  # spot post-only
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"  # futures wire name STOP, spot STOP_LOSS_LIMIT
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"  # futures wire name TAKE_PROFIT
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"

    @property
    def is_conditional(self) -> bool:
        return self in _CONDITIONAL

    @property
    def has_price(self) -> bool:
        return self in _PRICED


_CONDITIONAL = frozenset(
    {
        OrderType.STOP_MARKET,
        OrderType.STOP_LIMIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.TRAILING_STOP_MARKET,
    }
)
_PRICED = frozenset({OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})


@unique
class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"  # post-only (futures wire name; spot uses LIMIT_MAKER)
    GTD = "GTD"


@unique
class OrderStatus(StrEnum):
    """Order life cycle. INITIALIZED and SUBMITTED are ours (before the venue acknowledges)."""

    INITIALIZED = "INITIALIZED"
    SUBMITTED = "SUBMITTED"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"  # outcome not known (5xx / timeout): resolve by querying, never resubmit

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        return self in _OPEN


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})
_OPEN = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL})


@unique
class LiquiditySide(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


@unique
class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"
    FLAT = "FLAT"


@unique
class MarginType(StrEnum):
    ISOLATED = "ISOLATED"
    CROSSED = "CROSSED"


@unique
class InstrumentStatus(StrEnum):
    TRADING = "TRADING"
    HALT = "HALT"
    BREAK = "BREAK"
    END_OF_DAY = "END_OF_DAY"
    CANCEL_ONLY = "CANCEL_ONLY"
    PENDING_TRADING = "PENDING_TRADING"
    PRE_DELIVERING = "PRE_DELIVERING"
    DELIVERING = "DELIVERING"
    DELIVERED = "DELIVERED"
    PRE_SETTLE = "PRE_SETTLE"
    SETTLING = "SETTLING"
    CLOSE = "CLOSE"


@unique
class Decision(StrEnum):
    ENTER = "enter"
    SKIP = "skip"
    EXIT = "exit"

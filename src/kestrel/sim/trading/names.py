"""Wire names and number texts shared by the spot and USD-M formats.

Order types: the engine has one set (`OrderType`); the wire spells some differently per market
(spot `STOP_LOSS` / `STOP_LOSS_LIMIT` / `TAKE_PROFIT`; USD-M `STOP` / `TAKE_PROFIT` for the limit
variants). Numbers are strings: spot prints every price and quantity with 8 decimals, USD-M prints
`pricePrecision` / `quantityPrecision` decimals (the symbol's `SymbolSpec`), money with 8.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal

from kestrel.core.enums import Market, OrderType
from kestrel.sim.instruments import SymbolSpec

ZERO = Decimal(0)
ToMillis = Callable[[int], int]  # engine time (ns) → the server's clock (ms, skew included)

SPOT_TYPES: dict[str, OrderType] = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "LIMIT_MAKER": OrderType.LIMIT_MAKER,
    "STOP_LOSS": OrderType.STOP_MARKET,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT_MARKET,
    "TAKE_PROFIT_LIMIT": OrderType.TAKE_PROFIT_LIMIT,
}
FUTURES_TYPES: dict[str, OrderType] = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "STOP": OrderType.STOP_LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT_LIMIT,
    "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET,
    "TRAILING_STOP_MARKET": OrderType.TRAILING_STOP_MARKET,
}
_SPOT_NAMES = {kind: name for name, kind in SPOT_TYPES.items()}
_FUTURES_NAMES = {kind: name for name, kind in FUTURES_TYPES.items()}


def type_name(market: Market, kind: OrderType) -> str:
    names = _SPOT_NAMES if market is Market.SPOT else _FUTURES_NAMES
    return names.get(kind, kind.value)


def fixed(value: Decimal | None, decimals: int) -> str:
    """`value` with exactly `decimals` digits after the point (banker's rounding beyond them)."""
    number = value if value is not None else ZERO
    quantum = Decimal(1).scaleb(-max(decimals, 0))
    text = format(number.quantize(quantum, rounding=ROUND_HALF_EVEN), "f")
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.00"


def money(value: Decimal | None) -> str:
    """Balances, commissions, PnL and quote amounts: 8 decimals."""
    return fixed(value, 8)


class Numbers:
    """How one symbol prints prices and quantities on one market."""

    __slots__ = ("price_decimals", "quantity_decimals")

    def __init__(self, spec: SymbolSpec) -> None:
        self.price_decimals = spec.price_decimals
        self.quantity_decimals = spec.quantity_decimals

    def price(self, value: Decimal | None) -> str:
        return fixed(value, self.price_decimals)

    def quantity(self, value: Decimal | None) -> str:
        return fixed(value, self.quantity_decimals)

    def average(self, value: Decimal | None) -> str:
        """Average prices keep up to 8 decimals (they fall between ticks), at least the price's."""
        number = value if value is not None else ZERO
        text = fixed(number, 8).rstrip("0")
        digits = len(text.partition(".")[2])
        return fixed(number, max(self.price_decimals, min(8, digits)))

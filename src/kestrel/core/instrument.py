"""Instruments with their exchange filters and exact rounding.

All arithmetic is on Decimal, so rounded values are exact multiples of the tick or step with no
float artefacts. Rules follow spec/binance-protocol.md §5.2:

- Spot PRICE_FILTER / LOT_SIZE: ``value % step == 0``; futures: ``(value - min) % step == 0``
  (the grid is anchored at the minimum). A zero tick/step/min/max disables that check.
- MARKET orders use MARKET_LOT_SIZE when its step is non-zero, else LOT_SIZE.
- Spot MIN_NOTIONAL / NOTIONAL and futures MIN_NOTIONAL (key ``notional``) bound price × quantity.

Integer ticks/lots (`price_to_ticks`, `quantity_to_lots`) are the exact scaled-integer form that books
and the matching engine use on their hot paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from kestrel.core.enums import InstrumentStatus, Market, OrderType
from kestrel.core.errors import InvalidOrderError
from kestrel.core.identifiers import Symbol
from kestrel.core.numbers import Number, to_decimal

_ZERO = Decimal(0)


class Rounding(StrEnum):
    DOWN = "down"  # toward zero-side of the grid (floor)
    UP = "up"  # ceiling
    NEAREST = "nearest"  # half-even


_ROUNDING_MODES = {Rounding.DOWN: ROUND_FLOOR, Rounding.UP: ROUND_CEILING, Rounding.NEAREST: ROUND_HALF_EVEN}

# Binance error codes for filter failures (spec §7). Spot reports every filter failure as -1013
# "Filter failure: <FILTER>"; futures has one code per violation.
SPOT_FILTER_FAILURE = -1013
FUTURES_CODES = {
    ("qty", "non_positive"): -4003,
    ("qty", "below"): -4004,
    ("qty", "above"): -4005,
    ("qty", "grid"): -4023,
    ("price", "non_positive"): -4013,
    ("price", "below"): -4013,
    ("price", "above"): -1013,  # no dedicated futures code in our sources; the generic one
    ("price", "grid"): -4014,
    ("notional", "below"): -4164,
    ("notional", "above"): -1013,
}


@dataclass(frozen=True, slots=True)
class GridFilter:
    """A min/max/step rule (PRICE_FILTER or LOT_SIZE / MARKET_LOT_SIZE)."""

    name: str
    minimum: Decimal
    maximum: Decimal
    step: Decimal

    def anchor(self, market: Market) -> Decimal:
        return self.minimum if market is Market.FUTURES else _ZERO

    def on_grid(self, value: Decimal, market: Market) -> bool:
        if self.step == 0:
            return True
        return (value - self.anchor(market)) % self.step == 0

    def round(self, value: Decimal, market: Market, rounding: Rounding) -> Decimal:
        if self.step == 0:
            return value
        anchor = self.anchor(market)
        steps = ((value - anchor) / self.step).to_integral_value(rounding=_ROUNDING_MODES[rounding])
        # quantize to the step's exponent so the result prints as the exchange expects ("0.010")
        return (anchor + steps * self.step).quantize(self.step)

    def violation(self, value: Decimal, market: Market) -> tuple[str, str] | None:
        """None when `value` passes the filter, else (kind, reason); kind is below/above/grid."""
        if self.minimum != 0 and value < self.minimum:
            return "below", f"{value} below minimum {self.minimum}"
        if self.maximum != 0 and value > self.maximum:
            return "above", f"{value} above maximum {self.maximum}"
        if not self.on_grid(value, market):
            return "grid", f"{value} not a multiple of step {self.step}"
        return None


@dataclass(frozen=True, slots=True)
class NotionalFilter:
    """Price × quantity bounds (spot MIN_NOTIONAL / NOTIONAL, futures MIN_NOTIONAL)."""

    name: str
    minimum: Decimal
    maximum: Decimal | None = None
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False


@dataclass(frozen=True, slots=True)
class PercentPriceFilter:
    """Limit price within reference × [down, up] (spot: average price; futures: mark price)."""

    multiplier_up: Decimal
    multiplier_down: Decimal


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable symbol on one market, with the rules an order must satisfy."""

    symbol: Symbol
    market: Market
    base_asset: str
    quote_asset: str
    price_filter: GridFilter
    lot_size: GridFilter
    market_lot_size: GridFilter | None = None
    notional: NotionalFilter | None = None
    percent_price: PercentPriceFilter | None = None
    status: InstrumentStatus = InstrumentStatus.TRADING
    margin_asset: str | None = None
    contract_type: str | None = None  # PERPETUAL, CURRENT_QUARTER, ... (futures)
    order_types: frozenset[str] = field(default_factory=frozenset)
    max_num_orders: int | None = None
    liquidation_fee_rate: Decimal | None = None

    # ---- identity -------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Unique across markets: ``futures:BTCUSDT``."""
        return f"{self.market.value}:{self.symbol}"

    @property
    def tick_size(self) -> Decimal:
        return self.price_filter.step

    @property
    def step_size(self) -> Decimal:
        return self.lot_size.step

    @property
    def is_trading(self) -> bool:
        return self.status is InstrumentStatus.TRADING

    # ---- rounding ---------------------------------------------------------------------------
    def round_price(self, price: Number, rounding: Rounding = Rounding.NEAREST) -> Decimal:
        """Price on the tick grid. Raises InvalidOrderError when the result leaves [min, max]."""
        value = to_decimal(price, "price")
        if value <= 0:
            raise self._reject("price", "non_positive", "PRICE_FILTER", f"price must be positive, got {value}")
        rounded = self.price_filter.round(value, self.market, rounding)
        self._check_grid(self.price_filter, rounded, "price")
        return rounded

    def lot_filter(self, order_type: OrderType = OrderType.LIMIT) -> GridFilter:
        """MARKET orders use MARKET_LOT_SIZE when it defines a step; everything else LOT_SIZE."""
        if order_type is OrderType.MARKET and self.market_lot_size is not None and self.market_lot_size.step != 0:
            return self.market_lot_size
        return self.lot_size

    def round_quantity(
        self,
        quantity: Number,
        order_type: OrderType = OrderType.LIMIT,
        rounding: Rounding = Rounding.DOWN,
    ) -> Decimal:
        """Quantity on the step grid (down by default: never more than asked).

        Raises InvalidOrderError when the rounded quantity is below the minimum (or above the maximum):
        never silently returns an order the exchange would refuse.
        """
        value = to_decimal(quantity, "quantity")
        lot = self.lot_filter(order_type)
        if value <= 0:
            raise self._reject("qty", "non_positive", lot.name, f"quantity must be positive, got {value}")
        rounded = lot.round(value, self.market, rounding)
        if rounded <= 0:
            raise self._reject("qty", "below", lot.name, f"quantity {value} rounds to zero at step {lot.step}")
        self._check_grid(lot, rounded, "qty")
        return rounded

    def check_notional(self, price: Number, quantity: Number, order_type: OrderType = OrderType.LIMIT) -> None:
        """Raise InvalidOrderError when price × quantity breaks the notional filter."""
        if self.notional is None:
            return
        notional = to_decimal(price, "price") * to_decimal(quantity, "quantity")
        is_market = order_type is OrderType.MARKET
        rule = self.notional
        if (not is_market or rule.apply_min_to_market) and rule.minimum != 0 and notional < rule.minimum:
            raise self._reject("notional", "below", rule.name, f"notional {notional} below minimum {rule.minimum}")
        if (
            rule.maximum is not None
            and rule.maximum != 0
            and (not is_market or rule.apply_max_to_market)
            and notional > rule.maximum
        ):
            raise self._reject("notional", "above", rule.name, f"notional {notional} above maximum {rule.maximum}")

    def quantity_for_notional(
        self, notional: Number, price: Number, order_type: OrderType = OrderType.LIMIT
    ) -> Decimal:
        """The largest valid quantity whose notional at `price` does not exceed `notional`.

        Raises InvalidOrderError when even that quantity breaks LOT_SIZE or the notional minimum,
        so a sizing rule can never produce an order below the exchange's minimums without saying so.
        """
        budget = to_decimal(notional, "notional")
        at = to_decimal(price, "price")
        if budget <= 0 or at <= 0:
            raise self._reject("qty", "non_positive", "LOT_SIZE", "notional and price must be positive")
        quantity = self.round_quantity(budget / at, order_type, Rounding.DOWN)
        self.check_notional(at, quantity, order_type)
        return quantity

    def validate(self, price: Number | None, quantity: Number, order_type: OrderType) -> None:
        """Full filter check of an order as the exchange would do it (no rounding)."""
        qty = to_decimal(quantity, "quantity")
        lot = self.lot_filter(order_type)
        if qty <= 0:
            raise self._reject("qty", "non_positive", lot.name, "quantity must be positive")
        self._check_grid(lot, qty, "qty")
        if price is not None:
            px = to_decimal(price, "price")
            if px <= 0:
                raise self._reject("price", "non_positive", "PRICE_FILTER", "price must be positive")
            self._check_grid(self.price_filter, px, "price")
            self.check_notional(px, qty, order_type)

    def _check_grid(self, rule: GridFilter, value: Decimal, what: str) -> None:
        problem = rule.violation(value, self.market)
        if problem is not None:
            kind, reason = problem
            raise self._reject(what, kind, rule.name, reason)

    def _reject(self, what: str, kind: str, filter_name: str, reason: str) -> InvalidOrderError:
        if self.market is Market.SPOT:
            code = SPOT_FILTER_FAILURE
        else:
            code = FUTURES_CODES.get((what, kind), SPOT_FILTER_FAILURE)
        return InvalidOrderError(f"{self.symbol}: Filter failure: {filter_name}: {reason}", code)

    # ---- scaled integers ----------------------------------------------------------------------
    def price_to_ticks(self, price: Number) -> int:
        """Exact integer number of ticks; raises ValueError when `price` is off the grid."""
        value = to_decimal(price, "price")
        ticks, remainder = divmod(value, self.tick_size)
        if remainder != 0:
            raise ValueError(f"{self.symbol}: price {value} is not a multiple of tick {self.tick_size}")
        return int(ticks)

    def ticks_to_price(self, ticks: int) -> Decimal:
        return (self.tick_size * ticks).quantize(self.tick_size)

    def quantity_to_lots(self, quantity: Number) -> int:
        value = to_decimal(quantity, "quantity")
        lots, remainder = divmod(value, self.step_size)
        if remainder != 0:
            raise ValueError(f"{self.symbol}: quantity {value} is not a multiple of step {self.step_size}")
        return int(lots)

    def lots_to_quantity(self, lots: int) -> Decimal:
        return (self.step_size * lots).quantize(self.step_size)

"""The strategy API: one small class that runs unchanged in backtest, paper and live.

A strategy overrides the `on_*` callbacks it needs; the runner (the backtest driver here, the live
TradingNode later) calls them in event order with the clock set to the moment the strategy learns of the
event. Everything a strategy does to the market goes through `self.venue` (the `Venue` interface) and
everything it knows about time comes from `self.clock`, so the same class trades against `SimVenue`
under a `SimClock` or against `BinanceVenue` under a `LiveClock`.

Only overridden callbacks are delivered (the runner checks which ones a subclass defines), so a strategy
that ignores trades costs nothing per trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from kestrel.core.clock import Clock, TimeEvent
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.core.events import AggregateTrade, FundingRate, Kline, MarkPrice, Trade
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.instrument import Instrument
from kestrel.core.logs import get_logger
from kestrel.core.venue import AccountUpdate, BookView, OrderRequest, OrderUpdate, Venue

CALLBACKS = ("on_book", "on_trade", "on_kline", "on_funding", "on_order_update", "on_account_update", "on_timer")


@dataclass(slots=True)
class StrategyContext:
    """What the runner gives a strategy: its venue, clock and instruments."""

    venue: Venue
    clock: Clock
    instruments: Mapping[tuple[Market, str], Instrument]
    books: dict[tuple[Market, str], BookView] = field(default_factory=dict)


class Strategy:
    """Base class. `params` are the strategy's parameters (from `--param key=value` or code);
    `defaults` names the accepted ones and their default values."""

    name: ClassVar[str] = "strategy"
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        unknown = set(params or {}) - set(self.defaults)
        if unknown:
            raise ConfigurationError(f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
        merged = dict(self.defaults)
        for key, value in (params or {}).items():
            merged[key] = _coerce(key, value, self.defaults[key])
        self.params: dict[str, Any] = merged
        self._context: StrategyContext | None = None
        self.log = get_logger(f"strategy.{self.name}")

    # ---- wiring ------------------------------------------------------------------------------------
    def bind(self, context: StrategyContext) -> None:
        self._context = context

    @property
    def context(self) -> StrategyContext:
        if self._context is None:
            raise ConfigurationError(f"strategy {self.name} is not bound to a runner")
        return self._context

    @property
    def venue(self) -> Venue:
        return self.context.venue

    @property
    def clock(self) -> Clock:
        return self.context.clock

    def instrument(self, market: Market, symbol: str) -> Instrument:
        try:
            return self.context.instruments[(market, symbol)]
        except KeyError:
            raise ConfigurationError(f"{self.name}: no instrument {market.value} {symbol}") from None

    def book(self, market: Market, symbol: str) -> BookView | None:
        return self.context.books.get((market, symbol))

    @classmethod
    def subscriptions(cls) -> frozenset[str]:
        """The callbacks this class overrides (the runner delivers only those)."""
        return frozenset(name for name in CALLBACKS if getattr(cls, name) is not getattr(Strategy, name))

    # ---- actions (through the venue only) ------------------------------------------------------
    def submit_order(self, request: OrderRequest) -> ClientOrderId:
        return self.venue.submit_order(request)

    def cancel_order(self, market: Market, symbol: str, client_order_id: ClientOrderId) -> None:
        self.venue.cancel_order(market, symbol, client_order_id)

    def modify_order(
        self,
        market: Market,
        symbol: str,
        client_order_id: ClientOrderId,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> None:
        self.venue.modify_order(market, symbol, client_order_id, price=price, quantity=quantity)

    def set_timer(self, name: str, interval_ns: int, start_ns: int | None = None) -> None:
        """A repeating timer delivered to `on_timer`, first at `start_ns` (default: one interval from now)."""
        first = start_ns if start_ns is not None else self.clock.timestamp_ns() + interval_ns
        self.clock.set_timer(name, first, self._fire_timer, interval_ns=interval_ns)

    def _fire_timer(self, event: TimeEvent) -> None:
        self.on_timer(event)

    # ---- callbacks (override what you need) -----------------------------------------------------
    def on_start(self) -> None:
        """Called once before the first event."""

    def on_stop(self) -> None:
        """Called once after the last event."""

    def on_book(self, book: BookView) -> None:
        """The book of `book.symbol` changed (one depth message or snapshot applied)."""

    def on_trade(self, trade: Trade | AggregateTrade) -> None:
        """A public trade."""

    def on_kline(self, kline: Kline) -> None:
        """A closed candle."""

    def on_funding(self, event: FundingRate | MarkPrice) -> None:
        """A funding settlement rate, or a mark price update carrying the predicted rate."""

    def on_order_update(self, update: OrderUpdate) -> None:
        """One of our orders changed (accepted, filled, cancelled, rejected, ...)."""

    def on_account_update(self, update: AccountUpdate) -> None:
        """Our balances or positions changed."""

    def on_timer(self, event: TimeEvent) -> None:
        """A timer set with `set_timer` fired."""


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Parameters from the command line arrive as text; give them the type of their default."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in {"1", "true", "yes"}:
                return True
            if value.lower() in {"0", "false", "no"}:
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, Decimal):
            return Decimal(value)
    except (ValueError, ArithmeticError):
        raise ConfigurationError(f"parameter {key}={value!r}: expected {type(default).__name__}") from None
    return value

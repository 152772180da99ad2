"""Top-of-book market maker on L2 data.

Every `interval_ms` it quotes one post-only bid and one post-only ask of `quantity` at the best bid and
best ask, shifted away from the side it is long (or short) by `skew_ticks` per `quantity` held, and
stops quoting the side that would take the position beyond `max_position`. A quote whose price is no
longer wanted is cancelled and replaced on the next tick. Everything goes through the venue, so the same
class quotes in a backtest, on paper or live.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from kestrel.core.clock import TimeEvent
from kestrel.core.enums import Market, OrderType, Side, TimeInForce
from kestrel.core.errors import ConfigurationError
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import ExecutionType, OrderRequest, OrderUpdate
from kestrel.strategy.base import Strategy

_DONE = frozenset({ExecutionType.CANCELED, ExecutionType.EXPIRED, ExecutionType.REJECTED})


class TopOfBookMaker(Strategy):
    name: ClassVar[str] = "market_maker"
    defaults: ClassVar[dict[str, Any]] = {
        "symbol": "",
        "market": "futures",
        "quantity": Decimal("0.002"),
        "max_position": Decimal("0.01"),
        "interval_ms": 100,
        "skew_ticks": 1,
    }

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.market = Market(str(self.params["market"]))
        self.symbol = str(self.params["symbol"])
        self.quantity = Decimal(self.params["quantity"])
        self.max_position = Decimal(self.params["max_position"])
        self.interval_ns = int(self.params["interval_ms"]) * 1_000_000
        self.skew_ticks = int(self.params["skew_ticks"])
        if self.quantity <= 0 or self.max_position < self.quantity or self.interval_ns <= 0:
            raise ConfigurationError("market_maker: need quantity > 0, max_position >= quantity, interval_ms > 0")
        self.position = Decimal(0)
        self._on_position()
        # our live quote per side: (client id, price tick); a side is None when nothing is working
        self.quotes: dict[Side, tuple[ClientOrderId, int] | None] = {Side.BUY: None, Side.SELL: None}
        self.cancelling: set[ClientOrderId] = set()
        self.fills = 0

    def on_start(self) -> None:
        if not self.symbol:
            symbols = [s for (m, s) in self.context.instruments if m is self.market]
            if len(symbols) != 1:
                raise ConfigurationError("market_maker: set the symbol parameter (several instruments loaded)")
            self.symbol = symbols[0]
        self.instrument_ = self.instrument(self.market, self.symbol)
        self.book_ = self.book(self.market, self.symbol)
        self.set_timer("quote", self.interval_ns)

    def on_timer(self, event: TimeEvent) -> None:
        book = self.book_
        if book is None:
            return
        bid, ask = book.best_bid_tick, book.best_ask_tick
        if bid < 0 or ask < 0 or ask <= bid:
            return
        skew = self._skew
        self._quote(Side.BUY, bid - skew if skew > 0 else bid, self._can_buy)
        self._quote(Side.SELL, ask - skew if skew < 0 else ask, self._can_sell)

    def _on_position(self) -> None:
        """What the quotes depend on besides the book: derived once per position change, not per tick."""
        self._skew = int(self.position / self.quantity) * self.skew_ticks
        self._can_buy = self.position + self.quantity <= self.max_position
        self._can_sell = self.position - self.quantity >= -self.max_position

    def _quote(self, side: Side, tick: int, allowed: bool) -> None:
        current = self.quotes[side]
        if current is not None:
            client_id, working_tick = current
            if working_tick == tick and allowed:
                return
            if client_id not in self.cancelling:
                self.cancelling.add(client_id)
                self.cancel_order(self.market, self.symbol, client_id)
            return  # replace once the cancel is confirmed
        if not allowed:
            return
        price = self.instrument_.ticks_to_price(tick)
        request = OrderRequest(
            self.market,
            self.symbol,
            side,
            OrderType.LIMIT,
            quantity=self.quantity,
            price=price,
            time_in_force=TimeInForce.GTX,
        )
        self.quotes[side] = (self.submit_order(request), tick)

    def on_order_update(self, update: OrderUpdate) -> None:
        order = update.order
        if update.fill is not None:
            self.position += update.fill.quantity * update.fill.side.sign
            self.fills += 1
            self._on_position()
        if update.execution_type in _DONE or (not order.is_open and order.status.is_terminal):
            current = self.quotes[order.side]
            if current is not None and current[0] == order.client_order_id:
                self.quotes[order.side] = None
            self.cancelling.discard(order.client_order_id)

"""SMA crossover on closed klines: long when the fast average crosses above the slow one.

`mode=long_only` buys `quantity` on a cross up and closes on a cross down; `mode=long_short` holds
+quantity after a cross up and −quantity after a cross down (futures). A cross is
`fast[-2] < slow[-2] and fast[-1] > slow[-1]` (strict on both bars, the usual definition). Orders are
MARKET orders sent when a bar closes, so they fill at the next price available (the next bar's open).

The averages are compared exactly, on closes in integer ticks: fast > slow ⇔ Σfast · n_slow >
Σslow · n_fast. No float rounding can flip a decision, and the bar fast path
(`kestrel.backtest.fastpath`) makes the very same comparisons in compiled code.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, ClassVar

from kestrel.core.enums import Market, OrderType, Side
from kestrel.core.errors import ConfigurationError, InvalidOrderError
from kestrel.core.events import Kline
from kestrel.core.instrument import Rounding
from kestrel.core.venue import ExecutionType, OrderRequest, OrderUpdate
from kestrel.strategy.base import Strategy


class SmaCross(Strategy):
    name: ClassVar[str] = "sma_cross"
    defaults: ClassVar[dict[str, Any]] = {"fast": 10, "slow": 30, "quantity": Decimal("1"), "mode": "long_only"}

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.fast = int(self.params["fast"])
        self.slow = int(self.params["slow"])
        self.quantity = Decimal(self.params["quantity"])
        self.mode = str(self.params["mode"])
        if not 0 < self.fast < self.slow:
            raise ConfigurationError("sma_cross: need 0 < fast < slow")
        if self.mode not in {"long_only", "long_short"}:
            raise ConfigurationError("sma_cross: mode must be long_only or long_short")
        if self.quantity <= 0:
            raise ConfigurationError("sma_cross: quantity must be positive")
        self.closes: deque[int] = deque(maxlen=self.slow)  # closes in ticks
        self.previous_difference: int | None = None
        self.position = Decimal(0)  # from our own fills (liquidations included): spot has no venue position
        self.tick_size: Decimal | None = None

    def on_kline(self, kline: Kline) -> None:
        if self.tick_size is None:
            self.tick_size = self.instrument(kline.market, kline.symbol).tick_size
        self.closes.append(round(kline.close / float(self.tick_size)))
        if len(self.closes) < self.slow:
            return
        slow_sum = 0
        fast_sum = 0
        for index, close in enumerate(self.closes):
            slow_sum += close
            if index >= self.slow - self.fast:
                fast_sum += close
        difference = fast_sum * self.slow - slow_sum * self.fast  # sign of fast − slow, exactly
        previous, self.previous_difference = self.previous_difference, difference
        if previous is None:
            return
        if previous < 0 < difference:
            self._go_to(kline.market, kline.symbol, self.quantity)
        elif previous > 0 > difference:
            self._go_to(kline.market, kline.symbol, Decimal(0) if self.mode == "long_only" else -self.quantity)

    def _go_to(self, market: Market, symbol: str, target: Decimal) -> None:
        delta = target - self.position
        if delta == 0:
            return
        side = Side.BUY if delta > 0 else Side.SELL
        try:  # on the lot grid (spot holdings are net of fees paid in the base asset)
            quantity = self.instrument(market, symbol).round_quantity(abs(delta), OrderType.MARKET, Rounding.DOWN)
        except InvalidOrderError:
            return  # dust below the minimum quantity: nothing to trade
        self.submit_order(OrderRequest(market, symbol, side, OrderType.MARKET, quantity=quantity))

    def on_order_update(self, update: OrderUpdate) -> None:
        fill = update.fill
        if update.execution_type in (ExecutionType.TRADE, ExecutionType.CALCULATED) and fill is not None:
            self.position += fill.quantity * fill.side.sign
            base = self.instrument(fill.market, fill.symbol).base_asset
            if fill.market is Market.SPOT and fill.fee_asset == base:
                self.position -= fill.fee  # a spot buy pays its fee in the coin bought

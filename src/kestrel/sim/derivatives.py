"""USD-M extras of a synthetic symbol: mark/index price, funding, open interest and liquidations.

The mark price is the mid times (1 + premium), the premium a mean-reverting random walk; the index
sits half a premium below; the predicted funding rate drifts slowly within ±0.75 %. Funding settles at
00:00/08:00/16:00 UTC and is kept (with 30 days of seeded history) for `GET /fapi/v1/fundingRate`.
Open interest moves with every fill (deterministically: odd trade ids open, even ones close).
Liquidations are rare large taker orders: the book is swept as for any taker order (trades, aggTrades,
depth), and a `forceOrder` event reports it, at most one per symbol per second (spec §2.8).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kestrel.sim.instruments import SymbolSpec, fixed_text
from kestrel.sim.synthetic_symbol import SyntheticSymbol, TradeRecord

NANOS_PER_MILLI = 1_000_000
FUNDING_INTERVAL_MS = 8 * 3_600_000
FORCE_ORDER_GAP_MS = 1_000


@dataclass(slots=True)
class Derivatives:
    """The USD-M state of one symbol."""

    spec: SymbolSpec
    rng: random.Random
    premium: float = 0.0
    funding_rate: float = 0.0001
    mark_average: float = 0.0
    mark_ticks: int = 0
    index_price: float = 0.0
    next_funding_ms: int = 0
    open_interest_lots: int = 0
    last_force_order_ms: int = -FORCE_ORDER_GAP_MS
    history: list[tuple[int, float, int]] = field(default_factory=list)  # (funding time ms, rate, mark ticks)

    @classmethod
    def create(cls, state: SyntheticSymbol, seed: int, origin_ns: int) -> Derivatives:
        spec = state.spec
        rng = random.Random(f"{seed}:mark:{spec.symbol}")
        self = cls(spec, rng, premium=rng.uniform(-3e-4, 3e-4), funding_rate=rng.choice((1e-4, 1e-4, 5e-5, -2e-5)))
        origin_ms = origin_ns // NANOS_PER_MILLI
        self.next_funding_ms = (origin_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
        self.open_interest_lots = state.level_lots * rng.randint(500, 5000)
        # 30 days of settled funding before the start
        for number in range(90, 0, -1):
            rate = round(self.funding_rate + rng.gauss(0, 5e-5), 8)
            self.history.append((self.next_funding_ms - number * FUNDING_INTERVAL_MS, rate, state.mid_ticks))
        self.update(state, origin_ms)
        return self

    def update(self, state: SyntheticSymbol, now_ms: int) -> None:
        """Once a second: move premium and funding; settle funding when its time has come."""
        best_bid, _, best_ask, _ = state.top()
        mid = (best_bid + best_ask) / 2 if best_bid and best_ask else float(state.mid_ticks)
        rng = self.rng
        self.premium = max(-0.005, min(0.005, self.premium * 0.98 + rng.gauss(0, 5e-5)))
        self.funding_rate = max(-0.0075, min(0.0075, self.funding_rate + rng.gauss(0, 2e-6)))
        self.mark_ticks = max(1, round(mid * (1 + self.premium)))
        tick = float(self.spec.tick_size)
        self.index_price = mid * tick * (1 - self.premium / 2)
        price = self.mark_ticks * tick
        self.mark_average = price if self.mark_average == 0 else self.mark_average * 0.9 + price * 0.1
        if now_ms >= self.next_funding_ms:
            self.history.append((self.next_funding_ms, round(self.funding_rate, 8), self.mark_ticks))
            self.next_funding_ms += FUNDING_INTERVAL_MS

    def on_trades(self, trades: list[TradeRecord]) -> None:
        for trade in trades:
            change = trade.quantity if trade.trade_id % 2 else -trade.quantity
            self.open_interest_lots = max(1, self.open_interest_lots + change)

    # ---- wire ---------------------------------------------------------------------------------
    def mark_text(self, ticks: int) -> str:
        return fixed_text(self.spec.tick_scaled * ticks * 10 ** (8 - self.spec.price_decimals), 8)

    def mark_fields(self, event_ms: int) -> dict[str, object]:
        return {
            "e": "markPriceUpdate",
            "E": event_ms,
            "s": self.spec.symbol,
            "p": self.mark_text(self.mark_ticks),
            "ap": f"{self.mark_average:.8f}",
            "P": f"{self.index_price:.8f}",
            "i": f"{self.index_price:.8f}",
            "r": f"{self.funding_rate:.8f}",
            "T": self.next_funding_ms,
        }

    def premium_row(self, now_ms: int) -> dict[str, object]:
        return {
            "symbol": self.spec.symbol,
            "markPrice": self.mark_text(self.mark_ticks),
            "indexPrice": f"{self.index_price:.8f}",
            "estimatedSettlePrice": f"{self.index_price:.8f}",
            "lastFundingRate": f"{self.funding_rate:.8f}",
            "interestRate": "0.00010000",
            "nextFundingTime": self.next_funding_ms,
            "time": now_ms,
        }

    def funding_rows(self) -> list[dict[str, object]]:
        return [
            {
                "symbol": self.spec.symbol,
                "fundingRate": f"{rate:.8f}",
                "fundingTime": time_ms,
                "markPrice": self.mark_text(ticks),
            }
            for time_ms, rate, ticks in self.history
        ]

    def open_interest_row(self, now_ms: int) -> dict[str, object]:
        return {
            "openInterest": self.spec.quantity_text(self.open_interest_lots),
            "symbol": self.spec.symbol,
            "time": now_ms,
        }

    def force_order_fields(self, trades: list[TradeRecord], sell: bool, event_ms: int) -> dict[str, object] | None:
        """The `forceOrder` event of a liquidation that filled `trades` (None inside the 1 s window)."""
        if not trades or event_ms - self.last_force_order_ms < FORCE_ORDER_GAP_MS:
            return None
        self.last_force_order_ms = event_ms
        spec = self.spec
        total = sum(trade.quantity for trade in trades)
        average = sum(trade.price * trade.quantity for trade in trades) / total
        worst = min(trade.price for trade in trades) if sell else max(trade.price for trade in trades)
        # the liquidation order's limit price: through the worst fill by 1 %, on the tick grid
        limit = max(1, round(worst * (0.99 if sell else 1.01)))
        tick = float(spec.tick_size)
        return {
            "e": "forceOrder",
            "E": event_ms,
            "o": {
                "s": spec.symbol,
                "S": "SELL" if sell else "BUY",
                "o": "LIMIT",
                "f": "IOC",
                "q": spec.quantity_text(total),
                "p": spec.price_text(limit),
                "ap": f"{average * tick:.{spec.price_decimals}f}",
                "X": "FILLED",
                "l": spec.quantity_text(trades[-1].quantity),
                "z": spec.quantity_text(total),
                "T": trades[-1].time_ns // NANOS_PER_MILLI,
            },
        }

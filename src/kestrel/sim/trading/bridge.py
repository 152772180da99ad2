"""The simulator's market → the matching engine, so orders meet the book the streams show.

The synthetic market reports every book change, trade and mark update to its observers; the bridge
turns them into the engine's market events (`DepthUpdate`, `Trade`, `MarkPrice`, `FundingRate`) and
applies them at their exchange time. Symbols are fed on demand: a symbol becomes *active* the first
time an account touches it (an order, a leverage change), at which point the engine receives a
snapshot of the simulator's current book, its last trade and (USD-M) its mark price; from then on
every change. A simulator with thousands of symbols therefore pays only for the ones being traded.

Engine events caused by market data (fills of resting orders, triggers, funding, liquidations) go to
`on_events`, which turns them into user-data events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kestrel.core.enums import Market
from kestrel.core.events import DepthSnapshot, DepthUpdate, FundingRate, MarkPrice, Trade
from kestrel.matching.base import EngineEvent
from kestrel.matching.engine import MatchingEngine
from kestrel.sim.instruments import SymbolSpec
from kestrel.sim.state import MarketSource
from kestrel.sim.synthetic_symbol import Change, TradeRecord

if TYPE_CHECKING:
    from kestrel.sim.derivatives import Derivatives

NANOS_PER_MILLI = 1_000_000
Key = tuple[Market, str]


class _Grid:
    __slots__ = ("last_funding_ms", "previous_id", "step", "tick")

    def __init__(self, spec: SymbolSpec) -> None:
        self.tick = float(spec.tick_size)
        self.step = float(spec.step_size)
        self.previous_id = -1
        self.last_funding_ms = 0


class MarketBridge:
    """A `MarketObserver` of the synthetic market that keeps the engine's books in step."""

    def __init__(
        self, engine: MatchingEngine, source: MarketSource, on_events: Callable[[list[EngineEvent]], None]
    ) -> None:
        self.engine = engine
        self.source = source
        self.on_events = on_events
        self._active: dict[Key, _Grid] = {}
        self.events_applied = 0

    def is_active(self, market: Market, symbol: str) -> bool:
        return (market, symbol) in self._active

    @property
    def active_symbols(self) -> list[str]:
        return sorted(f"{market.value}:{symbol}" for market, symbol in self._active)

    def activate(self, market: Market, symbol: str, ts: int) -> None:
        """Start feeding `symbol`: the current book, last trade and mark go into the engine first."""
        key = (market, symbol)
        if key in self._active or not self.engine.has_instrument(market, symbol):
            return
        spec = next(s for s in self.source.specs(market) if s.symbol == symbol)
        grid = _Grid(spec)
        book = self.source.book_view(market, symbol)
        snapshot = DepthSnapshot(
            market,
            symbol,
            book.last_update_id,
            [(float(price), float(quantity)) for price, quantity in book.bids],
            [(float(price), float(quantity)) for price, quantity in book.asks],
            ts,
            ts,
        )
        grid.previous_id = book.last_update_id
        events = self.engine.apply(snapshot)
        trades = self.source.agg_trades(market, symbol)
        if trades:
            last = trades[-1]
            price = float(str(last["p"]))
            events += self.engine.apply(Trade(market, symbol, int(str(last["a"])), price, 0.0, False, ts, ts))
        elif book.best_bid is not None and book.best_ask is not None:
            # no trade yet: the mid stands in for the last price (triggers and OCO checks need one)
            mid = float((book.best_bid[0] + book.best_ask[0]) / 2)
            events += self.engine.apply(Trade(market, symbol, 0, mid, 0.0, False, ts, ts))
        if market is Market.FUTURES:
            rows = self.source.premium_index(symbol)
            funding = self.source.funding_rates(symbol)
            grid.last_funding_ms = max((int(str(row["fundingTime"])) for row in funding), default=0)
            if rows:
                row = rows[0]
                mark = MarkPrice(
                    market,
                    symbol,
                    float(str(row["markPrice"])),
                    float(str(row["indexPrice"])),
                    float(str(row["estimatedSettlePrice"])),
                    float(str(row["lastFundingRate"])),
                    int(str(row["nextFundingTime"])) * NANOS_PER_MILLI,
                    ts,
                    ts,
                )
                events += self.engine.apply(mark)
        self._active[key] = grid
        if events:
            self.on_events(events)

    # ---- MarketObserver ------------------------------------------------------------------------
    def on_book(self, spec: SymbolSpec, changes: list[Change], time_ns: int) -> None:
        grid = self._active.get((spec.market, spec.symbol))
        if grid is None or not changes:
            return
        tick, step = grid.tick, grid.step
        bids = [(price * tick, quantity * step) for is_bid, price, quantity, _ in changes if is_bid]
        asks = [(price * tick, quantity * step) for is_bid, price, quantity, _ in changes if not is_bid]
        first, final = changes[0][3], changes[-1][3]
        previous = grid.previous_id if spec.market is Market.FUTURES else -1
        grid.previous_id = final
        update = DepthUpdate(spec.market, spec.symbol, first, final, previous, bids, asks, time_ns, time_ns)
        self._apply(update)

    def on_trades(self, spec: SymbolSpec, trades: list[TradeRecord], time_ns: int) -> None:
        grid = self._active.get((spec.market, spec.symbol))
        if grid is None:
            return
        for record in trades:
            trade = Trade(
                spec.market,
                spec.symbol,
                record.trade_id,
                record.price * grid.tick,
                record.quantity * grid.step,
                record.buyer_is_maker,
                time_ns,
                time_ns,
            )
            self._apply(trade)

    def on_mark(self, spec: SymbolSpec, mark: Derivatives, time_ns: int) -> None:
        grid = self._active.get((spec.market, spec.symbol))
        if grid is None:
            return
        if mark.history and mark.history[-1][0] > grid.last_funding_ms:
            # a funding time just passed: settle it at the rate the REST history records
            funding_ms, rate, mark_ticks = mark.history[-1]
            grid.last_funding_ms = funding_ms
            funding = FundingRate(
                spec.market, spec.symbol, rate, mark_ticks * grid.tick, funding_ms * NANOS_PER_MILLI, time_ns
            )
            self._apply(funding)
        update = MarkPrice(
            spec.market,
            spec.symbol,
            mark.mark_ticks * grid.tick,
            mark.index_price,
            mark.index_price,
            mark.funding_rate,
            mark.next_funding_ms * NANOS_PER_MILLI,
            time_ns,
            time_ns,
        )
        self._apply(update)

    def _apply(self, event: DepthUpdate | Trade | MarkPrice | FundingRate) -> None:
        self.events_applied += 1
        events = self.engine.apply(event)
        if events:
            self.on_events(events)

"""The Binance sequence rules applied to a stream of core events, per symbol.

One `Sequencer` sits between decoding and everything downstream, live and offline alike (the
importer and the raw replay use it too): depth events go through the `BookSynchronizer` (continuity,
book), trade and aggregate ids through `IdSequence`, bookTicker ids through `MonotonicSequence`.
Each event comes back with its QualityFlag bits set, so a gap or a duplicate is never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from kestrel.binance.book_sync import BookSynchronizer, SnapshotResult
from kestrel.binance.sequence import REJECTED_FLAGS, IdSequence, MonotonicSequence
from kestrel.core.enums import Market
from kestrel.core.events import (
    AggregateTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    MarketEvent,
    QualityFlag,
    Trade,
)

_RESYNCED = int(QualityFlag.RESYNCED)


@dataclass(slots=True)
class SymbolSequence:
    """Everything the sequencer knows about one symbol on one market."""

    book: BookSynchronizer
    trades: IdSequence = field(default_factory=IdSequence)
    aggregate_trades: IdSequence = field(default_factory=IdSequence)
    tickers: MonotonicSequence = field(default_factory=MonotonicSequence)
    latest_ticker: BookTicker | None = None


def with_flags(event: MarketEvent, flags: int) -> MarketEvent:
    """The event with `flags` added (events are immutable: a copy, made only when a flag is set)."""
    return msgspec.structs.replace(event, flags=event.flags | flags)


class Sequencer:
    """Per-symbol sequence state of any number of symbols and markets."""

    def __init__(self, max_book_buffer: int = 10_000) -> None:
        self._symbols: dict[tuple[Market, str], SymbolSequence] = {}
        self._max_book_buffer = max_book_buffer

    def symbol(self, market: Market, symbol: str) -> SymbolSequence:
        state = self._symbols.get((market, symbol))
        if state is None:
            state = SymbolSequence(BookSynchronizer(market, symbol, self._max_book_buffer))
            self._symbols[(market, symbol)] = state
        return state

    def symbols(self) -> dict[tuple[Market, str], SymbolSequence]:
        return self._symbols

    def process(self, event: MarketEvent) -> tuple[MarketEvent, int]:
        """Check one event; returns it (flagged when needed) and its new flag bits.

        Flags including DUPLICATE or OUT_OF_ORDER mean: already seen or stale; it updated no state.
        """
        state = self._symbols.get((event.market, event.symbol)) or self.symbol(event.market, event.symbol)
        return self.process_for(state, event)

    def process_for(self, state: SymbolSequence, event: MarketEvent) -> tuple[MarketEvent, int]:
        """`process` when the caller already holds the symbol's state (saves a lookup per event)."""
        kind = type(event)
        if kind is DepthUpdate:
            flags = state.book.on_update(event)  # type: ignore[arg-type]
        elif kind is BookTicker:
            flags = state.tickers.check(event.update_id)  # type: ignore[union-attr]
            if not flags & REJECTED_FLAGS:
                state.latest_ticker = event  # type: ignore[assignment]
        elif kind is Trade:
            flags = state.trades.check(event.trade_id)  # type: ignore[union-attr]
        elif kind is AggregateTrade:
            flags = state.aggregate_trades.check(event.aggregate_id)  # type: ignore[union-attr]
        elif kind is DepthSnapshot:
            return self.process_snapshot(event)  # type: ignore[arg-type]
        else:
            return event, 0
        if flags:
            return with_flags(event, flags), flags
        return event, 0

    def process_snapshot(self, snapshot: DepthSnapshot) -> tuple[MarketEvent, int]:
        """Apply a depth snapshot; one that (re)builds the book is flagged RESYNCED."""
        result = self.symbol(snapshot.market, snapshot.symbol).book.on_snapshot(snapshot)
        if result is SnapshotResult.SYNCED:
            return with_flags(snapshot, _RESYNCED), _RESYNCED
        return snapshot, 0

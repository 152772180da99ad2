"""Market events → the kernel's event table (integer ticks and lots, exchange and local times).

The builder also performs the order-book synchronisation of spec §3 per symbol: depth diffs are
buffered until a REST snapshot arrives; the snapshot replaces the book, buffered diffs that end after
it are applied at the snapshot's time, and later diffs must continue the id sequence (futures:
`pu == previous u`; spot: `U == previous u + 1`). A gap clears the book and waits for the next
snapshot, and is counted (never silent). With `require_snapshot=False` a symbol whose data has no
snapshot builds its book from the diffs alone (levels appear as they update), as hftbacktest does.

Klines become bar price points for the bar-level fallback: open at the bar's open time, then the extreme
nearer the open, then the other extreme (at 1/3 and 2/3 of the bar), then the close at the close time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.core.events import (
    AggregateTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    FundingRate,
    Kline,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    Trade,
)
from kestrel.core.instrument import Instrument
from kestrel.matching import kernel as k
from kestrel.matching.latency import LatencyModel

_PYTHON_FLAGS = k.FLAG_EXCHANGE | k.FLAG_LOCAL | k.FLAG_NOTIFY_OTHER
_MARKET_FLAGS = k.FLAG_EXCHANGE | k.FLAG_LOCAL


@dataclass(slots=True)
class _DepthSync:
    synced: bool = False
    last_update_id: int = -1
    buffer: list[DepthUpdate] = field(default_factory=list)
    gaps: int = 0
    snapshots: int = 0


@dataclass(frozen=True, slots=True)
class SymbolGrid:
    """Price and quantity grid of one instrument as floats, for tick/lot conversion."""

    index: int
    tick: float
    step: float

    def ticks(self, price: float) -> int:
        return round(price / self.tick)

    def lots(self, quantity: float) -> int:
        return round(quantity / self.step)


@dataclass(slots=True)
class EventTable:
    """Rows for the kernel plus the Python objects that Python rows (and trades) refer to."""

    rows: np.ndarray
    objects: list[MarketEvent]
    gaps: dict[str, int]
    dropped_diffs: dict[str, int]

    def __len__(self) -> int:
        return int(self.rows.shape[0])


class TableBuilder:
    """Collects market events (in arrival order) and builds the sorted event table."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        require_snapshot: bool = True,
        bar_symbols: Iterable[tuple[Market, str]] = (),
    ) -> None:
        self._grids: dict[tuple[Market, str], SymbolGrid] = {}
        for index, instrument in enumerate(instruments):
            self._grids[(instrument.market, instrument.symbol)] = SymbolGrid(
                index, float(instrument.tick_size), float(instrument.step_size)
            )
        self._rows: list[tuple[int, int, int, int, int, int, int, int]] = []
        self._objects: list[MarketEvent] = []
        self._sync: dict[tuple[Market, str], _DepthSync] = {}
        self._require_snapshot = require_snapshot
        self._bar_symbols = set(bar_symbols)
        self._dropped: dict[str, int] = {}

    def grid(self, market: Market, symbol: str) -> SymbolGrid:
        try:
            return self._grids[(market, symbol)]
        except KeyError:
            raise DataError(f"no instrument for {market.value} {symbol}") from None

    # ---- adding events ---------------------------------------------------------------------------
    def add_all(self, events: Iterable[MarketEvent]) -> None:
        for event in events:
            self.add(event)

    def add(self, event: MarketEvent) -> None:
        if isinstance(event, DepthUpdate):
            self._add_depth(event)
        elif isinstance(event, Trade | AggregateTrade):
            self._add_trade(event)
        elif isinstance(event, DepthSnapshot):
            self._add_snapshot(event)
        elif isinstance(event, Kline):
            self._add_kline(event)
        elif isinstance(event, MarkPrice | FundingRate):
            self._add_python(event, _PYTHON_FLAGS)
        elif isinstance(event, Liquidation | OpenInterest):
            self._add_python(event, k.FLAG_LOCAL | k.FLAG_NOTIFY_OTHER)
        elif isinstance(event, BookTicker):
            pass  # the engine's book comes from depth; book tickers carry no extra matching information
        else:  # pragma: no cover - MarketEvent is a closed union
            raise DataError(f"unsupported event {type(event).__name__}")

    def _append(
        self, ts_exchange: int, ts_local: int, kind: int, sym: int, tick: int, qty: int, ref: int, flags: int
    ) -> None:
        self._rows.append((ts_exchange, ts_local, kind, sym, tick, qty, ref, flags))

    def _add_python(self, event: MarketEvent, flags: int) -> None:
        grid = self.grid(event.market, event.symbol)
        self._objects.append(event)
        self._append(event.ts_event, event.ts_init, k.KIND_PYTHON, grid.index, 0, 0, len(self._objects) - 1, flags)

    def _add_trade(self, event: Trade | AggregateTrade) -> None:
        grid = self.grid(event.market, event.symbol)
        kind = k.KIND_TRADE_SELL if event.buyer_is_maker else k.KIND_TRADE_BUY
        self._objects.append(event)
        ref = len(self._objects) - 1
        flags = _MARKET_FLAGS | k.FLAG_NOTIFY_TRADE
        self._append(
            event.ts_event,
            event.ts_init,
            kind,
            grid.index,
            grid.ticks(event.price),
            grid.lots(event.quantity),
            ref,
            flags,
        )

    def _levels(self, grid: SymbolGrid, ts_exchange: int, ts_local: int, event: DepthUpdate | DepthSnapshot) -> None:
        for price, quantity in event.bids:
            self._append(
                ts_exchange,
                ts_local,
                k.KIND_DEPTH_BID,
                grid.index,
                grid.ticks(price),
                grid.lots(quantity),
                -1,
                _MARKET_FLAGS,
            )
        for price, quantity in event.asks:
            self._append(
                ts_exchange,
                ts_local,
                k.KIND_DEPTH_ASK,
                grid.index,
                grid.ticks(price),
                grid.lots(quantity),
                -1,
                _MARKET_FLAGS,
            )

    def _mark_book_message_end(self, start: int) -> None:
        if len(self._rows) > start:
            last = self._rows[-1]
            self._rows[-1] = (*last[:7], last[7] | k.FLAG_NOTIFY_BOOK)

    def _add_snapshot(self, event: DepthSnapshot) -> None:
        key = (event.market, event.symbol)
        grid = self.grid(*key)
        sync = self._sync.setdefault(key, _DepthSync())
        start = len(self._rows)
        ts, ts_local = event.ts_event, event.ts_init
        self._append(ts, ts_local, k.KIND_CLEAR_BID, grid.index, 0, 0, -1, _MARKET_FLAGS)
        self._append(ts, ts_local, k.KIND_CLEAR_ASK, grid.index, 0, 0, -1, _MARKET_FLAGS)
        self._levels(grid, ts, ts_local, event)
        sync.synced = True
        sync.snapshots += 1
        sync.last_update_id = event.last_update_id
        buffered, sync.buffer = sync.buffer, []
        for update in buffered:
            # spec §3: drop what the snapshot already contains; the rest continues it
            if update.final_update_id < event.last_update_id or (
                event.market is Market.SPOT and update.final_update_id == event.last_update_id
            ):
                continue
            self._levels(grid, ts, ts_local, update)
            sync.last_update_id = update.final_update_id
        self._mark_book_message_end(start)

    def _continues(self, sync: _DepthSync, event: DepthUpdate) -> bool:
        if event.market is Market.FUTURES and event.previous_final_update_id >= 0:
            if event.previous_final_update_id == sync.last_update_id:
                return True
            return event.first_update_id <= sync.last_update_id <= event.final_update_id
        return event.first_update_id <= sync.last_update_id + 1 <= event.final_update_id

    def _add_depth(self, event: DepthUpdate) -> None:
        key = (event.market, event.symbol)
        grid = self.grid(*key)
        sync = self._sync.setdefault(key, _DepthSync())
        if not sync.synced:
            if self._require_snapshot:
                sync.buffer.append(event)
                if len(sync.buffer) > 10_000:  # no snapshot in sight: keep memory bounded
                    sync.buffer.pop(0)
                    self._dropped[event.symbol] = self._dropped.get(event.symbol, 0) + 1
                return
            sync.synced = True  # build the book from diffs alone
            sync.last_update_id = event.final_update_id
        elif event.final_update_id <= sync.last_update_id:
            return  # stale
        elif not self._continues(sync, event):
            sync.gaps += 1
            sync.synced = False
            sync.buffer = [event]
            self._append(event.ts_event, event.ts_init, k.KIND_CLEAR_BID, grid.index, 0, 0, -1, _MARKET_FLAGS)
            self._append(event.ts_event, event.ts_init, k.KIND_CLEAR_ASK, grid.index, 0, 0, -1, _MARKET_FLAGS)
            return
        start = len(self._rows)
        self._levels(grid, event.ts_event, event.ts_init, event)
        sync.last_update_id = event.final_update_id
        self._mark_book_message_end(start)

    def _add_kline(self, event: Kline) -> None:
        grid = self.grid(event.market, event.symbol)
        if not event.is_closed:
            return
        if (event.market, event.symbol) in self._bar_symbols:
            opening, closing = event.open_time_ns, event.close_time_ns
            third = (closing - opening) // 3
            first, second = (
                (event.high, event.low)
                if event.high - event.open <= event.open - event.low
                else (event.low, event.high)
            )
            points = (
                (opening, event.open),
                (opening + third, first),
                (opening + 2 * third, second),
                (closing, event.close),
            )
            for ts, price in points:
                self._append(ts, ts, k.KIND_BAR_POINT, grid.index, grid.ticks(price), 0, -1, _MARKET_FLAGS)
        self._objects.append(event)
        self._append(
            event.ts_event,
            event.ts_init,
            k.KIND_PYTHON,
            grid.index,
            0,
            0,
            len(self._objects) - 1,
            k.FLAG_LOCAL | k.FLAG_NOTIFY_OTHER,
        )

    # ---- building ----------------------------------------------------------------------------------
    def build(self, feed_latency: LatencyModel | None = None, recorded: bool = False) -> EventTable:
        """Sort rows by exchange time (stable) and set local times.

        `recorded`: local time = the recording's receive time shifted so the smallest observed feed delay
        is zero; otherwise exchange time + `feed_latency` (drawn once per message), or exchange time when
        no model is given. Local times are made non-decreasing, as a feed delivers in order.
        """
        if not self._rows:
            rows = np.empty((0, k.TABLE_COLUMNS), dtype=np.int64)
            return EventTable(rows, self._objects, self.gaps(), dict(self._dropped))
        rows = np.array(self._rows, dtype=np.int64)
        order = np.argsort(rows[:, k.COL_TS_EXCH], kind="stable")
        rows = rows[order]
        exchange = rows[:, k.COL_TS_EXCH]
        if recorded:
            delays = rows[:, k.COL_TS_LOCAL] - exchange
            local = exchange + (delays - delays.min())
        elif feed_latency is not None:
            # one delay per message: rows of one message share (exchange, local) time
            starts = np.ones(len(rows), dtype=bool)
            starts[1:] = (exchange[1:] != exchange[:-1]) | (rows[1:, k.COL_TS_LOCAL] != rows[:-1, k.COL_TS_LOCAL])
            samples = np.array([feed_latency.sample() for _ in range(int(starts.sum()))], dtype=np.int64)
            local = exchange + samples[np.cumsum(starts) - 1]
        else:
            local = exchange.copy()
        rows[:, k.COL_TS_LOCAL] = np.maximum.accumulate(local)
        return EventTable(rows, self._objects, self.gaps(), dict(self._dropped))

    def drain(self) -> np.ndarray:
        """Rows added since the last drain, in arrival order with local time = exchange time (the
        engine's per-event path, which has no strategy view). Python objects are not kept."""
        rows = np.array(self._rows, dtype=np.int64).reshape(-1, k.TABLE_COLUMNS)
        rows[:, k.COL_TS_LOCAL] = rows[:, k.COL_TS_EXCH]
        self._rows = []
        self._objects = []
        return rows

    def gaps(self) -> dict[str, int]:
        return {symbol: sync.gaps for (_, symbol), sync in self._sync.items() if sync.gaps}

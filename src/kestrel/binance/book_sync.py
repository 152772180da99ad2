"""Local order-book synchronisation: REST snapshot + diff stream, exactly per spec §3.

Two things are tracked separately, so nothing is ever silent:

1. Stream continuity, on every depth event as it arrives, whatever the book's state: spot requires
   ``U == previous u + 1``, futures ``pu == previous u``. A break is a gap (counted, and the event
   flagged GAP_BEFORE); an event whose ``u`` is not beyond the last one is a duplicate (same ids seen
   recently) or out of order (flagged, never applied). Continuity survives reconnects, so whatever was
   missed while a connection was down shows up as a gap on its first event.
2. The book: BUFFERING (events kept until a snapshot arrives) or SYNCED (events applied). A gap, a
   crossed book, or a forced rebuild sends a synced book back to BUFFERING (a resync).

Snapshot rules (§3.1 spot, §3.2 futures), with ``L`` the snapshot's lastUpdateId:
- drop buffered events with ``u <= L`` (spot) / ``u < L`` (futures);
- the first remaining event must bracket the snapshot: spot ``U <= L + 1``; futures ``pu <= L``
  (this covers the documented ``U <= L <= u`` and the ``pu == L`` continuation, and ids that the diff
  stream skips between ``pu`` and ``U``). Otherwise the snapshot is older than the buffer: it is counted
  as stale and a new one is requested;
- when every buffered event is older than the snapshot, the book starts at the snapshot and the first
  live event is checked against it the same way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from kestrel.binance.order_book import OrderBook
from kestrel.core.enums import Market
from kestrel.core.events import DepthSnapshot, DepthUpdate, QualityFlag

_GAP = int(QualityFlag.GAP_BEFORE)
_DUPLICATE = int(QualityFlag.DUPLICATE)
_OUT_OF_ORDER = int(QualityFlag.OUT_OF_ORDER)
_RECENT = 512  # (U, u) pairs remembered to tell a duplicate from a late event
DEFAULT_MAX_BUFFER = 10_000


class SyncState(StrEnum):
    BUFFERING = "buffering"
    SYNCED = "synced"


class ResyncReason(StrEnum):
    GAP = "gap"
    CROSSED = "crossed"
    STALE_SNAPSHOT = "stale_snapshot"
    REBUILD = "rebuild"  # forced: quality audit (gap ratio) or operator


class SnapshotResult(StrEnum):
    SYNCED = "synced"  # book built, buffered events applied
    STALE = "stale"  # snapshot older than the buffered events: fetch another
    BROKEN = "broken"  # applying the buffer failed (crossed book): fetch another


@dataclass(slots=True)
class DepthCounters:
    messages: int = 0
    gaps: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    resyncs: int = 0
    stale_snapshots: int = 0
    crossed: int = 0
    snapshots: int = 0
    buffer_overflows: int = 0


class BookSynchronizer:
    """Keeps one symbol's local book in sync with its diff-depth stream."""

    def __init__(
        self,
        market: Market,
        symbol: str,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        self.market = market
        self.symbol = symbol
        self.book = OrderBook(market, symbol)
        self.state = SyncState.BUFFERING
        self.counters = DepthCounters()
        self.last_final_id: int | None = None  # stream continuity, independent of the book
        self.snapshot_pending = False  # a snapshot request is in flight (set by the feed)
        self.first_event_pending = False  # the next applied event must bracket the snapshot
        self.last_resync_reason: ResyncReason | None = None
        self.resynced = False  # the book was (re)built and no event has been reported since
        self._is_futures = market is Market.FUTURES
        self._buffer: deque[DepthUpdate] = deque()
        self._max_buffer = max_buffer
        self._recent: deque[tuple[int, int]] = deque(maxlen=_RECENT)
        self._recent_set: set[tuple[int, int]] = set()
        self._held: DepthUpdate | None = None  # the event after a gap, held for a late arrival
        self._hole_after = -1  # the last final id before that gap

    # ---- state ------------------------------------------------------------------------------
    @property
    def is_synced(self) -> bool:
        return self.state is SyncState.SYNCED

    @property
    def wants_snapshot(self) -> bool:
        """A snapshot should be requested now: buffering, something buffered, none in flight.

        Waiting for the first buffered event makes the snapshot newer than the buffer's start (§3.1 1-2).
        """
        return self.state is SyncState.BUFFERING and bool(self._buffer) and not self.snapshot_pending

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def request_rebuild(self, reason: ResyncReason = ResyncReason.REBUILD) -> None:
        """Discard the book and rebuild it from a new snapshot (gap ratio too high, operator...)."""
        self._resync(reason)

    # ---- the stream -------------------------------------------------------------------------
    def on_update(self, update: DepthUpdate) -> int:
        """Take one diff event; returns its QualityFlag bits.

        DUPLICATE events and late events that fill no hole (OUT_OF_ORDER) change nothing. A gap is
        flagged at once; the event is held until the next depth event (or `expire_gap`) in case the
        missing event arrives late — then it is applied in order, the gap is withdrawn and the late
        event counted out of order. Otherwise the gap is confirmed and the book resynced.
        """
        counters = self.counters
        counters.messages += 1
        first_id, final_id = update.first_update_id, update.final_update_id
        last = self.last_final_id
        if last is None:
            self._accept(update)
            return 0
        if final_id <= last:
            if (first_id, final_id) in self._recent_set:
                counters.duplicates += 1
                return _DUPLICATE
            counters.out_of_order += 1
            if self._held is not None and self._fills_hole(update):
                held, self._held = self._held, None
                counters.gaps -= 1
                self._remember(first_id, final_id)
                self._place(update)
                self._place(held)
            return _OUT_OF_ORDER
        if self._links(update, last):
            if self._held is not None:
                self._confirm_gap()
            self._accept(update)
            return 0
        if self._held is not None:
            self._confirm_gap()
        counters.gaps += 1
        self._held = update
        self._hole_after = last
        self.last_final_id = final_id
        self._remember(first_id, final_id)
        return _GAP

    @property
    def gap_pending(self) -> bool:
        """A gap was seen and its event is held, waiting for a late arrival; the book lags meanwhile."""
        return self._held is not None

    def expire_gap(self, now_ns: int, window_ns: int) -> bool:
        """Confirm a pending gap held for `window_ns` (by the held event's ts_init); True when confirmed."""
        if self._held is not None and now_ns - self._held.ts_init >= window_ns:
            self._confirm_gap()
            return True
        return False

    def _links(self, update: DepthUpdate, previous_final_id: int) -> bool:
        if self._is_futures:
            return update.previous_final_update_id == previous_final_id
        return update.first_update_id == previous_final_id + 1

    def _fills_hole(self, update: DepthUpdate) -> bool:
        held = self._held
        return held is not None and self._links(update, self._hole_after) and self._links(held, update.final_update_id)

    def _confirm_gap(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if self.state is SyncState.SYNCED:
            self._resync(ResyncReason.GAP)
        else:
            self._buffer.clear()  # events before a gap can never be applied to a newer snapshot
        self._buffer_event(held)

    def _accept(self, update: DepthUpdate) -> None:
        self.last_final_id = update.final_update_id
        self._remember(update.first_update_id, update.final_update_id)
        self._place(update)

    def _place(self, update: DepthUpdate) -> None:
        if self.state is SyncState.BUFFERING:
            self._buffer_event(update)
        else:
            self._apply(update)

    def _remember(self, first_id: int, final_id: int) -> None:
        recent = self._recent
        if len(recent) == _RECENT:
            self._recent_set.discard(recent[0])
        pair = (first_id, final_id)
        recent.append(pair)
        self._recent_set.add(pair)

    def _buffer_event(self, update: DepthUpdate) -> None:
        self._buffer.append(update)
        if len(self._buffer) > self._max_buffer:
            self._buffer.popleft()  # the snapshot will then have to be newer than what is kept
            self.counters.buffer_overflows += 1

    def _apply(self, update: DepthUpdate) -> None:
        book = self.book
        final_id = update.final_update_id
        if self._is_futures:
            if final_id < book.update_id:
                return  # already in the snapshot
        elif final_id <= book.update_id:
            return
        if self.first_event_pending:
            if not self._brackets(update, book.update_id):
                self.counters.stale_snapshots += 1
                self._resync(ResyncReason.STALE_SNAPSHOT)
                self._buffer_event(update)
                return
            self.first_event_pending = False
        book.apply(update.bids, update.asks, final_id, update.ts_event)
        if book.is_crossed():
            self.counters.crossed += 1
            self._resync(ResyncReason.CROSSED)

    def _brackets(self, update: DepthUpdate, last_update_id: int) -> bool:
        if self._is_futures:
            return update.previous_final_update_id <= last_update_id
        return update.first_update_id <= last_update_id + 1

    def _resync(self, reason: ResyncReason) -> None:
        self.counters.resyncs += 1
        self.last_resync_reason = reason
        self.state = SyncState.BUFFERING
        self.first_event_pending = False
        self.resynced = False
        self.book.clear()
        self._buffer.clear()

    # ---- the snapshot -----------------------------------------------------------------------
    def on_snapshot(self, snapshot: DepthSnapshot) -> SnapshotResult:
        """Build the book from `snapshot` and apply the buffered events that follow it."""
        self.snapshot_pending = False
        self._confirm_gap()
        self.counters.snapshots += 1
        last_id = snapshot.last_update_id
        buffer = self._buffer
        if self._is_futures:
            while buffer and buffer[0].final_update_id < last_id:
                buffer.popleft()
        else:
            while buffer and buffer[0].final_update_id <= last_id:
                buffer.popleft()
        if buffer and not self._brackets(buffer[0], last_id):
            self.counters.stale_snapshots += 1
            self.last_resync_reason = ResyncReason.STALE_SNAPSHOT
            return SnapshotResult.STALE
        self.book.reset(snapshot.bids, snapshot.asks, last_id, snapshot.ts_event)
        self.state = SyncState.SYNCED
        self.first_event_pending = True
        pending = list(buffer)
        buffer.clear()
        for update in pending:
            self._apply(update)
            if self.state is not SyncState.SYNCED:
                return SnapshotResult.BROKEN
        if self.book.is_crossed():
            self.counters.crossed += 1
            self._resync(ResyncReason.CROSSED)
            return SnapshotResult.BROKEN
        self.resynced = True
        return SnapshotResult.SYNCED

    def snapshot_failed(self) -> None:
        """The snapshot request failed; `wants_snapshot` becomes true again."""
        self.snapshot_pending = False

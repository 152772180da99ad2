"""Order-book sync per spec §3: on the real recordings (zero gaps, exact final books) and on every
fault the stream can have (gaps, duplicates, late events, stale snapshots, crossed books)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from kestrel.binance.book_sync import BookSynchronizer, ResyncReason, SnapshotResult, SyncState
from kestrel.binance.websocket.frames import decode_depth_snapshot, decode_payload
from kestrel.core.enums import Market
from kestrel.core.events import DepthSnapshot, DepthUpdate, QualityFlag
from kestrel.replay.raw import FrameKind, RawFrame, merge_by_local_time, read_raw

Levels = list[tuple[float, float]]


def spot(first: int, last: int, bids: Levels = (), asks: Levels = ()) -> DepthUpdate:  # type: ignore[assignment]
    return DepthUpdate(Market.SPOT, "X", first, last, -1, list(bids), list(asks), last, last)


def futures(first: int, last: int, previous: int, bids: Levels = (), asks: Levels = ()) -> DepthUpdate:  # type: ignore[assignment]
    return DepthUpdate(Market.FUTURES, "X", first, last, previous, list(bids), list(asks), last, last)


def snapshot(market: Market, last_id: int, bids: Levels, asks: Levels) -> DepthSnapshot:
    return DepthSnapshot(market, "X", last_id, bids, asks, 0, 0)


# ---- real recordings --------------------------------------------------------------------------
class ReferenceBook:
    """The book built directly from the raw JSON with exact decimals, the simplest way there is."""

    def __init__(self, market: Market) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_id: int | None = None
        self.pending: list[dict[str, object]] = []  # events received before the snapshot
        self.keeps_equal_id = market is Market.FUTURES  # futures keeps u == lastUpdateId, spot drops it

    @staticmethod
    def _apply(side: dict[Decimal, Decimal], levels: Iterable[list[str]]) -> None:
        for price, quantity in levels:
            if Decimal(quantity) == 0:
                side.pop(Decimal(price), None)
            else:
                side[Decimal(price)] = Decimal(quantity)

    def snapshot(self, body: dict[str, object]) -> None:
        self.bids, self.asks = {}, {}
        self._apply(self.bids, body["bids"])  # type: ignore[arg-type]
        self._apply(self.asks, body["asks"])  # type: ignore[arg-type]
        self.last_id = int(body["lastUpdateId"])  # type: ignore[call-overload]
        pending, self.pending = self.pending, []
        for update in pending:
            self.update(update)

    def update(self, body: dict[str, object]) -> None:
        if self.last_id is None:
            self.pending.append(body)
            return
        final_id = int(body["u"])  # type: ignore[call-overload]
        if final_id < self.last_id or (final_id == self.last_id and not self.keeps_equal_id):
            return
        self._apply(self.bids, body["b"])  # type: ignore[arg-type]
        self._apply(self.asks, body["a"])  # type: ignore[arg-type]

    def as_floats(self) -> tuple[dict[float, float], dict[float, float]]:
        return (
            {float(p): float(q) for p, q in self.bids.items()},
            {float(p): float(q) for p, q in self.asks.items()},
        )


def replay_books(frames: Iterable[RawFrame]) -> tuple[dict[str, BookSynchronizer], dict[str, ReferenceBook]]:
    syncs: dict[str, BookSynchronizer] = {}
    references: dict[str, ReferenceBook] = {}
    for frame in frames:
        assert frame.market is not None
        key = f"{frame.market.value}:{frame.symbol}"
        sync = syncs.setdefault(key, BookSynchronizer(frame.market, frame.symbol))
        reference = references.setdefault(key, ReferenceBook(frame.market))
        if frame.kind is FrameKind.SNAPSHOT:
            result = sync.on_snapshot(decode_depth_snapshot(frame.payload, frame.market, frame.symbol, 0))
            assert result is SnapshotResult.SYNCED
            reference.snapshot(orjson.loads(frame.payload))
        elif "@depth" in frame.stream:
            event = decode_payload(frame.stream, frame.payload, frame.market, frame.ts_local_ns)
            assert isinstance(event, DepthUpdate)
            assert sync.on_update(event) == 0
            if sync.is_synced:
                assert not sync.book.is_crossed()
            reference.update(orjson.loads(frame.payload))
    return syncs, references


@pytest.mark.parametrize(
    "files",
    [
        ["hftbacktest/usdm/btcusdt_20240808.gz"],
        ["hftbacktest/usdm/ethusdt_20240718.gz", "hftbacktest/usdm/ethusdt_20240719.gz"],
        ["hftbacktest/spot/btcusdt_20240808.gz", "hftbacktest/spot/btcusdt_20240809.gz"],
        ["hftbacktest/usdm/btcusdt_20230404.dat.gz"],
        ["cryptofeed/BINANCE_FUTURES.ws.1.0.gz", "cryptofeed/BINANCE_FUTURES.http.0.0.gz"],
        ["cryptofeed/BINANCE.ws.1.0.gz", "cryptofeed/BINANCE.http.0.0.gz"],
    ],
)
def test_real_recordings_sync_without_a_gap_and_end_equal_to_the_raw_book(shared_data: Path, files: list[str]) -> None:
    if files[0].startswith("cryptofeed"):
        frames = merge_by_local_time([read_raw(shared_data / name) for name in files])
    else:
        frames = (frame for name in files for frame in read_raw(shared_data / name))
    syncs, references = replay_books(frames)
    assert syncs
    for key, sync in syncs.items():
        assert sync.state is SyncState.SYNCED, key
        counters = sync.counters
        assert (counters.gaps, counters.resyncs, counters.duplicates, counters.out_of_order) == (0, 0, 0, 0)
        assert counters.stale_snapshots == 0 and counters.crossed == 0
        assert sync.book.as_dicts() == references[key].as_floats(), key


# ---- spot rules -------------------------------------------------------------------------------
def test_spot_buffer_then_snapshot_then_live() -> None:
    sync = BookSynchronizer(Market.SPOT, "X")
    assert not sync.wants_snapshot  # nothing buffered yet: a snapshot now could predate the stream
    assert sync.on_update(spot(98, 100, bids=[(9.0, 1.0)])) == 0
    assert sync.on_update(spot(101, 103, asks=[(11.0, 2.0)])) == 0
    assert sync.wants_snapshot
    sync.snapshot_pending = True
    assert not sync.wants_snapshot
    result = sync.on_snapshot(snapshot(Market.SPOT, 101, [(10.0, 1.0)], [(12.0, 1.0)]))
    assert result is SnapshotResult.SYNCED and sync.is_synced and sync.resynced
    assert sync.book.update_id == 103  # the event 98..100 was dropped, 101..103 applied
    assert sync.book.bids() == [(10.0, 1.0)] and sync.book.asks() == [(11.0, 2.0), (12.0, 1.0)]
    sync.on_update(spot(104, 104, bids=[(10.0, 0.0)]))
    assert sync.book.bids() == [] and sync.book.update_id == 104


def test_spot_snapshot_older_than_the_buffer_is_stale() -> None:
    sync = BookSynchronizer(Market.SPOT, "X")
    sync.on_update(spot(200, 210))
    assert sync.on_snapshot(snapshot(Market.SPOT, 150, [(1.0, 1.0)], [(2.0, 1.0)])) is SnapshotResult.STALE
    assert sync.counters.stale_snapshots == 1 and not sync.is_synced and sync.wants_snapshot
    assert sync.on_snapshot(snapshot(Market.SPOT, 205, [(1.0, 1.0)], [(2.0, 1.0)])) is SnapshotResult.SYNCED


def test_spot_snapshot_newer_than_every_buffered_event() -> None:
    sync = BookSynchronizer(Market.SPOT, "X")
    sync.on_update(spot(1, 5))
    assert sync.on_snapshot(snapshot(Market.SPOT, 8, [(1.0, 1.0)], [(2.0, 1.0)])) is SnapshotResult.SYNCED
    sync.on_update(spot(6, 7, bids=[(1.0, 9.0)]))  # older than the snapshot: skipped
    assert sync.book.bids() == [(1.0, 1.0)]
    sync.on_update(spot(8, 10, bids=[(1.5, 2.0)]))  # brackets 8 + 1
    assert sync.book.update_id == 10 and sync.book.best_bid() == (1.5, 2.0)


def test_spot_gap_is_counted_flagged_and_resynced() -> None:
    sync = BookSynchronizer(Market.SPOT, "X")
    sync.on_update(spot(1, 2))
    sync.on_snapshot(snapshot(Market.SPOT, 1, [(1.0, 1.0)], [(2.0, 1.0)]))
    assert sync.on_update(spot(3, 4)) == 0
    flags = sync.on_update(spot(6, 7, bids=[(1.2, 1.0)]))  # 5 is missing
    assert flags == QualityFlag.GAP_BEFORE
    assert sync.counters.gaps == 1 and sync.gap_pending  # held: 5 may still arrive late
    assert sync.book.update_id == 4 and sync.counters.resyncs == 0
    sync.on_update(spot(8, 8))  # 5 did not come: the gap is confirmed
    assert not sync.gap_pending and sync.counters.gaps == 1 and sync.counters.resyncs == 1
    assert sync.last_resync_reason is ResyncReason.GAP
    assert not sync.is_synced and sync.book.is_empty and sync.wants_snapshot and sync.buffered == 2
    assert sync.on_snapshot(snapshot(Market.SPOT, 7, [(1.1, 1.0)], [(2.0, 1.0)])) is SnapshotResult.SYNCED
    assert sync.book.update_id == 8 and sync.book.bids() == [(1.1, 1.0)]


def test_a_pending_gap_expires_after_its_window() -> None:
    sync = BookSynchronizer(Market.FUTURES, "X")
    sync.on_update(futures(1, 10, 0))
    sync.on_snapshot(snapshot(Market.FUTURES, 10, [], []))
    held = futures(20, 30, 15)  # ts_init 30
    assert sync.on_update(held) == QualityFlag.GAP_BEFORE
    assert not sync.expire_gap(now_ns=100, window_ns=200)
    assert sync.expire_gap(now_ns=230, window_ns=200)
    assert not sync.is_synced and sync.counters.resyncs == 1 and sync.buffered == 1
    assert sync.on_update(held) == QualityFlag.DUPLICATE


# ---- futures rules ----------------------------------------------------------------------------
def test_futures_first_event_rules_and_pu_chain() -> None:
    sync = BookSynchronizer(Market.FUTURES, "X")
    sync.on_update(futures(90, 99, 80))
    sync.on_update(futures(100, 110, 99, bids=[(5.0, 1.0)]))
    sync.on_update(futures(111, 120, 110, asks=[(6.0, 1.0)]))
    # futures keeps the event with u == lastUpdateId (strictly-less drop rule) and it brackets
    assert sync.on_snapshot(snapshot(Market.FUTURES, 110, [(4.0, 1.0)], [(7.0, 1.0)])) is SnapshotResult.SYNCED
    assert sync.book.update_id == 120
    assert sync.book.bids() == [(5.0, 1.0), (4.0, 1.0)] and sync.book.asks() == [(6.0, 1.0), (7.0, 1.0)]
    assert sync.on_update(futures(125, 130, 120)) == 0  # U need not be previous u + 1 on futures
    assert sync.on_update(futures(131, 140, 129)) == QualityFlag.GAP_BEFORE
    assert sync.on_update(futures(141, 150, 140)) == 0
    assert sync.counters.gaps == 1 and not sync.is_synced and sync.buffered == 2


def test_futures_snapshot_between_pu_and_u_and_stale() -> None:
    sync = BookSynchronizer(Market.FUTURES, "X")
    sync.on_update(futures(105, 110, 100))
    # lastUpdateId 103 lies between pu 100 and U 105: the event follows the snapshot
    assert sync.on_snapshot(snapshot(Market.FUTURES, 103, [(1.0, 1.0)], [(2.0, 1.0)])) is SnapshotResult.SYNCED
    other = BookSynchronizer(Market.FUTURES, "X")
    other.on_update(futures(105, 110, 100))
    assert other.on_snapshot(snapshot(Market.FUTURES, 99, [(1.0, 1.0)], [(2.0, 1.0)])) is SnapshotResult.STALE


def test_futures_first_live_event_must_follow_the_snapshot() -> None:
    sync = BookSynchronizer(Market.FUTURES, "X")
    sync.on_update(futures(10, 20, 5))
    assert sync.on_snapshot(snapshot(Market.FUTURES, 30, [(1.0, 1.0)], [(2.0, 1.0)])) is SnapshotResult.SYNCED
    # continuity holds on the stream (pu 20) but the snapshot (30) is ahead; the event ends at 28 < 30: skipped
    sync.on_update(futures(21, 28, 20))
    assert sync.is_synced and sync.book.update_id == 30
    sync.on_update(futures(29, 35, 28, bids=[(1.5, 1.0)]))  # pu 28 <= 30 <= 35: applied
    assert sync.book.update_id == 35 and sync.book.best_bid() == (1.5, 1.0)


# ---- faults -----------------------------------------------------------------------------------
def test_duplicates_and_late_events_are_flagged_and_never_applied() -> None:
    sync = BookSynchronizer(Market.FUTURES, "X")
    sync.on_update(futures(1, 10, 0))
    sync.on_snapshot(snapshot(Market.FUTURES, 5, [(1.0, 1.0)], [(2.0, 1.0)]))
    sync.on_update(futures(11, 20, 10, bids=[(1.0, 3.0)]))
    assert sync.on_update(futures(11, 20, 10, bids=[(1.0, 99.0)])) == QualityFlag.DUPLICATE
    assert sync.on_update(futures(12, 15, 11, bids=[(1.0, 77.0)])) == QualityFlag.OUT_OF_ORDER
    assert sync.counters.duplicates == 1 and sync.counters.out_of_order == 1
    assert sync.book.best_bid() == (1.0, 3.0) and sync.is_synced and sync.counters.resyncs == 0


def test_a_one_message_reorder_is_absorbed_not_counted_as_a_gap() -> None:
    """Swapped neighbours (2 after 3): the late one fills the hole, both are applied in order."""
    sync = BookSynchronizer(Market.SPOT, "X")
    sync.on_update(spot(1, 1))
    sync.on_snapshot(snapshot(Market.SPOT, 1, [(1.0, 1.0)], [(5.0, 1.0)]))
    assert sync.on_update(spot(3, 3, bids=[(2.0, 3.0)])) == QualityFlag.GAP_BEFORE
    assert sync.on_update(spot(2, 2, bids=[(2.0, 2.0), (1.5, 1.0)])) == QualityFlag.OUT_OF_ORDER
    assert sync.counters.gaps == 0 and sync.counters.out_of_order == 1 and sync.counters.resyncs == 0
    assert sync.is_synced and not sync.gap_pending
    assert sync.book.update_id == 3 and sync.book.bids() == [(2.0, 3.0), (1.5, 1.0), (1.0, 1.0)]
    assert sync.on_update(spot(4, 4)) == 0


def test_a_reorder_while_buffering_keeps_the_order_for_the_snapshot() -> None:
    sync = BookSynchronizer(Market.FUTURES, "X")
    sync.on_update(futures(1, 10, 0))
    sync.on_update(futures(21, 30, 20, asks=[(9.0, 2.0)]))  # 11..20 late
    sync.on_update(futures(11, 20, 10, asks=[(9.0, 1.0), (8.0, 1.0)]))
    assert sync.counters.gaps == 0 and sync.buffered == 3
    assert sync.on_snapshot(snapshot(Market.FUTURES, 15, [(1.0, 1.0)], [])) is SnapshotResult.SYNCED
    assert sync.book.asks() == [(8.0, 1.0), (9.0, 2.0)] and sync.book.update_id == 30


def test_late_events_that_fill_nothing_are_out_of_order() -> None:
    sync = BookSynchronizer(Market.SPOT, "X")
    sync.on_update(spot(1, 1))
    assert sync.on_update(spot(3, 3)) == QualityFlag.GAP_BEFORE
    assert sync.on_update(spot(4, 4)) == 0  # the gap is confirmed
    assert sync.on_update(spot(2, 2)) == QualityFlag.OUT_OF_ORDER  # too late to help
    assert sync.counters.gaps == 1 and sync.counters.out_of_order == 1


def test_gap_across_a_reconnect_is_detected() -> None:
    """Continuity is kept across connections: what was missed while down shows up as a gap."""
    sync = BookSynchronizer(Market.FUTURES, "X")
    sync.on_update(futures(1, 10, 0))
    sync.on_snapshot(snapshot(Market.FUTURES, 10, [], []))
    # (connection lost; the new connection's first event continues from 50)
    assert sync.on_update(futures(51, 60, 50)) == QualityFlag.GAP_BEFORE


def test_crossed_book_forces_a_resync() -> None:
    sync = BookSynchronizer(Market.SPOT, "X")
    sync.on_update(spot(1, 1))
    sync.on_snapshot(snapshot(Market.SPOT, 1, [(10.0, 1.0)], [(11.0, 1.0)]))
    sync.on_update(spot(2, 2, bids=[(11.5, 1.0)]))
    assert sync.counters.crossed == 1 and sync.last_resync_reason is ResyncReason.CROSSED
    assert not sync.is_synced and sync.book.is_empty
    sync.on_update(spot(3, 3))
    assert sync.on_snapshot(snapshot(Market.SPOT, 3, [(10.0, 1.0)], [(9.0, 1.0)])) is SnapshotResult.BROKEN


def test_forced_rebuild_and_buffer_limit() -> None:
    sync = BookSynchronizer(Market.SPOT, "X", max_buffer=3)
    for update_id in range(1, 6):
        sync.on_update(spot(update_id, update_id))
    assert sync.buffered == 3 and sync.counters.buffer_overflows == 2
    assert sync.on_snapshot(snapshot(Market.SPOT, 1, [], [])) is SnapshotResult.STALE  # 2 was discarded
    assert sync.on_snapshot(snapshot(Market.SPOT, 3, [(1.0, 1.0)], [(2.0, 1.0)])) is SnapshotResult.SYNCED
    sync.request_rebuild()
    assert not sync.is_synced and sync.counters.resyncs == 1 and sync.last_resync_reason is ResyncReason.REBUILD
    sync.snapshot_pending = True
    sync.snapshot_failed()
    assert not sync.snapshot_pending

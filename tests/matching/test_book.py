"""The engine's order book: snapshot + diff synchronisation, best prices, window, bar points."""

from __future__ import annotations

import numpy as np
import pytest

from kestrel.core.enums import Side
from kestrel.matching import kernel as k
from kestrel.matching.rows import TableBuilder
from tests.matching.helpers import FUT, FUTURES_BTC, SPOT, SPOT_BTC, D, depth, engine, snapshot, trade


def test_snapshot_sets_the_book_and_diffs_update_it() -> None:
    e = engine()
    e.apply(snapshot())
    book = e.book(FUT, "BTCUSDT")
    assert (book.best_bid_price, book.best_ask_price) == (D("100.0"), D("100.1"))
    assert book.bids(2) == [(D("100.0"), D("1.000")), (D("99.9"), D("2.000"))]
    e.apply(depth([(100.0, 0.0)], [(100.05 + 0.05, 0.0), (100.15 + 0.05, 5.0)], 2_000, 101, 105, 100))
    assert book.best_bid_price == D("99.9")  # the best bid was deleted: the next level is best
    assert book.best_ask_price == D("100.2")
    assert book.best_ask_qty == D("5.000")


def test_a_level_deletion_of_an_unknown_price_is_ignored() -> None:
    e = engine()
    e.apply(snapshot())
    e.apply(depth([(95.0, 0.0)], [], 2_000, 101, 101, 100))
    assert e.book(FUT, "BTCUSDT").bids(10)[-1] == (D("99.8"), D("3.000"))


def test_table_builder_buffers_diffs_until_the_snapshot_and_drops_stale_ones() -> None:
    builder = TableBuilder([FUTURES_BTC])
    builder.add(depth([(99.0, 1.0)], [], 500, 90, 95, 89))  # ends before the snapshot: dropped
    builder.add(depth([(99.5, 7.0)], [], 600, 96, 101, 95))  # brackets lastUpdateId 100: applied
    builder.add(snapshot(ts=700, update_id=100))
    builder.add(depth([(99.6, 1.0)], [], 800, 102, 104, 101))
    table = builder.build()
    levels = {(int(r[k.COL_TICK]), int(r[k.COL_LOTS])) for r in table.rows if r[k.COL_KIND] == k.KIND_DEPTH_BID}
    assert (990, 1000) not in levels
    assert (995, 7000) in levels and (996, 1000) in levels
    assert table.gaps == {}
    # the buffered diff is applied at the snapshot's time, right after it
    snapshot_rows = table.rows[table.rows[:, k.COL_TS_EXCH] == 700]
    assert snapshot_rows[0, k.COL_KIND] == k.KIND_CLEAR_BID
    assert snapshot_rows[-1, k.COL_FLAGS] & k.FLAG_NOTIFY_BOOK


def test_a_sequence_gap_clears_the_book_and_is_counted() -> None:
    builder = TableBuilder([FUTURES_BTC])
    builder.add(snapshot(ts=700, update_id=100))
    builder.add(depth([(99.6, 1.0)], [], 800, 101, 104, 100))
    builder.add(depth([(99.7, 1.0)], [], 900, 110, 112, 109))  # pu 109 != 104: gap
    table = builder.build()
    assert table.gaps == {"BTCUSDT": 1}
    kinds = table.rows[table.rows[:, k.COL_TS_EXCH] == 900][:, k.COL_KIND].tolist()
    assert kinds == [k.KIND_CLEAR_BID, k.KIND_CLEAR_ASK]


def test_spot_diffs_continue_by_first_id() -> None:
    builder = TableBuilder([SPOT_BTC])
    builder.add(snapshot(SPOT, ts=700, update_id=100))
    builder.add(depth([(99.6, 1.0)], [], 800, 101, 103, -1, SPOT))
    builder.add(depth([(99.7, 1.0)], [], 900, 104, 104, -1, SPOT))
    builder.add(depth([(99.8, 1.0)], [], 950, 106, 107, -1, SPOT))  # 105 missing
    assert builder.build().gaps == {"BTCUSDT": 1}


def test_feed_latency_keeps_message_rows_together_and_local_time_monotonic() -> None:
    builder = TableBuilder([FUTURES_BTC])
    builder.add(snapshot(ts=1_000, update_id=100))
    for n in range(50):
        builder.add(depth([(99.0 + n / 10, 1.0), (98.0, 2.0)], [], 2_000 + n, 101 + n, 101 + n, 100 + n))

    class Alternating:
        def __init__(self) -> None:
            self.n = 0

        def sample(self) -> int:
            self.n += 1
            return 10_000 if self.n % 2 else 0

        def describe(self) -> str:
            return "test"

    table = builder.build(Alternating())
    local = table.rows[:, k.COL_TS_LOCAL]
    assert np.all(np.diff(local) >= 0)
    assert np.all(local >= table.rows[:, k.COL_TS_EXCH])
    # the two levels of one message share their local time
    pairs = table.rows[table.rows[:, k.COL_TS_EXCH] >= 2_000]
    assert np.all(pairs[0::2, k.COL_TS_LOCAL] == pairs[1::2, k.COL_TS_LOCAL])


def test_window_recenters_when_the_price_walks_away() -> None:
    from kestrel.matching.engine import EngineSettings

    e = engine(settings=EngineSettings(book_window_ticks=1024))
    e.apply(snapshot(bids=[(100.0, 1.0), (90.0, 5.0)], asks=[(100.1, 1.0)]))
    base = int(e.state.sym_state[0, k.S_BASE])
    previous = 100.0
    for step in range(1, 40):
        price = 100.0 + step * 10.0
        update = depth(
            [(previous, 0.0), (price, 1.0)],
            [(previous + 0.1, 0.0), (price + 0.1, 1.0)],
            1_000 + step,
            100 + step,
            100 + step,
            99 + step,
        )
        e.apply(update)
        previous = price
    book = e.book(FUT, "BTCUSDT")
    assert int(e.state.sym_state[0, k.S_BASE]) != base
    assert (book.best_bid_price, book.best_ask_price) == (D("490.0"), D("490.1"))
    # levels that fell out of the window are forgotten (docs/matching.md: the book window)
    assert book.bids(5) == [(D("490.0"), D("1.000"))]


def test_trades_set_the_last_price() -> None:
    e = engine()
    e.apply(snapshot())
    e.apply(trade(100.1, 0.5, Side.BUY, 2_000))
    assert e.last_price(FUT, "BTCUSDT") == D("100.1")


def test_bar_mode_books_are_one_price() -> None:
    e = engine(bar=True)
    builder = TableBuilder(e.instruments, bar_symbols=[(FUT, "BTCUSDT")])
    from kestrel.core.events import Kline

    builder.add(
        Kline(
            FUT,
            "BTCUSDT",
            "1h",
            0,
            3_599_999_999_999,
            100.0,
            110.0,
            95.0,
            105.0,
            1.0,
            0.0,
            0,
            0.0,
            0.0,
            True,
            3_599_999_999_999,
            3_599_999_999_999,
        )
    )
    table = builder.build()
    points = table.rows[table.rows[:, k.COL_KIND] == k.KIND_BAR_POINT]
    # open 100, then the extreme nearer the open (low 95), then the high 110, then the close 105
    assert points[:, k.COL_TICK].tolist() == [1000, 950, 1100, 1050]
    e.load(table)
    assert e.run_until(1 << 62) == k.STATUS_END
    book = e.book(FUT, "BTCUSDT")
    assert book.best_bid_price == book.best_ask_price == D("105.0")


@pytest.mark.parametrize("price", [0.0, -1.0])
def test_nonsense_prices_do_not_break_the_book(price: float) -> None:
    e = engine()
    e.apply(snapshot())
    e.apply(depth([(price, 1.0)], [], 2_000, 101, 101, 100))
    assert e.book(FUT, "BTCUSDT").best_bid_price == D("100.0")

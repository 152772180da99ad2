"""The shared raw recordings imported into Parquet, then replayed: every update id present, zero gaps,
and final books equal to a book built directly from the raw file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.core.clock import SimClock
from kestrel.core.enums import Market
from kestrel.core.events import DepthSnapshot, DepthUpdate, Trade
from kestrel.marketdata.importer import import_raw
from kestrel.marketdata.raw_events import RawReadStats, raw_events
from kestrel.marketdata.sequencer import Sequencer
from kestrel.replay.raw import merge_by_local_time, read_raw
from kestrel.replay.recorded import replay_events
from kestrel.storage.catalog import Catalog
from tests.binance.test_book_sync import replay_books

FILES = [
    "hftbacktest/usdm/btcusdt_20240718.gz",
    "cryptofeed/BINANCE_FUTURES.ws.1.0.gz",
    "cryptofeed/BINANCE_FUTURES.http.0.0.gz",
    "cryptofeed/BINANCE.ws.1.0.gz",
    "cryptofeed/BINANCE.http.0.0.gz",
    "cryptofeed/BINANCE_DELIVERY.ws.1.0.gz",
]


@pytest.fixture(scope="module")
def imported(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("imported")
    paths = [shared_data / name for name in FILES]
    report = import_raw(paths, out, clock=SimClock(1_800_000_000 * 10**9))
    assert report.other_markets_skipped == 4_371  # the COIN-M file, counted, not silently dropped
    assert report.malformed == 0 and not report.unknown_streams
    for key, counters in report.symbols.items():
        assert counters["depth_gaps"] == 0 and counters["trade_drops"] == 0 and counters["book_synced"], key
    return out, paths


def test_every_update_id_is_in_the_recording(imported: tuple[Path, list[Path]]) -> None:
    out, paths = imported
    raw_ids = {
        (frame.market, frame.symbol, frame.json()["u"])
        for path in paths[:5]
        for frame in read_raw(path)
        if "@depth" in frame.stream
    }
    replayed = [e for e in replay_events(out, streams=["depth"]) if isinstance(e, DepthUpdate)]
    assert {(e.market, e.symbol, e.final_update_id) for e in replayed} == raw_ids
    assert len(replayed) == len(raw_ids)
    catalog = Catalog(out)
    info = catalog.info()
    assert info["streams"]["depth"]["markets"]["futures"]["id_gaps"] == 0
    assert info["streams"]["depth"]["markets"]["spot"]["id_gaps"] == 0
    assert info["streams"]["trade"]["markets"]["futures"]["id_gaps"] == 0
    _, rows = catalog.query("SELECT count(*) FROM depth_snapshot")
    assert rows == [(9,)]
    catalog.close()


def test_books_rebuilt_from_the_recording_equal_the_raw_books(imported: tuple[Path, list[Path]]) -> None:
    out, paths = imported
    sequencer = Sequencer()
    for event in replay_events(out, streams=["depth", "depth_snapshot"]):
        _, flags = sequencer.process(event)
        assert flags in (0, 2)  # clean, or RESYNCED on the snapshot that built the book
    references = {}
    for group in ([paths[0]], [paths[1], paths[2]], [paths[3], paths[4]]):  # one book-building session each
        references.update(replay_books(merge_by_local_time([read_raw(path) for path in group]))[1])
    books = {f"{market.value}:{symbol}": state.book for (market, symbol), state in sequencer.symbols().items()}
    assert set(books) == set(references)
    for key, reference in references.items():
        assert books[key].is_synced and books[key].counters.gaps == 0
        assert books[key].book.as_dicts() == reference.as_floats(), key


def test_raw_events_orders_and_counts(shared_data: Path) -> None:
    path = shared_data / "hftbacktest/spot/ethusdt_20240808.gz"
    stats = RawReadStats()
    received = list(raw_events([path], stats=stats))
    exchange = list(raw_events([path], order="exchange"))
    assert sorted(map(repr, received)) == sorted(map(repr, exchange))
    assert [e.ts_event for e in exchange] == sorted(e.ts_event for e in exchange)
    assert stats.frames == 33_618 and sum(stats.events.values()) == 33_618
    assert isinstance(received[0], DepthUpdate | Trade | DepthSnapshot) or received[0].market is Market.SPOT

from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.core.clock import SimClock
from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.core.events import DepthUpdate, QualityFlag, Trade
from kestrel.storage.catalog import Catalog
from kestrel.storage.recorder import ParquetRecorder
from tests.storage.factory import START_NS

MS = 1_000_000


def test_info_counts_rows_and_id_gaps_per_market(tmp_path: Path) -> None:
    events = []
    for index, (first, last) in enumerate([(1, 2), (3, 5), (9, 9), (10, 12), (10, 12)]):  # 6..8 missing, last a dup
        flags = int(QualityFlag.DUPLICATE) if index == 4 else 0
        events.append(
            DepthUpdate(
                Market.SPOT,
                "BTCUSDT",
                first,
                last,
                -1,
                [(1.0, 1.0)],
                [],
                START_NS + index * MS,
                START_NS + index * MS + 5,
                flags,
            )
        )
    for index, trade_id in enumerate([100, 101, 104, 105]):  # 102, 103 missing
        events.append(
            Trade(Market.FUTURES, "ETHUSDT", trade_id, 2.0, 1.0, False, START_NS + index * MS, START_NS + index * MS)
        )
    with ParquetRecorder(tmp_path, SimClock(START_NS)) as recorder:
        recorder.record_all(events)
    catalog = Catalog(tmp_path / "market")  # the market/ folder is accepted too
    info = catalog.info()
    depth = info["streams"]["depth"]["markets"]["spot"]
    assert depth["rows"] == 5 and depth["id_gaps"] == 1 and depth["duplicate_or_late_rows"] == 1
    trade = info["streams"]["trade"]["markets"]["futures"]
    assert trade["rows"] == 4 and trade["id_gaps"] == 2 and trade["id_gaps_by_symbol"] == {"ETHUSDT": 2}
    assert info["symbols"] == ["futures:ETHUSDT", "spot:BTCUSDT"]
    columns, rows = catalog.query(
        "SELECT symbol, date, hour, bids[1].price AS best FROM depth ORDER BY ts_event LIMIT 1"
    )
    assert columns == ["symbol", "date", "hour", "best"]
    assert rows[0][0] == "BTCUSDT" and str(rows[0][1]) == "2024-08-08" and rows[0][2] == 23 and rows[0][3] == 1.0
    with pytest.raises(DataError, match="query failed"):
        catalog.query("SELECT * FROM nowhere")
    catalog.close()


def test_not_a_recording(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory"):
        Catalog(tmp_path / "missing")
    with pytest.raises(DataError, match="not a Kestrel recording"):
        Catalog(tmp_path)

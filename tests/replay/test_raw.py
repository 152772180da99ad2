from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.replay.raw import FrameKind, merge_by_local_time, read_raw


def test_hftbacktest_usdm_file(shared_data: Path) -> None:
    frames = list(read_raw(shared_data / "hftbacktest/usdm/btcusdt_20240808.gz"))
    assert len(frames) == 93_954
    snapshots = [f for f in frames if f.kind is FrameKind.SNAPSHOT]
    assert len(snapshots) == 1 and snapshots[0].symbol == "BTCUSDT"
    assert {f.market for f in frames} == {Market.FUTURES}
    kinds = {f.stream.split("@", 1)[1] for f in frames if f.kind is FrameKind.STREAM}
    assert kinds == {"depth@0ms", "trade", "bookTicker"}
    stamps = [f.ts_local_ns for f in frames]
    assert stamps == sorted(stamps) and stamps[0] > 1.7e18
    depth = [f.json() for f in frames if f.kind is FrameKind.STREAM and "depth" in f.stream]
    assert all(depth[i]["pu"] == depth[i - 1]["u"] for i in range(1, len(depth)))


def test_microsecond_stamps_of_2023_files(shared_data: Path) -> None:
    first = next(read_raw(shared_data / "hftbacktest/spot/btcusdt_20230405.dat.gz"))
    assert 1.68e18 < first.ts_local_ns < 1.69e18


def test_cryptofeed_ws_and_http(shared_data: Path) -> None:
    ws = list(read_raw(shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz"))
    assert {f.symbol for f in ws} == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    assert any("aggTrade" in f.stream for f in ws)
    snaps = list(read_raw(shared_data / "cryptofeed/BINANCE_FUTURES.http.0.0.gz"))
    assert {f.symbol for f in snaps} == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    assert all(f.kind is FrameKind.SNAPSHOT and "lastUpdateId" in f.json() for f in snaps)
    merged = list(merge_by_local_time([iter(ws), iter(snaps)]))
    assert len(merged) == len(ws) + len(snaps)
    assert [f.ts_local_ns for f in merged] == sorted(f.ts_local_ns for f in merged)


def test_coinm_is_not_a_kestrel_market(shared_data: Path) -> None:
    first = next(read_raw(shared_data / "hftbacktest/coinm/btcusd_perp_20240808.gz"))
    assert first.market is None


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_raw(tmp_path / "nope.gz")
    bad = tmp_path / "bad_20240101.txt"
    bad.write_text("123 not json\n")
    with pytest.raises(DataError, match=r"bad_20240101\.txt:1"):
        list(read_raw(bad))

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kestrel.core.errors import DataError
from kestrel.features.io import load_funding, load_klines, query_duckdb, resolve_data_path


def test_freqtrade_feather_and_shared_prefix(shared_data: Path) -> None:
    bars, interval = load_klines("shared:freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-15m-futures.feather")
    assert interval == 900 and bars.columns == ["open_time_ns", "open", "high", "low", "close", "volume"]
    assert bars["open_time_ns"].is_sorted() and bars.height == 26_244
    funding = load_funding(shared_data / "freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-8h-funding_rate.feather")
    assert funding.columns == ["ts", "funding_rate"] and funding["funding_rate"].abs().max() < 0.01
    assert resolve_data_path("shared:x") == shared_data / "x"


def test_binance_csv_and_parquet_and_duckdb(shared_data: Path, tmp_path: Path) -> None:
    csv = shared_data / "nautilus_trader/ADABTC-1m-2021-11-27.csv"
    bars, interval = load_klines(csv)
    assert interval == 60 and bars.height == 10
    path = tmp_path / "bars.parquet"
    bars.write_parquet(path)
    again, _ = load_klines(path, start_ns=int(bars["open_time_ns"][2]))
    assert again.height == 8
    counted = query_duckdb(f"SELECT count(*) AS n FROM '{path}'")
    assert counted["n"][0] == 10


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_klines(tmp_path / "missing.feather")
    (tmp_path / "bars.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        load_klines(tmp_path / "bars.txt")
    shuffled = tmp_path / "shuffled.parquet"
    pl.DataFrame(
        {
            "open_time_ns": [2, 1, 3],
            "open": [1.0] * 3,
            "high": [1.0] * 3,
            "low": [1.0] * 3,
            "close": [1.0] * 3,
            "volume": [1.0] * 3,
        }
    ).write_parquet(shuffled)
    with pytest.raises(DataError, match="strictly increasing"):
        load_klines(shuffled)
    with pytest.raises(DataError, match="duckdb"):
        query_duckdb("SELECT * FROM no_such_table")

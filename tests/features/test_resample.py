from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kestrel.core.errors import ConfigurationError
from kestrel.features.io import load_klines
from kestrel.features.resample import find_gaps, resample_bars

DATA = "freqtrade_userdata_roshan7869/"


def test_15m_resampled_to_1h_equals_the_exchange_1h_bars(shared_data: Path) -> None:
    quarter, interval = load_klines(shared_data / f"{DATA}futures/BTC_USDT_USDT-15m-futures.feather")
    hourly, _ = load_klines(shared_data / f"{DATA}futures/BTC_USDT_USDT-1h-futures.feather")
    built = resample_bars(quarter, interval, 3600)
    joined = built.join(hourly, on="open_time_ns", suffix="_exchange")
    assert joined.height > 6000
    for column in ("open", "high", "low", "close"):
        assert (joined[column] == joined[f"{column}_exchange"]).all(), column
    assert ((joined["volume"] - joined["volume_exchange"]).abs() < 1e-6 * joined["volume_exchange"] + 1e-9).all()
    four_hours = resample_bars(built, 3600, 4 * 3600)
    assert four_hours.height == built.height // 4 or four_hours.height == built.height // 4 - 1


def test_gaps_of_the_spot_history_are_found(shared_data: Path) -> None:
    spot, interval = load_klines(shared_data / f"{DATA}spot/BTC_USDT-1h.feather")
    gaps = find_gaps(spot, interval)
    assert gaps.height == 27  # SOURCES.md: 27 maintenance gaps in BTC spot 1h
    incomplete = resample_bars(spot, interval, 86_400)
    assert incomplete.height < spot.height // 24  # days with a hole are not made into daily bars
    assert find_gaps(resample_bars(spot.head(48), 3600, 3600), 3600).height == 0


def test_bad_resample() -> None:
    frame = pl.DataFrame(
        {"open_time_ns": [0], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1.0]}
    )
    with pytest.raises(ConfigurationError):
        resample_bars(frame, 3600, 5400)

"""Bar features against an independent reference (TA-Lib, pandas) on the shared real klines, and the
streaming/batch parity of the one compiled formula."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import talib

from kestrel.core.errors import ConfigurationError, DataError
from kestrel.features.bars import BarFeatures, BarSpec, compute_bar_features
from kestrel.features.cross import PairCorrelation, aligned_return_correlation, rolling_correlation
from kestrel.features.io import load_klines

BTC = "freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-1h-futures.feather"
ETH = "freqtrade_userdata_roshan7869/futures/ETH_USDT_USDT-1h-futures.feather"
RTOL = 1e-9


def _assert_matches(ours: np.ndarray, reference: np.ndarray, name: str) -> None:
    """Same warm-up (NaN positions) and every defined value within 1e-9 relative."""
    assert np.array_equal(np.isnan(ours), np.isnan(reference)), f"{name}: warm-up differs"
    defined = ~np.isnan(reference)
    assert defined.sum() > 1000, f"{name}: too few defined values to compare"
    np.testing.assert_allclose(ours[defined], reference[defined], rtol=RTOL, atol=0, err_msg=name)


@pytest.fixture(scope="module")
def btc(shared_data: Path) -> pl.DataFrame:
    bars, interval = load_klines(shared_data / BTC)
    assert interval == 3600
    return bars


def test_bar_features_match_talib_on_real_klines(btc: pl.DataFrame) -> None:
    """TA-Lib (the C library, via its Python wrapper) is the independent reference; rv_pct uses pandas."""
    spec = BarSpec(interval_s=3600)
    ours = compute_bar_features(btc, spec)
    high, low, close, volume = (btc[c].to_numpy() for c in ("high", "low", "close", "volume"))
    log_return = np.concatenate([[np.nan], np.log(close[1:] / close[:-1])])
    year = math.sqrt(365 * 24)
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    rv_24 = talib.STDDEV(log_return, 24, 1) * year
    references = {
        "tr": talib.TRANGE(high, low, close),
        "atr_14": talib.ATR(high, low, close, 14),
        "natr_14": talib.ATR(high, low, close, 14) / close,
        "log_return_1": log_return,
        "log_return_24": np.concatenate([[np.nan] * 24, np.log(close[24:] / close[:-24])]),
        "rv_24": rv_24,
        "rv_168": talib.STDDEV(log_return, 168, 1) * year,
        "rv_ratio": rv_24 / (talib.STDDEV(log_return, 168, 1) * year),
        "rv_pct_720": pd.Series(rv_24).rolling(720).rank(pct=True, method="max").to_numpy(),
        "bb_width_20": (upper - lower) / middle,
        "trend_ema_48": (close - talib.EMA(close, 48)) / talib.ATR(high, low, close, 14),
        "volume_ratio_20": volume / talib.SMA(volume, 20),
    }
    for name, reference in references.items():
        _assert_matches(ours[name].to_numpy(), reference, name)


def test_squeeze_turn_marks_minimum_width_then_rise(btc: pl.DataFrame) -> None:
    spec = BarSpec(interval_s=3600)
    ours = compute_bar_features(btc, spec)
    width = ours["bb_width_20"].to_numpy()
    turn = ours["bb_squeeze_turn"].to_numpy()
    expected = np.full(width.size, np.nan)
    for i in range(width.size):
        window = width[i - 120 : i]
        if i >= 120 and not np.isnan(width[i]) and not np.isnan(window).any():
            expected[i] = float(width[i - 1] <= window.min() and width[i] > width[i - 1])
    _assert_matches(turn, expected, "bb_squeeze_turn")
    assert 10 < np.nansum(turn) < 0.05 * width.size  # squeezes are real but rare


def test_streaming_equals_batch_bit_for_bit(btc: pl.DataFrame) -> None:
    spec = BarSpec(interval_s=3600, return_windows=(1, 3), rv_windows=(12, 48), rv_percentile_lookback=100)
    batch = compute_bar_features(btc, spec).select(spec.names).to_numpy()
    stream = BarFeatures(spec)
    rows = np.array(
        [
            stream.update(h, low, c, v).copy()
            for h, low, c, v in btc.select("high", "low", "close", "volume").iter_rows()
        ]
    )
    assert np.array_equal(rows, batch, equal_nan=True)
    assert stream.values()["rv_12"] == batch[-1, spec.names.index("rv_12")]


def test_cross_asset_correlation_matches_talib(shared_data: Path) -> None:
    btc, _ = load_klines(shared_data / BTC, start_ns=1_600_000_000 * 10**9)
    eth, _ = load_klines(shared_data / ETH, start_ns=1_600_000_000 * 10**9)
    ours = aligned_return_correlation(eth, btc, 72).to_numpy()
    joined = eth.join(btc, on="open_time_ns", how="left", suffix="_btc")
    x = np.log(joined["close"].to_numpy() / np.roll(joined["close"].to_numpy(), 1))
    y = np.log(joined["close_btc"].to_numpy() / np.roll(joined["close_btc"].to_numpy(), 1))
    x[0] = y[0] = np.nan
    assert not np.isnan(y[1:]).any()  # the futures files are gapless, so TA-Lib sees the same pairs
    _assert_matches(ours, talib.CORREL(x, y, 72), "corr_ref_72")
    stream = PairCorrelation(72)
    streamed = np.array([stream.update(a, b) for a, b in zip(x, y, strict=True)])
    assert np.array_equal(streamed, rolling_correlation(x, y, 72), equal_nan=True)


def test_bad_bars_and_bad_parameters_are_refused() -> None:
    features = BarFeatures(BarSpec())
    with pytest.raises(DataError, match="invalid bar"):
        features.update(high=10.0, low=11.0, close=10.5, volume=1.0)
    with pytest.raises(DataError, match="invalid bar"):
        features.update(high=10.0, low=9.0, close=float("nan"), volume=1.0)
    frame = pl.DataFrame({"open_time_ns": [0, 1], "open": [1.0, 1.0], "high": [1.0, 1.0], "low": [2.0, 1.0]})
    with pytest.raises(DataError, match="missing columns"):
        compute_bar_features(frame, BarSpec())
    with pytest.raises(ConfigurationError, match="rv_windows"):
        BarSpec(rv_windows=(24,))
    with pytest.raises(ConfigurationError, match="atr_period"):
        BarSpec(atr_period=0)

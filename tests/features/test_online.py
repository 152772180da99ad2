"""The online kline feature rows equal the research table's rows (what the model was trained on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.core.events import FundingRate, Kline
from kestrel.features.bars import BarSpec
from kestrel.features.io import load_funding, load_klines
from kestrel.features.online import OnlineKlineFeatures
from kestrel.features.table import SymbolBars, model_feature_table

FUTURES = "freqtrade_userdata_roshan7869/futures/"


def test_online_rows_equal_the_training_table(shared_data: Path) -> None:
    series = []
    for symbol, stem in (("BTCUSDT", "BTC_USDT_USDT"), ("ETHUSDT", "ETH_USDT_USDT")):
        bars, _ = load_klines(shared_data / f"{FUTURES}{stem}-1h-futures.feather")
        funding = load_funding(shared_data / f"{FUTURES}{stem}-1h-funding_rate.feather")
        series.append(SymbolBars(symbol, bars.tail(2500), funding))
    spec = BarSpec(interval_s=3600, rv_percentile_lookback=240)
    table, names = model_feature_table(series, spec, 72, "median_mad", 256)
    online = OnlineKlineFeatures(["BTCUSDT", "ETHUSDT"], spec, 72, "median_mad", 256, with_funding=True)
    assert online.names == names
    hour = 3_600_000_000_000
    timeline: list[tuple[int, int, object]] = []
    for item in series:
        for row in item.bars.iter_rows(named=True):
            close = row["open_time_ns"] + hour
            kline = Kline(
                Market.FUTURES, item.symbol, "1h", row["open_time_ns"], close - 1, row["open"], row["high"],
                row["low"], row["close"], row["volume"], 0.0, 0, 0.0, 0.0, True, close, close,
            )  # fmt: skip
            timeline.append((close, 1, kline))
        assert item.funding is not None
        for ts, rate in item.funding.iter_rows():
            timeline.append((ts, 0, FundingRate(Market.FUTURES, item.symbol, rate, 0.0, ts, ts)))
    rows: dict[tuple[int, str], np.ndarray] = {}
    for _, _, event in sorted(timeline, key=lambda item: (item[0], item[1])):
        if isinstance(event, FundingRate):
            online.on_funding(event)
        else:
            assert isinstance(event, Kline)
            for symbol, row in online.on_kline(event).items():
                rows[(event.open_time_ns + hour, symbol)] = row
    assert len(rows) == table.height == 5000
    expected = table.select(names).to_numpy()
    got = np.array([rows[(ts, symbol)] for ts, symbol in table.select("ts", "symbol").iter_rows()])
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.isfinite(got[-1]).all()


def test_unclosed_and_unknown_klines() -> None:
    online = OnlineKlineFeatures(["A"], BarSpec(), 72, "none", 100, with_funding=False)
    kline = Kline(Market.SPOT, "A", "1h", 0, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0, 0.0, 0.0, False, 1, 1)
    assert online.on_kline(kline) == {}
    with pytest.raises(DataError, match="unknown symbol"):
        online.on_funding(FundingRate(Market.FUTURES, "B", 0.0, 0.0, 1, 1))

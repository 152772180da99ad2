"""Triple barrier and forward labels: hand-made cases and a brute-force cross-check."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from kestrel.core.errors import ConfigurationError
from kestrel.labels.barrier import BarrierSpec, triple_barrier_labels

HOUR = 3600


def _bars(highs: list[float], lows: list[float], closes: list[float]) -> pl.DataFrame:
    n = len(closes)
    return pl.DataFrame(
        {
            "open_time_ns": np.arange(n) * HOUR * 10**9,
            "high": np.asarray(highs, dtype=float),
            "low": np.asarray(lows, dtype=float),
            "close": np.asarray(closes, dtype=float),
        }
    )


def test_upper_lower_vertical_and_ambiguous() -> None:
    # ATR 1 everywhere; barriers at close ± 2
    closes = [100, 101, 102.5, 100, 97, 99, 100, 100, 100, 100]
    highs = [100, 101.5, 102.6, 100.5, 98, 99.5, 103, 100.2, 100.2, 100.2]
    lows = [100, 100.5, 101.9, 99.5, 96.5, 98.5, 96, 99.8, 99.8, 99.8]
    labels = triple_barrier_labels(_bars(highs, lows, closes), np.ones(10), BarrierSpec(3, 2.0, 2.0, 2), HOUR)
    rows = labels.to_dicts()
    # bar 0: entry 100, upper 102 hit at bar 2 (high 102.6)
    assert rows[0]["tb_label"] == 1 and rows[0]["tb_return"] == pytest.approx(0.02)
    assert rows[0]["peak_return"] == pytest.approx(0.026) and rows[0]["time_to_peak_bars"] == 2
    assert rows[0]["label_end_ns"] == 3 * HOUR * 10**9  # close of bar 2 (the exit) ≥ forward end (bar 2)
    assert rows[0]["fwd_return"] == pytest.approx(102.5 / 100 - 1)
    # bar 1: entry 101, lower 99 hit at bar 4 (low 96.5) — after bar 3 (low 99.5) did not touch
    assert rows[1]["tb_label"] == -1 and rows[1]["tb_return"] == pytest.approx(99 / 101 - 1)
    # bar 3: entry 100, both barriers touched inside bar 6? no: bar 4 low 96.5 ≤ 98 → −1 first
    assert rows[3]["tb_label"] == -1
    # bar 5: entry 99, bar 6 has high 103 ≥ 101 and low 96 ≤ 97: ambiguous → adverse, flagged
    assert rows[5]["tb_label"] == -1 and rows[5]["tb_ambiguous"] is True
    # bar 6: entry 100, bars 7..9 stay inside ±2: vertical barrier, return at the horizon
    assert rows[6]["tb_label"] == 0 and rows[6]["tb_return"] == pytest.approx(0.0)
    assert rows[6]["label_end_ns"] == 10 * HOUR * 10**9
    # the last H bars cannot be labelled
    assert all(row["tb_label"] is None and row["label_end_ns"] is None for row in rows[7:])


def _brute(high: np.ndarray, low: np.ndarray, close: np.ndarray, atr: np.ndarray, h: int, u: float, d: float):  # type: ignore[no-untyped-def]
    out = []
    for i in range(close.size - h):
        upper, lower = close[i] + u * atr[i], close[i] - d * atr[i]
        label, end = 0, i + h
        for j in range(i + 1, i + h + 1):
            if low[j] <= lower:
                label, end = -1, j
                break
            if high[j] >= upper:
                label, end = 1, j
                break
        peak = max(high[i + 1 : end + 1])
        out.append((label, end, peak / close[i] - 1))
    return out


def test_random_walk_matches_brute_force() -> None:
    generator = np.random.default_rng(11)
    close = 100 * np.exp(np.cumsum(generator.normal(0, 0.01, 3000)))
    high = close * (1 + np.abs(generator.normal(0, 0.004, 3000)))
    low = close * (1 - np.abs(generator.normal(0, 0.004, 3000)))
    atr = np.full(3000, 1.0)
    labels = triple_barrier_labels(_bars(list(high), list(low), list(close)), atr, BarrierSpec(12, 1.5, 1.0, 12), HOUR)
    expected = _brute(high, low, close, atr, 12, 1.5, 1.0)
    assert labels["tb_label"].drop_nulls().to_list() == [float(e[0]) for e in expected]
    np.testing.assert_allclose(labels["peak_return"].drop_nulls().to_numpy(), [e[2] for e in expected])
    ends = labels["label_end_ns"].drop_nulls().to_numpy() // (HOUR * 10**9)
    assert np.array_equal(ends, [max(e[1], i + 12) + 1 for i, e in enumerate(expected)])


def test_missing_atr_and_bad_spec() -> None:
    bars = _bars([1.0] * 5, [1.0] * 5, [1.0] * 5)
    labels = triple_barrier_labels(bars, np.array([math.nan, 1, 1, 1, 1]), BarrierSpec(2, 1, 1, 1), HOUR)
    assert labels["tb_label"][0] is None and labels["tb_label"][1] == 0
    with pytest.raises(ConfigurationError):
        BarrierSpec(horizon_bars=0)
    with pytest.raises(ConfigurationError):
        BarrierSpec(upper_atr=0)

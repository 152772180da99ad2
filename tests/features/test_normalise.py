"""Rolling robust normalisation: median/MAD and rank against brute force and pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from kestrel.core.errors import ConfigurationError
from kestrel.features.normalise import RollingNormaliser, normalise_frame


def _brute_median_mad(column: np.ndarray, window: int, clip: float = 10.0) -> np.ndarray:
    out = np.full(column.size, np.nan)
    seen: list[float] = []
    for i, value in enumerate(column):
        if np.isnan(value):
            continue
        seen.append(value)
        recent = np.array(seen[-window:])
        if recent.size < window:
            continue
        centre = np.median(recent)
        spread = np.median(np.abs(recent - centre)) * 1.4826
        if spread > 0:
            out[i] = np.clip((value - centre) / spread, -clip, clip)
        else:
            out[i] = 0.0 if value == centre else np.sign(value - centre) * clip
    return out


@pytest.mark.parametrize("window", [32, 33])
def test_median_mad_equals_brute_force(window: int) -> None:
    generator = np.random.default_rng(3)
    values = generator.standard_t(3, size=(1500, 3))
    values[::7, 1] = np.nan  # gaps are skipped, not pushed
    values[:, 2] = np.round(values[:, 2])  # many ties, MAD can be 0
    out = RollingNormaliser(3, window, "median_mad", min_periods=window).transform(values)
    for column in range(3):
        np.testing.assert_allclose(out[:, column], _brute_median_mad(values[:, column], window), atol=1e-12)


def test_rank_equals_pandas_and_streaming_equals_batch() -> None:
    generator = np.random.default_rng(4)
    values = generator.standard_normal((800, 2))
    batch = RollingNormaliser(2, 50, "rank", min_periods=50).transform(values)
    reference = pd.Series(values[:, 0]).rolling(50).rank(pct=True, method="max").to_numpy()
    np.testing.assert_allclose(batch[:, 0], reference, equal_nan=True)
    streaming = RollingNormaliser(2, 50, "rank", min_periods=50)
    rows = np.array([streaming.update(row).copy() for row in values])
    assert np.array_equal(rows, batch, equal_nan=True)


def test_frame_helper_and_validation() -> None:
    frame = pl.DataFrame({"a": np.arange(100.0), "b": np.ones(100)})
    out = normalise_frame(frame, ["a"], window=10, min_periods=10)
    assert out["b"].to_list() == frame["b"].to_list()  # untouched column
    assert np.isnan(out["a"][8]) and out["a"][99] == pytest.approx((99 - 94.5) / (2.5 * 1.4826))
    assert normalise_frame(frame, ["a"], window=10, method="none") is frame
    with pytest.raises(ConfigurationError, match="window"):
        RollingNormaliser(1, 1)
    with pytest.raises(ConfigurationError, match="unknown method"):
        RollingNormaliser(1, 10, "zscore")  # type: ignore[arg-type]

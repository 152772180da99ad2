"""Cross-asset features: rolling correlation of two assets' 1-bar log returns (R-FE-1).

The two series are aligned on bar open time; a bar missing on either side is skipped (the window holds
the last n bars both assets traded). Same compiled kernel for streaming (`PairCorrelation.update`) and
batch (`rolling_correlation`), equal to TA-Lib's CORREL on the aligned returns.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numba import njit

from kestrel.core.errors import ConfigurationError
from kestrel.features.kernels import PAIR_META, pair_correlation, pair_push


@njit(cache=True, nogil=True)
def _correlation_batch(bx: np.ndarray, by: np.ndarray, meta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    n = bx.shape[0]
    for i in range(x.shape[0]):
        if math.isnan(x[i]) or math.isnan(y[i]):
            out[i] = math.nan
            continue
        pair_push(bx, by, meta, x[i], y[i])
        out[i] = pair_correlation(meta) if meta[1] == n else math.nan
    return out


class PairCorrelation:
    """Streaming rolling correlation over the last `window` aligned pairs."""

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ConfigurationError(f"correlation window must be >= 2 (got {window})")
        self.window = window
        self._bx = np.zeros(window)
        self._by = np.zeros(window)
        self._meta = np.zeros(PAIR_META)

    def update(self, x: float, y: float) -> float:
        if math.isnan(x) or math.isnan(y):
            return math.nan
        pair_push(self._bx, self._by, self._meta, x, y)
        return float(pair_correlation(self._meta)) if self._meta[1] == self.window else math.nan


def rolling_correlation(x: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    """Batch equivalent of feeding (x[i], y[i]) to `PairCorrelation(window)` in order."""
    if window < 2:
        raise ConfigurationError(f"correlation window must be >= 2 (got {window})")
    return _correlation_batch(
        np.zeros(window),
        np.zeros(window),
        np.zeros(PAIR_META),
        np.ascontiguousarray(x, dtype=np.float64),
        np.ascontiguousarray(y, dtype=np.float64),
    )


def aligned_return_correlation(own: pl.DataFrame, partner: pl.DataFrame, window: int) -> pl.Series:
    """Correlation of `own`'s and `partner`'s 1-bar log returns per row of `own` (by open_time_ns).

    Returns are taken between consecutive bars of each series; rows of `own` without a partner bar get
    NaN and do not enter the window."""

    def returns(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return frame.select(
            pl.col("open_time_ns"),
            (pl.col("close") / pl.col("close").shift(1)).log().alias(name),
        )

    joined = returns(own, "x").join(returns(partner, "y"), on="open_time_ns", how="left", maintain_order="left")
    values = rolling_correlation(
        joined["x"].fill_null(math.nan).to_numpy(), joined["y"].fill_null(math.nan).to_numpy(), window
    )
    return pl.Series("corr", values)

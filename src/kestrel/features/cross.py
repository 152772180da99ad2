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

# Compiled in this file (not imported) so numba's per-file cache can never pair stale callers with
# changed primitives.
# ---- bivariate rolling window: meta = [pos, count, ax, ay, sx, sy, sxx, syy, sxy] ----------------
PAIR_META = 9


@njit(cache=True, nogil=True)
def pair_push(bx: np.ndarray, by: np.ndarray, meta: np.ndarray, x: float, y: float) -> None:
    n = bx.shape[0]
    pos = int(meta[0])
    count = int(meta[1])
    ax = meta[2]
    ay = meta[3]
    if count == n:
        ox = bx[pos] - ax
        oy = by[pos] - ay
        meta[4] -= ox
        meta[5] -= oy
        meta[6] -= ox * ox
        meta[7] -= oy * oy
        meta[8] -= ox * oy
    else:
        count += 1
    bx[pos] = x
    by[pos] = y
    dx = x - ax
    dy = y - ay
    meta[4] += dx
    meta[5] += dy
    meta[6] += dx * dx
    meta[7] += dy * dy
    meta[8] += dx * dy
    pos += 1
    if pos == n:
        pos = 0
        ax = x
        ay = y
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        syy = 0.0
        sxy = 0.0
        for i in range(count):
            ex = bx[i] - ax
            ey = by[i] - ay
            sx += ex
            sy += ey
            sxx += ex * ex
            syy += ey * ey
            sxy += ex * ey
        meta[2] = ax
        meta[3] = ay
        meta[4] = sx
        meta[5] = sy
        meta[6] = sxx
        meta[7] = syy
        meta[8] = sxy
    meta[0] = pos
    meta[1] = count


@njit(cache=True, nogil=True)
def pair_correlation(meta: np.ndarray) -> float:
    """Pearson correlation of the window (NaN when a side has zero variance)."""
    count = meta[1]
    if count < 2:
        return math.nan
    mx = meta[4] / count
    my = meta[5] / count
    vx = meta[6] / count - mx * mx
    vy = meta[7] / count - my * my
    if vx <= 0.0 or vy <= 0.0:
        return math.nan
    return float((meta[8] / count - mx * my) / math.sqrt(vx * vy))


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

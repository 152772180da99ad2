"""Robust rolling normalisation (R-FE-3): (x − rolling median)/(1.4826·rolling MAD), or rolling rank.

Both look only backwards: the window holds the last `window` values of each column, the current one
included. Each column keeps a ring (arrival order) and a sorted copy (binary-search insert and delete),
so a median is O(1), a MAD and a rank O(log window) plus the shift of the values between the
leaving and the entering one — compiled, one code path for
streaming (`RollingNormaliser.update`, once per sampled row) and batch (`normalise_frame`).

Conventions: NaN inputs are not pushed and give NaN; outputs are NaN until `min_periods` values were
seen; results are clipped to ±`clip` (a MAD of 0 gives 0 at the median and ±clip elsewhere).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import polars as pl
from numba import njit

from kestrel.core.errors import ConfigurationError

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution is 0.6745σ
Method = Literal["median_mad", "rank", "none"]
_METHODS = {"median_mad": 0, "rank": 1}


@njit(cache=True, nogil=True)
def _search(sorted_values: np.ndarray, count: int, x: float) -> int:
    """First index in sorted_values[:count] whose value is >= x."""
    low = 0
    high = count
    while low < high:
        middle = (low + high) // 2
        if sorted_values[middle] < x:
            low = middle + 1
        else:
            high = middle
    return low


@njit(cache=True, nogil=True)
def _upper(sorted_values: np.ndarray, count: int, x: float) -> int:
    """First index in sorted_values[:count] whose value is > x."""
    low = 0
    high = count
    while low < high:
        middle = (low + high) // 2
        if sorted_values[middle] <= x:
            low = middle + 1
        else:
            high = middle
    return low


@njit(cache=True, nogil=True)
def _median(sorted_values: np.ndarray, count: int) -> float:
    half = count // 2
    if count % 2:
        return float(sorted_values[half])
    return float(0.5 * (sorted_values[half - 1] + sorted_values[half]))


@njit(cache=True, nogil=True)
def _kth_distance(sorted_values: np.ndarray, count: int, centre: float, k: int) -> float:
    """The k-th smallest (0-based) of |v − centre| over the window in O(log n).

    The distances form two ascending runs: A[i] = centre − v[left − i] (values below the centre, walking
    down) and B[j] = v[right + j] − centre. Binary search for how many of the k+1 smallest come from A."""
    right = _search(sorted_values, count, centre)
    left = right - 1
    size_a = left + 1
    size_b = count - right
    low = max(0, k + 1 - size_b)
    high = min(k + 1, size_a)
    while low < high:
        taken = (low + high) // 2
        other = k + 1 - taken
        if centre - sorted_values[left - taken] < sorted_values[right + other - 1] - centre:
            low = taken + 1
        else:
            high = taken
    taken = low
    other = k + 1 - taken
    value = -math.inf
    if taken > 0:
        value = centre - sorted_values[left - taken + 1]
    if other > 0:
        value = max(value, sorted_values[right + other - 1] - centre)
    return value


@njit(cache=True, nogil=True)
def _mad(sorted_values: np.ndarray, count: int, centre: float) -> float:
    half = count // 2
    if count % 2:
        return _kth_distance(sorted_values, count, centre, half)
    return 0.5 * (
        _kth_distance(sorted_values, count, centre, half - 1) + _kth_distance(sorted_values, count, centre, half)
    )


@njit(cache=True, nogil=True)
def _replace_sorted(row: np.ndarray, count: int, old: float, value: float) -> None:
    """Swap `old` for `value` in the full sorted row, shifting only the values between the two."""
    removed = _search(row, count, old)
    target = _search(row, count, value)
    if target <= removed:
        for i in range(removed, target, -1):
            row[i] = row[i - 1]
        row[target] = value
    else:
        for i in range(removed, target - 1):
            row[i] = row[i + 1]
        row[target - 1] = value


@njit(cache=True, nogil=True)
def _normalise_step(
    ring: np.ndarray,
    sorted_values: np.ndarray,
    meta: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
    method: int,
    min_periods: int,
    clip: float,
) -> None:
    window = ring.shape[1]
    for f in range(x.shape[0]):
        value = x[f]
        if math.isnan(value):
            out[f] = math.nan
            continue
        pos = int(meta[f, 0])
        count = int(meta[f, 1])
        row = sorted_values[f]
        if count == window:  # the oldest value leaves as the new one enters
            _replace_sorted(row, count, ring[f, pos], value)
        else:
            index = _search(row, count, value)
            for i in range(count, index, -1):
                row[i] = row[i - 1]
            row[index] = value
            count += 1
        ring[f, pos] = value
        meta[f, 0] = (pos + 1) % window
        meta[f, 1] = count
        if count < min_periods:
            out[f] = math.nan
        elif method == 1:
            out[f] = _upper(row, count, value) / count
        else:
            centre = _median(row, count)
            spread = _mad(row, count, centre) * 1.4826
            if spread > 0.0:
                scaled = (value - centre) / spread
            elif value == centre:
                scaled = 0.0
            else:
                scaled = clip if value > centre else -clip
            out[f] = min(clip, max(-clip, scaled))


@njit(cache=True, nogil=True)
def _normalise_batch(
    ring: np.ndarray,
    sorted_values: np.ndarray,
    meta: np.ndarray,
    values: np.ndarray,
    out: np.ndarray,
    method: int,
    min_periods: int,
    clip: float,
) -> None:
    for i in range(values.shape[0]):
        _normalise_step(ring, sorted_values, meta, values[i], out[i], method, min_periods, clip)


class RollingNormaliser:
    """Streaming normaliser of a fixed set of columns: `update(row)` once per sampled row."""

    def __init__(
        self,
        columns: int,
        window: int,
        method: Method = "median_mad",
        min_periods: int | None = None,
        clip: float = 10.0,
    ) -> None:
        if window < 2:
            raise ConfigurationError(f"normaliser: window must be >= 2 (got {window})")
        if method not in _METHODS and method != "none":
            raise ConfigurationError(f"normaliser: unknown method {method!r} (median_mad, rank or none)")
        self.method = method
        self.window = window
        self.min_periods = min_periods if min_periods is not None else max(2, window // 4)
        self.clip = clip
        self._ring = np.zeros((columns, window))
        self._sorted = np.zeros((columns, window))
        self._meta = np.zeros((columns, 2))
        self._out = np.full(columns, math.nan)

    def update(self, row: np.ndarray) -> np.ndarray:
        """Normalised copy of `row` (float64, one value per column); the result array is reused."""
        if self.method == "none":
            self._out[:] = row
            return self._out
        _normalise_step(
            self._ring,
            self._sorted,
            self._meta,
            np.ascontiguousarray(row, dtype=np.float64),
            self._out,
            _METHODS[self.method],
            self.min_periods,
            self.clip,
        )
        return self._out

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Normalise a (rows × columns) matrix in row order, continuing this normaliser's state."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        if self.method == "none":
            return values.copy()
        out = np.full(values.shape, math.nan)
        _normalise_batch(
            self._ring,
            self._sorted,
            self._meta,
            values,
            out,
            _METHODS[self.method],
            self.min_periods,
            self.clip,
        )
        return out


def normalise_frame(
    frame: pl.DataFrame,
    columns: list[str],
    window: int,
    method: Method = "median_mad",
    min_periods: int | None = None,
    clip: float = 10.0,
) -> pl.DataFrame:
    """`frame` with `columns` replaced by their rolling-normalised values (rows in time order)."""
    if method == "none" or not columns:
        return frame
    normaliser = RollingNormaliser(len(columns), window, method, min_periods, clip)
    values = frame.select(columns).cast(pl.Float64).fill_null(math.nan).to_numpy()
    out = normaliser.transform(values)
    return frame.with_columns([pl.Series(name, out[:, index]) for index, name in enumerate(columns)])

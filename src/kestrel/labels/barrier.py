"""Labels on bars (R-LB-1): triple barrier with ATR-scaled barriers, and forward K-step returns.

Decision time of sample i is the close of bar i (when its features are known); the entry price is that
close. Labels look forward by design — they are targets — and each sample records the time its label
stops looking (`label_end_ns`), which the purged splitters use to keep training away from test labels.

Triple barrier, for horizon H bars: upper = close_i + up·ATR_i, lower = close_i − down·ATR_i. The first
bar j in i+1..i+H whose high reaches the upper or whose low reaches the lower barrier ends the trade:
label +1 (upper) or −1 (lower); nothing by i+H gives the vertical barrier, label 0. When one bar touches
both, the order inside the bar is unknown and we assume the adverse one (−1) and flag it: a research
label must never be optimistic. peak_return is the best high over the trade's life (entry to exit) as a
simple return, time_to_peak its distance from entry in bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from kestrel.core.errors import ConfigurationError, DataError


@dataclass(frozen=True, slots=True)
class BarrierSpec:
    horizon_bars: int = 24
    upper_atr: float = 2.0
    lower_atr: float = 2.0
    forward_bars: int = 24

    def __post_init__(self) -> None:
        if self.horizon_bars < 1 or self.forward_bars < 1:
            raise ConfigurationError("labels: horizon_bars and forward_bars must be >= 1")
        if self.upper_atr <= 0 or self.lower_atr <= 0:
            raise ConfigurationError("labels: upper_atr and lower_atr must be > 0")


@njit(cache=True, nogil=True)
def _triple_barrier(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    atr: np.ndarray,
    horizon: int,
    upper_atr: float,
    lower_atr: float,
    label: np.ndarray,
    exit_index: np.ndarray,
    exit_return: np.ndarray,
    peak_return: np.ndarray,
    time_to_peak: np.ndarray,
    ambiguous: np.ndarray,
) -> None:
    n = close.shape[0]
    for i in range(n):
        label[i] = math.nan
        exit_index[i] = -1
        exit_return[i] = math.nan
        peak_return[i] = math.nan
        time_to_peak[i] = math.nan
        ambiguous[i] = False
        if i + horizon >= n or math.isnan(atr[i]) or atr[i] <= 0.0:
            continue
        entry = close[i]
        upper = entry + upper_atr * atr[i]
        lower = entry - lower_atr * atr[i]
        best = -math.inf
        best_at = 0
        outcome = 0.0
        end = i + horizon
        for j in range(i + 1, i + horizon + 1):
            hit_upper = high[j] >= upper
            hit_lower = low[j] <= lower
            if high[j] > best:
                best = high[j]
                best_at = j
            if hit_upper and hit_lower:
                ambiguous[i] = True
                outcome = -1.0
                end = j
                break
            if hit_upper:
                outcome = 1.0
                end = j
                break
            if hit_lower:
                outcome = -1.0
                end = j
                break
        label[i] = outcome
        exit_index[i] = end
        if outcome > 0.0:
            exit_return[i] = upper / entry - 1.0
        elif outcome < 0.0:
            exit_return[i] = lower / entry - 1.0
        else:
            exit_return[i] = close[end] / entry - 1.0
        peak_return[i] = best / entry - 1.0
        time_to_peak[i] = best_at - i


def triple_barrier_labels(bars: pl.DataFrame, atr: np.ndarray, spec: BarrierSpec, interval_s: int) -> pl.DataFrame:
    """Triple-barrier and forward-return labels (gross) for every bar of one symbol.

    `bars` has open_time_ns, high, low, close; `atr` the ATR known at each bar's close. Columns:
    ts (decision time = bar close), tb_label, tb_return, peak_return, time_to_peak_bars, tb_ambiguous,
    fwd_return (close_{i+K}/close_i − 1), label_end_ns (close time of the last bar any label looked at).
    Samples whose horizon runs past the data have null labels.
    """
    if atr.shape[0] != bars.height:
        raise DataError("labels: ATR length differs from the bars")
    interval_ns = interval_s * 1_000_000_000
    high = np.ascontiguousarray(bars["high"].cast(pl.Float64).to_numpy())
    low = np.ascontiguousarray(bars["low"].cast(pl.Float64).to_numpy())
    close = np.ascontiguousarray(bars["close"].cast(pl.Float64).to_numpy())
    n = close.shape[0]
    label = np.empty(n)
    exit_index = np.empty(n, dtype=np.int64)
    exit_return = np.empty(n)
    peak_return = np.empty(n)
    time_to_peak = np.empty(n)
    ambiguous = np.empty(n, dtype=np.bool_)
    _triple_barrier(
        high,
        low,
        close,
        np.ascontiguousarray(atr, dtype=np.float64),
        spec.horizon_bars,
        spec.upper_atr,
        spec.lower_atr,
        label,
        exit_index,
        exit_return,
        peak_return,
        time_to_peak,
        ambiguous,
    )
    k = spec.forward_bars
    forward = np.full(n, math.nan)
    if n > k:
        forward[: n - k] = close[k:] / close[: n - k] - 1.0
    open_time = bars["open_time_ns"].cast(pl.Int64).to_numpy()
    close_time = open_time + interval_ns
    index = np.arange(n)
    last_index = np.maximum(np.where(exit_index >= 0, exit_index, index + spec.horizon_bars), index + k)
    valid = (exit_index >= 0) & (index + k < n)
    label_end = np.where(valid, close_time[np.minimum(last_index, n - 1)], -1)
    frame = pl.DataFrame(
        {
            "ts": close_time,
            "tb_label": label,
            "tb_return": exit_return,
            "peak_return": peak_return,
            "time_to_peak_bars": time_to_peak,
            "tb_ambiguous": ambiguous,
            "fwd_return": forward,
            "label_end_ns": label_end,
        }
    )
    return frame.with_columns(
        [
            pl.when(pl.lit(pl.Series(valid))).then(pl.col(name)).otherwise(None).alias(name)
            for name in ("tb_label", "tb_return", "peak_return", "time_to_peak_bars", "fwd_return", "label_end_ns")
        ]
    )

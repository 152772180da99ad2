"""Compiled primitives shared by every feature: rolling windows, Wilder and EMA smoothing, ranks.

Each primitive keeps its whole state in small float64 arrays owned by the caller, so one compiled
function serves the streaming path (called once per event from Python) and the batch path (called in a
compiled loop over a column) — the same arithmetic in the same order, hence identical numbers.

Numerics: rolling sums are kept relative to an anchor (the newest value when the ring last wrapped) and
recomputed from the ring every `n` pushes. That keeps O(1) amortised updates while avoiding both the
catastrophic cancellation of raw Σx² on price levels and the drift of add/subtract running sums.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ---- univariate rolling window: meta = [pos, count, anchor, s1, s2] -------------------------------
MOMENTS_META = 5


@njit(cache=True, nogil=True)
def moments_push(buffer: np.ndarray, meta: np.ndarray, x: float) -> None:
    """Push `x` into a rolling window of len(buffer) values (population moments)."""
    n = buffer.shape[0]
    pos = int(meta[0])
    count = int(meta[1])
    anchor = meta[2]
    if count == n:
        old = buffer[pos] - anchor
        meta[3] -= old
        meta[4] -= old * old
    else:
        count += 1
    buffer[pos] = x
    d = x - anchor
    meta[3] += d
    meta[4] += d * d
    pos += 1
    if pos == n:
        pos = 0
        # re-anchor on the newest value and recompute: bounded error, O(1) amortised
        anchor = x
        s1 = 0.0
        s2 = 0.0
        for i in range(count):
            e = buffer[i] - anchor
            s1 += e
            s2 += e * e
        meta[2] = anchor
        meta[3] = s1
        meta[4] = s2
    meta[0] = pos
    meta[1] = count


@njit(cache=True, nogil=True)
def moments_full(buffer: np.ndarray, meta: np.ndarray) -> bool:
    return bool(int(meta[1]) == buffer.shape[0])


@njit(cache=True, nogil=True)
def moments_mean(meta: np.ndarray) -> float:
    count = meta[1]
    return float(meta[2] + meta[3] / count) if count > 0 else math.nan


@njit(cache=True, nogil=True)
def moments_std(meta: np.ndarray) -> float:
    """Population standard deviation (ddof 0, as TA-Lib's STDDEV)."""
    count = meta[1]
    if count <= 0:
        return math.nan
    m = meta[3] / count
    var = meta[4] / count - m * m
    return math.sqrt(var) if var > 0.0 else 0.0


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


# ---- Wilder smoothing (ATR): meta = [count, sum, average] ----------------------------------------
@njit(cache=True, nogil=True)
def wilder_push(meta: np.ndarray, period: int, x: float) -> float:
    """Wilder's average as TA-Lib computes ATR: a simple mean of the first `period` values, then
    avg = (avg·(period−1) + x)/period. NaN until `period` values were seen."""
    count = int(meta[0]) + 1
    meta[0] = count
    if count < period:
        meta[1] += x
        return math.nan
    if count == period:
        meta[2] = (meta[1] + x) / period
        return float(meta[2])
    average = meta[2] * (period - 1)
    average += x
    average /= period
    meta[2] = average
    return float(average)


# ---- exponential moving average seeded by a simple mean (TA-Lib EMA): meta = [count, sum, ema] ----
@njit(cache=True, nogil=True)
def ema_push(meta: np.ndarray, period: int, x: float) -> float:
    count = int(meta[0]) + 1
    meta[0] = count
    if count < period:
        meta[1] += x
        return math.nan
    if count == period:
        meta[2] = (meta[1] + x) / period
        return float(meta[2])
    k = 2.0 / (period + 1)
    meta[2] = ((x - meta[2]) * k) + meta[2]
    return float(meta[2])


# ---- ring of recent values (lags, ranks, minima): meta = [pos, count] ------------------------------
@njit(cache=True, nogil=True)
def ring_push(buffer: np.ndarray, meta: np.ndarray, x: float) -> None:
    n = buffer.shape[0]
    pos = int(meta[0])
    buffer[pos] = x
    meta[0] = (pos + 1) % n
    if meta[1] < n:
        meta[1] += 1


@njit(cache=True, nogil=True)
def ring_lag(buffer: np.ndarray, meta: np.ndarray, lag: int) -> float:
    """The value pushed `lag` pushes ago (0 = newest); NaN when not yet seen."""
    n = buffer.shape[0]
    if lag >= meta[1] or lag >= n:
        return math.nan
    return float(buffer[(int(meta[0]) - 1 - lag) % n])


@njit(cache=True, nogil=True)
def ring_rank_pct(buffer: np.ndarray, meta: np.ndarray, x: float) -> float:
    """Fraction of the full window's values that are ≤ x (NaN until the window is full).

    Equals pandas' ``rolling(n).rank(pct=True, method="max")`` when x is the newest value."""
    n = buffer.shape[0]
    if meta[1] < n or math.isnan(x):
        return math.nan
    below = 0
    for i in range(n):
        if buffer[i] <= x:
            below += 1
    return float(below / n)


@njit(cache=True, nogil=True)
def ring_min(buffer: np.ndarray, meta: np.ndarray) -> float:
    count = int(meta[1])
    if count == 0:
        return math.nan
    smallest = math.inf
    for i in range(count):
        smallest = min(smallest, buffer[i])
    return smallest


# ---- exponential decay in time (stacked microstructure windows) -----------------------------------
@njit(cache=True, nogil=True)
def decay_factor(dt_ns: float, tau_ns: float) -> float:
    """Weight left on old information after dt: exp(−dt/τ); 1 when time did not move."""
    if dt_ns <= 0.0:
        return 1.0
    return math.exp(-dt_ns / tau_ns)

"""Bar features (R-FE-1): true range, Wilder ATR, log returns, annualised realised volatility, its
percentile over a lookback, rv ratio, Bollinger width and squeeze turn, EMA trend, volume ratio.

One compiled step (`_bar_step`) updates every bar feature from one closed bar. `BarFeatures` calls it per
bar (streaming: backtest and live, one call per kline); `compute_bar_features` calls it in a compiled
loop over a whole column set (batch: research). Same code, same order of operations, same numbers.

Definitions (n-bar windows; a bar's features are known at its close):
- tr = max(high − low, |high − prev_close|, |low − prev_close|); NaN on the first bar (TA-Lib TRANGE).
- atr_n: Wilder's average of tr, seeded by the mean of the first n (TA-Lib ATR); natr_n = atr_n/close.
- log_return_k = ln(close_t / close_{t−k}).
- rv_m = population std of 1-bar log returns over m bars × sqrt(bars per year) (TA-Lib STDDEV × √year).
- rv_pct_L = share of the last L values of rv_{m₀} that are ≤ the current one (m₀ the first rv window).
- rv_ratio = rv_{m₀} / rv_{m_last} (short over long volatility).
- bb_width_n = (upper − lower)/middle of Bollinger(n, k) = 2k·std/SMA (TA-Lib BBANDS, SMA, ddof 0).
- bb_squeeze_turn = 1 when the previous bar's width was the minimum of the last S widths (a squeeze)
  and the width now rises (the turn); 0 otherwise.
- trend_ema_n = (close − EMA_n)/atr (TA-Lib EMA, seeded by an SMA).
- volume_ratio_n = volume / SMA_n(volume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from kestrel.core.errors import ConfigurationError, DataError

SECONDS_PER_YEAR = 365.0 * 24 * 3600

# ---- compiled primitives --------------------------------------------------------------------------
# They live in this file, next to the step that calls them, on purpose: numba's on-disk cache is keyed
# on the file of each function, not on the functions it calls, so a primitive kept in another file
# could change while this file's cached machine code still ran the old version.
#
# Numerics: rolling sums are kept relative to an anchor (the newest value when the ring last wrapped)
# and recomputed from the ring every `n` pushes: O(1) amortised updates without the cancellation of raw
# Σx² on price levels or the drift of add/subtract running sums.

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


# layout header: parameters, then offsets into the state vector
_ATR_N, _EMA_N, _N_RETURNS, _N_RV = 0, 1, 2, 3
_O_SCALARS, _O_ATR, _O_EMA, _O_CLOSES_META, _O_CLOSES, _N_CLOSES = 4, 5, 6, 7, 8, 9
_O_PCT_META, _O_PCT, _PCT_L = 10, 11, 12
_O_BB_META, _O_BB, _BB_N = 13, 14, 15
_O_WIDTH_META, _O_WIDTH, _SQUEEZE_L = 16, 17, 18
_O_VOLUME_META, _O_VOLUME = 19, 20
_TABLES = 21  # then n_returns lags, then per rv window (window, meta offset, buffer offset)


@dataclass(frozen=True, slots=True)
class BarSpec:
    """Parameters of the bar feature set; `interval_s` is the bar length in seconds."""

    interval_s: int = 3600
    atr_period: int = 14
    return_windows: tuple[int, ...] = (1, 4, 24)
    rv_windows: tuple[int, ...] = (24, 168)
    rv_percentile_lookback: int = 720
    bollinger_period: int = 20
    bollinger_k: float = 2.0
    squeeze_lookback: int = 120
    trend_ema_period: int = 48

    def __post_init__(self) -> None:
        positive = {
            "interval_s": self.interval_s,
            "atr_period": self.atr_period,
            "rv_percentile_lookback": self.rv_percentile_lookback,
            "bollinger_period": self.bollinger_period,
            "squeeze_lookback": self.squeeze_lookback,
            "trend_ema_period": self.trend_ema_period,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigurationError(f"bar features: {name} must be >= 1 (got {value})")
        if not self.return_windows or min(self.return_windows) < 1:
            raise ConfigurationError("bar features: return_windows must be a non-empty list of bar counts >= 1")
        if len(self.rv_windows) < 2 or min(self.rv_windows) < 2:
            raise ConfigurationError("bar features: rv_windows needs at least two windows of >= 2 bars")
        if self.bollinger_k <= 0:
            raise ConfigurationError("bar features: bollinger_k must be > 0")

    @property
    def bars_per_year(self) -> float:
        return SECONDS_PER_YEAR / self.interval_s

    @property
    def names(self) -> tuple[str, ...]:
        n = self.atr_period
        return (
            "tr",
            f"atr_{n}",
            f"natr_{n}",
            *(f"log_return_{k}" for k in self.return_windows),
            *(f"rv_{m}" for m in self.rv_windows),
            f"rv_pct_{self.rv_percentile_lookback}",
            "rv_ratio",
            f"bb_width_{self.bollinger_period}",
            "bb_squeeze_turn",
            f"trend_ema_{self.trend_ema_period}",
            f"volume_ratio_{self.bollinger_period}",
        )

    @property
    def warmup_bars(self) -> int:
        """Bars before every feature is defined."""
        return 1 + max(
            self.atr_period,
            max(self.return_windows),
            max(self.rv_windows) + 1,
            self.rv_windows[0] + self.rv_percentile_lookback,
            self.bollinger_period + self.squeeze_lookback,
            self.trend_ema_period,
        )


def _layout(spec: BarSpec) -> tuple[np.ndarray, np.ndarray]:
    """The integer layout (parameters and offsets) and a fresh state vector for `spec`."""
    header = np.zeros(_TABLES, dtype=np.int64)
    tables: list[int] = list(spec.return_windows)
    size = 0

    def take(length: int) -> int:
        nonlocal size
        offset = size
        size += length
        return offset

    header[_ATR_N] = spec.atr_period
    header[_EMA_N] = spec.trend_ema_period
    header[_N_RETURNS] = len(spec.return_windows)
    header[_N_RV] = len(spec.rv_windows)
    header[_O_SCALARS] = take(2)  # previous close, previous bb width
    header[_O_ATR] = take(3)
    header[_O_EMA] = take(3)
    header[_N_CLOSES] = max(spec.return_windows) + 1
    header[_O_CLOSES_META] = take(2)
    header[_O_CLOSES] = take(int(header[_N_CLOSES]))
    header[_PCT_L] = spec.rv_percentile_lookback
    header[_O_PCT_META] = take(2)
    header[_O_PCT] = take(spec.rv_percentile_lookback)
    header[_BB_N] = spec.bollinger_period
    header[_O_BB_META] = take(MOMENTS_META)
    header[_O_BB] = take(spec.bollinger_period)
    header[_SQUEEZE_L] = spec.squeeze_lookback
    header[_O_WIDTH_META] = take(2)
    header[_O_WIDTH] = take(spec.squeeze_lookback)
    header[_O_VOLUME_META] = take(MOMENTS_META)
    header[_O_VOLUME] = take(spec.bollinger_period)
    for window in spec.rv_windows:
        tables.extend((window, take(MOMENTS_META), take(window)))
    state = np.zeros(size, dtype=np.float64)
    state[header[_O_SCALARS] : header[_O_SCALARS] + 2] = math.nan
    layout = np.concatenate([header, np.asarray(tables, dtype=np.int64)])
    return layout, state


@njit(cache=True, nogil=True)
def _bar_step(
    state: np.ndarray,
    layout: np.ndarray,
    params: np.ndarray,
    high: float,
    low: float,
    close: float,
    volume: float,
    out: np.ndarray,
) -> None:
    bollinger_k = params[0]
    annualise = params[1]
    scalars = state[layout[_O_SCALARS] : layout[_O_SCALARS] + 2]
    previous_close = scalars[0]
    # true range and Wilder ATR
    if math.isnan(previous_close):
        tr = math.nan
    else:
        tr = max(high - low, abs(previous_close - high), abs(previous_close - low))
    atr_meta = state[layout[_O_ATR] : layout[_O_ATR] + 3]
    atr = atr_meta[2] if atr_meta[0] >= layout[_ATR_N] else math.nan
    if not math.isnan(tr):
        atr = wilder_push(atr_meta, layout[_ATR_N], tr)
    out[0] = tr
    out[1] = atr
    out[2] = atr / close
    column = 3
    # log returns over k bars
    closes_meta = state[layout[_O_CLOSES_META] : layout[_O_CLOSES_META] + 2]
    closes = state[layout[_O_CLOSES] : layout[_O_CLOSES] + layout[_N_CLOSES]]
    ring_push(closes, closes_meta, close)
    for i in range(layout[_N_RETURNS]):
        out[column] = math.log(close / ring_lag(closes, closes_meta, layout[_TABLES + i]))
        column += 1
    # realised volatility of 1-bar log returns
    one_bar = math.log(close / previous_close) if not math.isnan(previous_close) else math.nan
    table = _TABLES + layout[_N_RETURNS]
    rv_first = math.nan
    rv_last = math.nan
    for j in range(layout[_N_RV]):
        window = layout[table + 3 * j]
        meta = state[layout[table + 3 * j + 1] : layout[table + 3 * j + 1] + MOMENTS_META]
        buffer = state[layout[table + 3 * j + 2] : layout[table + 3 * j + 2] + window]
        if not math.isnan(one_bar):
            moments_push(buffer, meta, one_bar)
        rv = moments_std(meta) * annualise if moments_full(buffer, meta) else math.nan
        out[column] = rv
        column += 1
        if j == 0:
            rv_first = rv
        rv_last = rv
    # percentile of the short rv over the lookback (current value included)
    pct_meta = state[layout[_O_PCT_META] : layout[_O_PCT_META] + 2]
    pct = state[layout[_O_PCT] : layout[_O_PCT] + layout[_PCT_L]]
    if not math.isnan(rv_first):
        ring_push(pct, pct_meta, rv_first)
    out[column] = ring_rank_pct(pct, pct_meta, rv_first)
    out[column + 1] = rv_first / rv_last
    column += 2
    # Bollinger width and squeeze turn
    bb_meta = state[layout[_O_BB_META] : layout[_O_BB_META] + MOMENTS_META]
    bb = state[layout[_O_BB] : layout[_O_BB] + layout[_BB_N]]
    moments_push(bb, bb_meta, close)
    width = math.nan
    if moments_full(bb, bb_meta):
        width = 2.0 * bollinger_k * moments_std(bb_meta) / moments_mean(bb_meta)
    out[column] = width
    width_meta = state[layout[_O_WIDTH_META] : layout[_O_WIDTH_META] + 2]
    widths = state[layout[_O_WIDTH] : layout[_O_WIDTH] + layout[_SQUEEZE_L]]
    turn = math.nan
    if not math.isnan(width):
        if width_meta[1] == layout[_SQUEEZE_L]:
            previous_width = scalars[1]
            squeezed = previous_width <= ring_min(widths, width_meta)
            turn = 1.0 if squeezed and width > previous_width else 0.0
        ring_push(widths, width_meta, width)
        scalars[1] = width
    out[column + 1] = turn
    column += 2
    # EMA trend in ATR units
    ema = ema_push(state[layout[_O_EMA] : layout[_O_EMA] + 3], layout[_EMA_N], close)
    out[column] = (close - ema) / atr
    # volume relative to its SMA
    volume_meta = state[layout[_O_VOLUME_META] : layout[_O_VOLUME_META] + MOMENTS_META]
    volumes = state[layout[_O_VOLUME] : layout[_O_VOLUME] + layout[_BB_N]]
    moments_push(volumes, volume_meta, volume)
    mean_volume = moments_mean(volume_meta) if moments_full(volumes, volume_meta) else math.nan
    out[column + 1] = volume / mean_volume if mean_volume > 0.0 else math.nan
    scalars[0] = close


@njit(cache=True, nogil=True)
def _bar_batch(
    state: np.ndarray,
    layout: np.ndarray,
    params: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    out: np.ndarray,
) -> None:
    for i in range(close.shape[0]):
        _bar_step(state, layout, params, high[i], low[i], close[i], volume[i], out[i])


def _params(spec: BarSpec) -> np.ndarray:
    return np.array([spec.bollinger_k, math.sqrt(spec.bars_per_year)], dtype=np.float64)


class BarFeatures:
    """Streaming bar features of one symbol: `update` once per closed bar, O(1) per bar except the
    rv percentile and squeeze minimum (O(L) over their lookbacks, on compiled arrays)."""

    def __init__(self, spec: BarSpec) -> None:
        self.spec = spec
        self.names = spec.names
        self._layout, self._state = _layout(spec)
        self._params = _params(spec)
        self._out = np.full(len(self.names), math.nan)

    def update(self, high: float, low: float, close: float, volume: float) -> np.ndarray:
        """Features after this bar closed; the returned array is reused by the next call (copy to keep)."""
        if not close > 0 or not high >= low:
            raise DataError(f"bar features: invalid bar (high={high}, low={low}, close={close})")
        _bar_step(self._state, self._layout, self._params, high, low, close, volume, self._out)
        return self._out

    def values(self) -> dict[str, float]:
        return dict(zip(self.names, self._out.tolist(), strict=True))


KLINE_COLUMNS = ("open_time_ns", "open", "high", "low", "close", "volume")


def compute_bar_features(bars: pl.DataFrame, spec: BarSpec) -> pl.DataFrame:
    """Batch bar features over a frame of consecutive bars of one symbol (columns `KLINE_COLUMNS`).

    Returns `open_time_ns`, `ts` (the bar's close time in ns: when its features become known) and one
    column per feature, equal to feeding the rows one by one to `BarFeatures`.
    """
    missing = [name for name in KLINE_COLUMNS if name not in bars.columns]
    if missing:
        raise DataError(f"bar features: missing columns {missing}")
    arrays = [bars[name].cast(pl.Float64).to_numpy() for name in ("high", "low", "close", "volume")]
    high, low, close, volume = (np.ascontiguousarray(a) for a in arrays)
    if close.size and (not np.all(close > 0) or not np.all(high >= low)):
        raise DataError("bar features: bars with close <= 0 or high < low")
    layout, state = _layout(spec)
    out = np.full((close.shape[0], len(spec.names)), math.nan)
    _bar_batch(state, layout, _params(spec), high, low, close, volume, out)
    open_time = bars["open_time_ns"].cast(pl.Int64)
    columns: dict[str, pl.Series | np.ndarray] = {
        "open_time_ns": open_time,
        "ts": open_time + spec.interval_s * 1_000_000_000,
    }
    for index, name in enumerate(spec.names):
        columns[name] = out[:, index]
    return pl.DataFrame(columns)

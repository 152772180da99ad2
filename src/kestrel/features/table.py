"""Feature tables over bar series: bar features, cross-asset correlation, funding (batch path).

The table of one symbol has `ts` (the bar close: when the row's features become known), `open_time_ns`
and one column per feature. Funding features use only rates settled strictly before `ts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from kestrel.config.models import KestrelConfig
from kestrel.core.errors import DataError
from kestrel.features.bars import BarSpec, compute_bar_features
from kestrel.features.cross import aligned_return_correlation
from kestrel.features.normalise import Method, normalise_frame

CORRELATION_PREFIX = "corr_ref_"
FUNDING_FEATURES = ("funding_rate", "funding_delta")
# Features that are already ranks, bounded, binary or rates with a long flat base (MAD 0): rolling
# normalisation would only blur them.
NOT_NORMALISED_PREFIXES = ("rv_pct_", CORRELATION_PREFIX, "bb_squeeze_turn", "funding_")


@dataclass(frozen=True, slots=True)
class SymbolBars:
    symbol: str
    bars: pl.DataFrame  # open_time_ns, open, high, low, close, volume
    funding: pl.DataFrame | None  # ts, funding_rate


def bar_spec_from_config(config: KestrelConfig, interval_s: int) -> BarSpec:
    bars = config.research.bars
    return BarSpec(
        interval_s=interval_s,
        atr_period=config.feature.atr_period,
        return_windows=tuple(bars.return_windows),
        rv_windows=tuple(bars.rv_windows),
        rv_percentile_lookback=bars.rv_percentile_lookback,
        bollinger_period=bars.bollinger_period,
        bollinger_k=bars.bollinger_k,
        squeeze_lookback=bars.squeeze_lookback,
        trend_ema_period=bars.trend_ema_period,
    )


def funding_features(decision_ns: np.ndarray, funding: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """(last settled rate, its change from the settlement before: Δf) known strictly before each time."""
    n = decision_ns.shape[0]
    if funding is None or funding.height == 0:
        return np.full(n, math.nan), np.full(n, math.nan)
    times = funding["ts"].cast(pl.Int64).to_numpy()
    rates = funding["funding_rate"].cast(pl.Float64).to_numpy()
    last = np.searchsorted(times, decision_ns, side="left") - 1
    rate = np.where(last >= 0, rates[np.maximum(last, 0)], math.nan)
    previous = np.where(last >= 1, rates[np.maximum(last - 1, 0)], math.nan)
    return rate, rate - previous


def model_feature_names(spec: BarSpec, correlation_window: int | None, with_funding: bool) -> list[str]:
    """Features a model sees: scale-free ones (tr and atr are in price units and drift with the level)."""
    excluded = {"tr", f"atr_{spec.atr_period}"}
    names = [name for name in spec.names if name not in excluded]
    if correlation_window is not None:
        names.append(f"{CORRELATION_PREFIX}{correlation_window}")
    if with_funding:
        names.extend(FUNDING_FEATURES)
    return names


def kline_feature_tables(series: list[SymbolBars], spec: BarSpec, correlation_window: int) -> dict[str, pl.DataFrame]:
    """Feature table per symbol. The first symbol is the reference asset: every other symbol gets its
    return correlation with it; the reference gets its correlation with the second symbol."""
    if not series:
        raise DataError("feature tables: no bar series")
    tables: dict[str, pl.DataFrame] = {}
    for position, item in enumerate(series):
        frame = compute_bar_features(item.bars, spec)
        if len(series) > 1:
            partner = series[1] if position == 0 else series[0]
            corr = aligned_return_correlation(item.bars, partner.bars, correlation_window)
            frame = frame.with_columns(corr.alias(f"{CORRELATION_PREFIX}{correlation_window}"))
        rate, delta = funding_features(frame["ts"].to_numpy(), item.funding)
        if item.funding is not None:
            frame = frame.with_columns(pl.Series("funding_rate", rate), pl.Series("funding_delta", delta))
        tables[item.symbol] = frame.with_columns(pl.lit(item.symbol).alias("symbol"))
    return tables


def truncate(series: list[SymbolBars], until_ns: int | None, interval_s: int) -> list[SymbolBars]:
    """The inputs as they were known at `until_ns`: bars closed by then, funding settled by then."""
    if until_ns is None:
        return series
    interval_ns = interval_s * 1_000_000_000
    return [
        SymbolBars(
            item.symbol,
            item.bars.filter(pl.col("open_time_ns") + interval_ns <= until_ns),
            item.funding.filter(pl.col("ts") <= until_ns) if item.funding is not None else None,
        )
        for item in series
    ]


def model_feature_table(
    series: list[SymbolBars],
    spec: BarSpec,
    correlation_window: int,
    normalisation: Method,
    normalisation_window: int,
) -> tuple[pl.DataFrame, list[str]]:
    """Every symbol's model features (normalised where it applies) plus the raw columns the regimes
    and labels need, in time order; and the list of model feature names."""
    tables = kline_feature_tables(series, spec, correlation_window)
    with_funding = any(item.funding is not None for item in series)
    names = model_feature_names(spec, correlation_window if len(series) > 1 else None, with_funding)
    frames = []
    for item in series:
        table = tables[item.symbol]
        for name in names:
            if name not in table.columns:
                table = table.with_columns(pl.lit(math.nan, dtype=pl.Float64).alias(name))
        raw = table.select(
            pl.col(f"atr_{spec.atr_period}").alias("raw_atr"),
            pl.col(f"rv_pct_{spec.rv_percentile_lookback}").alias("raw_rv_pct"),
            pl.col(f"trend_ema_{spec.trend_ema_period}").alias("raw_trend"),
        )
        normalised = [name for name in names if not name.startswith(NOT_NORMALISED_PREFIXES)]
        table = normalise_frame(table, normalised, normalisation_window, normalisation)
        frames.append(pl.concat([table, raw], how="horizontal"))
    combined = pl.concat(frames, how="diagonal_relaxed").sort(["ts", "symbol"], maintain_order=True)
    return combined, names


PluginFeatures = Callable[[pl.DataFrame], pl.DataFrame]


def kline_feature_computation(
    series: list[SymbolBars],
    spec: BarSpec,
    correlation_window: int,
    normalisation: Method,
    normalisation_window: int,
    plugin: PluginFeatures | None = None,
) -> Callable[[int | None], pl.DataFrame]:
    """The feature table as a function of the time the inputs are cut at (for the lookahead checker).

    `plugin(bars) -> frame` adds user features per symbol: same row count as `bars`, one column each."""

    def compute(until_ns: int | None) -> pl.DataFrame:
        known = truncate(series, until_ns, spec.interval_s)
        table, _ = model_feature_table(known, spec, correlation_window, normalisation, normalisation_window)
        if plugin is None:
            return table
        extras = []
        for item in known:
            extra = plugin(item.bars)
            if not isinstance(extra, pl.DataFrame) or extra.height != item.bars.height:
                raise DataError("feature plugin: must return a polars DataFrame with one row per bar")
            ts = item.bars["open_time_ns"] + spec.interval_s * 1_000_000_000
            extras.append(extra.with_columns(ts.alias("ts"), pl.lit(item.symbol).alias("symbol")))
        return table.join(pl.concat(extras, how="diagonal_relaxed"), on=["ts", "symbol"], how="left")

    return compute

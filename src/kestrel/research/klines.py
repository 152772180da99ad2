"""From bar files to a model-ready `Dataset`: features → labels net of costs → normalisation → regimes.

Everything here is causal except the labels (targets look forward on purpose and carry their end time).
Rows are dropped only for warm-up (a feature not yet defined) or a label that runs past the data.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from kestrel.config.models import KestrelConfig
from kestrel.core.errors import DataError
from kestrel.features.bars import BarSpec
from kestrel.features.io import load_funding, load_klines, resolve_data_path
from kestrel.features.resample import find_gaps
from kestrel.features.table import SymbolBars, bar_spec_from_config, model_feature_table
from kestrel.labels.barrier import BarrierSpec
from kestrel.labels.build import build_bar_labels
from kestrel.labels.costs import CostModel
from kestrel.labels.slippage import SlippageFit
from kestrel.research.dataset import Dataset


def _day_ns(day: date | None) -> int | None:
    if day is None:
        return None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class KlineData:
    """Loaded inputs and their lineage (what a run records as its data slice)."""

    series: list[SymbolBars]
    interval_s: int
    lineage: list[dict[str, object]] = field(default_factory=list)


def load_kline_data(config: KestrelConfig) -> KlineData:
    research = config.research
    start_ns, end_ns = _day_ns(research.data.start), _day_ns(research.data.end)
    series: list[SymbolBars] = []
    intervals: set[int] = set()
    lineage: list[dict[str, object]] = []
    for source in research.data.klines:
        bars, interval_s = load_klines(source.path, start_ns=start_ns, end_ns=end_ns)
        if research.data.last_bars is not None:
            bars = bars.tail(research.data.last_bars)
        intervals.add(interval_s)
        funding = load_funding(source.funding_path) if source.funding_path else None
        record: dict[str, object] = {
            "symbol": source.symbol,
            "path": source.path,
            "sha256": file_sha256(resolve_data_path(source.path)),
            "rows": bars.height,
            "first_open_time_ns": int(bars["open_time_ns"][0]),
            "last_open_time_ns": int(bars["open_time_ns"][-1]),
            "interval_s": interval_s,
            "gaps": find_gaps(bars, interval_s).height,  # features run across holes: the run says how many
        }
        if source.funding_path:
            record["funding_path"] = source.funding_path
            record["funding_sha256"] = file_sha256(resolve_data_path(source.funding_path))
        lineage.append(record)
        series.append(SymbolBars(source.symbol, bars, funding))
    if len(intervals) != 1:
        raise DataError(f"research data: all bar series must share one interval (found {sorted(intervals)} s)")
    return KlineData(series, intervals.pop(), lineage)


def cost_model_from_config(config: KestrelConfig, slippage: SlippageFit | None = None) -> CostModel:
    """C(s,t) of the research config; with a slippage fit, its quantile at the fitted market's typical
    near-touch depth and λ (bars carry no book), else the configured constant."""
    costs = config.research.costs
    return CostModel(
        taker_fee_bps=costs.taker_fee_bps,
        maker_fee_bps=costs.maker_fee_bps,
        slippage_bps=costs.slippage_bps,
        slippage_quantile=costs.slippage_quantile,
        funding_interval_s=costs.funding_interval_s,
        slippage_model=slippage.model if slippage else None,
        default_depth_usdt=slippage.typical_depth_usdt if slippage else math.nan,
        default_kyle_lambda=slippage.typical_kyle_lambda if slippage else 0.0,
    )


def barrier_spec_from_config(config: KestrelConfig) -> BarrierSpec:
    labels = config.research.labels
    return BarrierSpec(labels.horizon_bars, labels.upper_atr, labels.lower_atr, labels.forward_bars)


def regimes_of(table: pl.DataFrame, config: KestrelConfig) -> np.ndarray:
    """flat / trend / high_vol from raw (unnormalised) features known at each row."""
    metrics = config.research.metrics
    rv_pct = table["raw_rv_pct"].fill_null(math.nan).to_numpy()
    trend = table["raw_trend"].fill_null(math.nan).to_numpy()
    with np.errstate(invalid="ignore"):
        high_vol = rv_pct >= metrics.high_vol_percentile
        trending = np.abs(trend) >= metrics.trend_atr
    return np.where(high_vol, "high_vol", np.where(trending, "trend", "flat"))


def build_kline_table(
    config: KestrelConfig, data: KlineData, slippage: SlippageFit | None = None
) -> tuple[pl.DataFrame, list[str], BarSpec]:
    """One time-ordered table of every symbol's model features, regimes and labels net of costs."""
    research = config.research
    spec = bar_spec_from_config(config, data.interval_s)
    table, names = model_feature_table(
        data.series,
        spec,
        research.bars.correlation_window,
        config.feature.normalisation,
        config.feature.normalisation_window,
    )
    table = table.with_columns(pl.Series("regime", regimes_of(table, config)))
    costs = cost_model_from_config(config, slippage)
    barrier = barrier_spec_from_config(config)
    labels = []
    for item in data.series:
        atr = table.filter(pl.col("symbol") == item.symbol)["raw_atr"].fill_null(math.nan).to_numpy()
        frame = build_bar_labels(
            item.bars, atr, data.interval_s, barrier, costs, research.costs.order_notional_usdt, item.funding
        )
        labels.append(frame.with_columns(pl.lit(item.symbol).alias("symbol")))
    combined = table.join(pl.concat(labels), on=["ts", "symbol"], how="left", maintain_order="left")
    return combined, names, spec


def dataset_from_table(table: pl.DataFrame, names: list[str], embargo_ns: int) -> Dataset:
    """Drop warm-up and unlabelled rows and make the model-ready arrays."""
    needed = [*names, "y_up", "fwd_return", "fwd_net_long", "cost", "label_end_ns"]
    clean = table.fill_nan(None).drop_nulls(subset=needed)
    if clean.height == 0:
        raise DataError("research data: no sample has every feature and a label (too few bars for the windows?)")
    features = clean.select(names).cast(pl.Float32).to_numpy()
    return Dataset(
        features=np.ascontiguousarray(features, dtype=np.float32),
        feature_names=tuple(names),
        target=clean["y_up"].to_numpy().astype(np.float64),
        forward_return=clean["fwd_return"].to_numpy().astype(np.float64),
        net_return=clean["fwd_net_long"].to_numpy().astype(np.float64),
        cost=clean["cost"].to_numpy().astype(np.float64),
        starts=clean["ts"].cast(pl.Int64).to_numpy(),
        ends=clean["label_end_ns"].cast(pl.Int64).to_numpy(),
        symbols=clean["symbol"].to_numpy().astype(str),
        regimes=clean["regime"].to_numpy().astype(str),
        embargo_ns=embargo_ns,
    )


def embargo_ns_from_config(config: KestrelConfig, interval_s: int) -> int:
    """Embargo after each test fold: configured bars, by default the label horizon H (R-LB-1)."""
    bars = config.research.cv.embargo_bars
    if bars is None:
        bars = config.research.labels.horizon_bars
    return bars * interval_s * 1_000_000_000

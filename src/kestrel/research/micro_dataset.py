"""Microstructure datasets: features on a time grid, forward mid-return labels net of costs, and the
data-quality exclusions of R-FE-4.

Samples are the grid times of `compute_micro_features`. The label of a sample at t is the mid return
from t to t + H (mids as known at each time: the last quote received), net of C(s,t) computed with the
book at t (near-touch depth on the side a long takes, Kyle's λ of the slowest window) and the fitted
slippage model when given. Samples whose timestamps were not trustworthy (latency above the limit,
|local − exchange| beyond the limit, out-of-order stream: `timestamp_ok` = 0), or without every feature,
are excluded from training.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from kestrel.core.errors import DataError
from kestrel.features import micro_kernels as kernels
from kestrel.features.micro import MicroSpec, compute_micro_features
from kestrel.labels.costs import CostModel
from kestrel.research.dataset import Dataset

# Level and scale features (prices, notionals, funding levels that are NaN on spot) are not model inputs.
EXCLUDED_FEATURES = (
    "depth_slope_bid",
    "depth_slope_ask",
    "funding_rate",
    "funding_delta",
    "mark_basis_bps",
    "oi_delta",
)


def _quotes(table: pl.DataFrame) -> pl.DataFrame:
    """(ts, mid, ask_depth_usdt) after every best-quote update, in arrival order."""
    return (
        table.filter(pl.col("kind") == kernels.KIND_TOP)
        .select(
            pl.col("ts_init").alias("ts"),
            ((pl.col("a") + pl.col("c")) / 2).alias("mid"),
            (pl.col("c") * pl.col("d")).alias("ask_depth_usdt"),
        )
        .unique(subset="ts", keep="last", maintain_order=True)
    )


def micro_dataset(
    table: pl.DataFrame,
    spec: MicroSpec,
    symbol: str,
    sample_every_ns: int,
    horizon_ns: int,
    costs: CostModel,
    order_notional_usdt: float,
) -> tuple[Dataset, pl.DataFrame]:
    """The model-ready samples of one symbol's events table, and the full sample frame (with the
    `excluded` reason of every dropped sample, for the run's record)."""
    if sample_every_ns <= 0 or horizon_ns <= 0:
        raise DataError("micro dataset: sample step and horizon must be positive")
    features = compute_micro_features(table, spec, sample_every_ns)
    quotes = _quotes(table)
    if quotes.height == 0:
        raise DataError(f"{symbol}: no best-quote updates in the events table")
    now = features.join_asof(quotes, on="ts", strategy="backward")
    ahead = now.select((pl.col("ts") + horizon_ns).alias("ts_end")).join_asof(
        quotes.select(pl.col("ts").alias("ts_end"), pl.col("mid").alias("mid_end")), on="ts_end", strategy="backward"
    )
    frame = pl.concat([now, ahead], how="horizontal").filter(pl.col("ts_end") <= quotes["ts"][-1])
    lambda_column = f"kyle_lambda_{spec.windows_ms[-1]}ms"
    holding_s = horizon_ns / 1e9
    cost = np.array(
        [
            costs.round_trip(order_notional_usdt, holding_s, math.nan, depth, 0.0 if math.isnan(kyle) else kyle).total
            for depth, kyle in frame.select(
                pl.col("ask_depth_usdt").fill_null(math.nan), pl.col(lambda_column).fill_nan(None).fill_null(math.nan)
            ).iter_rows()
        ]
    )
    forward = (frame["mid_end"] / frame["mid"] - 1.0).to_numpy()
    names = [name for name in spec.names if name not in EXCLUDED_FEATURES and name != "timestamp_ok"]
    complete = np.isfinite(frame.select(names).fill_null(math.nan).to_numpy()).all(axis=1)
    trusted = frame["timestamp_ok"].to_numpy() == 1.0
    reason = np.where(~trusted, "timestamp", np.where(~complete, "warm-up", ""))
    frame = frame.with_columns(
        pl.Series("forward_return", forward),
        pl.Series("cost", cost),
        pl.Series("excluded", reason),
    )
    keep = frame.filter(pl.col("excluded") == "")
    if keep.height == 0:
        raise DataError(f"{symbol}: no sample left after the warm-up and data-quality exclusions")
    forward_kept = keep["forward_return"].to_numpy()
    cost_kept = keep["cost"].to_numpy()
    dataset = Dataset(
        features=np.ascontiguousarray(keep.select(names).to_numpy(), dtype=np.float32),
        feature_names=tuple(names),
        target=(forward_kept > cost_kept).astype(np.float64),
        forward_return=forward_kept,
        net_return=forward_kept - cost_kept,
        cost=cost_kept,
        starts=keep["ts"].to_numpy().astype(np.int64),
        ends=keep["ts_end"].to_numpy().astype(np.int64),
        symbols=np.full(keep.height, symbol),
        regimes=np.full(keep.height, "flat"),
        embargo_ns=horizon_ns,
    )
    return dataset, frame

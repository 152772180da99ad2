"""Bars at every horizon (R-FE-5): resampling 1m → 5m / 15m / 1h / 4h / 1d, and gap detection.

Resampled bars are aligned to the epoch (UTC) and kept only when complete: a 1h bar built from 59
one-minute bars would be a different bar from the exchange's, so after an outage the horizon's bars
are rebuilt (and its rolling features recomputed by the batch path) once the missing source bars are
back-filled, instead of being computed over the hole.
"""

from __future__ import annotations

import polars as pl

from kestrel.core.errors import ConfigurationError, DataError

NANOS_PER_SECOND = 1_000_000_000


def resample_bars(bars: pl.DataFrame, source_interval_s: int, interval_s: int) -> pl.DataFrame:
    """open first, high max, low min, close last, volume sum per `interval_s` bucket; incomplete buckets
    (any source bar missing) are dropped."""
    if interval_s % source_interval_s or interval_s < source_interval_s:
        raise ConfigurationError(f"cannot build {interval_s} s bars from {source_interval_s} s bars")
    per_bucket = interval_s // source_interval_s
    size = interval_s * NANOS_PER_SECOND
    return (
        bars.sort("open_time_ns")
        .with_columns(((pl.col("open_time_ns") // size) * size).alias("bucket"))
        .group_by("bucket", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.len().alias("bars"),
        )
        .filter(pl.col("bars") == per_bucket)
        .select(pl.col("bucket").alias("open_time_ns"), "open", "high", "low", "close", "volume")
    )


def find_gaps(bars: pl.DataFrame, interval_s: int) -> pl.DataFrame:
    """Holes in a bar series: (after_ns: open time of the last bar before, missing_bars)."""
    if bars.height < 2:
        raise DataError("gap check: fewer than two bars")
    step = interval_s * NANOS_PER_SECOND
    return (
        bars.select(
            pl.col("open_time_ns").alias("after_ns"),
            ((pl.col("open_time_ns").shift(-1) - pl.col("open_time_ns")) // step - 1).alias("missing_bars"),
        )
        .drop_nulls()
        .filter(pl.col("missing_bars") > 0)
    )

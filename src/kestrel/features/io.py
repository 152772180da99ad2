"""Reading bar and funding tables for the batch path (feather, Parquet, CSV; DuckDB for SQL slices).

Every loader returns a polars frame in Kestrel's units: integer-ns times, float prices, sorted by time,
duplicates refused. Paths may start with ``shared:`` to mean the shared real-data folder
(../shared/data/binance), so configuration files stay portable between machines.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kestrel.config.paths import shared_data_dir
from kestrel.core.errors import DataError

SHARED_PREFIX = "shared:"
NANOS_PER_SECOND = 1_000_000_000


def resolve_data_path(text: str | Path) -> Path:
    """`shared:relative/path` → the shared data folder; anything else as given."""
    value = str(text)
    if value.startswith(SHARED_PREFIX):
        root = shared_data_dir()
        if root is None:
            raise DataError(f"{value}: the shared data folder (../shared/data/binance) was not found")
        return root / value[len(SHARED_PREFIX) :]
    return Path(value)


def _read_table(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in {".feather", ".arrow", ".ipc"}:
            return pl.read_ipc(path)
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix == ".csv":
            return _read_binance_csv(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    raise DataError(f"{path}: unsupported file type '{suffix}' (use .feather, .parquet or .csv)")


def _read_binance_csv(path: Path) -> pl.DataFrame:
    """data.binance.vision kline CSV (no header; open time in ms or µs) or a CSV with a header."""
    with path.open("rb") as handle:
        first = handle.readline()
    if first[:1].isdigit():
        names = ["open_time", "open", "high", "low", "close", "volume"]
        frame = pl.read_csv(path, has_header=False, columns=list(range(len(names))))
        frame = frame.rename(dict(zip(frame.columns, names, strict=True)))
        stamp = frame["open_time"].cast(pl.Int64)
        unit = 1_000 if int(stamp[0]) > 10**14 else 1_000_000  # µs (2025+) or ms
        return frame.with_columns((stamp * unit).alias("open_time_ns"))
    return pl.read_csv(path)


def _time_column_ns(frame: pl.DataFrame, path: Path) -> pl.Series:
    if "open_time_ns" in frame.columns:
        return frame["open_time_ns"].cast(pl.Int64)
    for name in ("date", "open_time", "timestamp"):
        if name not in frame.columns:
            continue
        column = frame[name]
        if column.dtype == pl.Datetime or isinstance(column.dtype, pl.Datetime):
            return column.dt.epoch("ns").cast(pl.Int64)
        if column.dtype.is_integer():
            return (column.cast(pl.Int64) * 1_000_000).alias("open_time_ns")  # ms since the epoch
    raise DataError(f"{path}: no time column (expected one of open_time_ns, date, open_time, timestamp)")


def infer_interval_s(open_time_ns: pl.Series, path: str = "bars") -> int:
    """The bar length: the most common step between consecutive open times (gaps are rarer)."""
    if open_time_ns.len() < 2:
        raise DataError(f"{path}: fewer than two bars")
    steps = open_time_ns.diff().drop_nulls()
    step = int(steps.mode().sort().to_numpy()[0])
    if step <= 0 or step % NANOS_PER_SECOND:
        raise DataError(f"{path}: irregular bar times (most common step {step} ns)")
    return step // NANOS_PER_SECOND


def load_klines(
    path: str | Path,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> tuple[pl.DataFrame, int]:
    """Bars of one symbol as (frame with open_time_ns, open, high, low, close, volume; interval in s).

    `start_ns`/`end_ns` keep bars whose open time is in [start, end). Unsorted or duplicated times are
    a DataError: features over a shuffled series would be silently wrong.
    """
    resolved = resolve_data_path(path)
    raw = _read_table(resolved)
    missing = [name for name in ("open", "high", "low", "close", "volume") if name not in raw.columns]
    if missing:
        raise DataError(f"{resolved}: missing columns {missing}")
    frame = pl.DataFrame(
        {
            "open_time_ns": _time_column_ns(raw, resolved),
            **{name: raw[name].cast(pl.Float64) for name in ("open", "high", "low", "close", "volume")},
        }
    )
    times = frame["open_time_ns"]
    if times.len() > 1:
        steps = times.diff().drop_nulls().to_numpy()
        if steps.min() <= 0:
            raise DataError(f"{resolved}: bar times are not strictly increasing")
    interval_s = infer_interval_s(times, str(resolved))
    if start_ns is not None:
        frame = frame.filter(pl.col("open_time_ns") >= start_ns)
    if end_ns is not None:
        frame = frame.filter(pl.col("open_time_ns") < end_ns)
    if frame.height < 2:
        raise DataError(f"{resolved}: fewer than two bars in the requested range")
    return frame, interval_s


def load_funding(path: str | Path) -> pl.DataFrame:
    """Settled funding rates as (ts funding time ns, funding_rate fraction per interval), sorted.

    Freqtrade's funding files keep the rate in `open`; Kestrel's own tables call it `funding_rate`.
    """
    resolved = resolve_data_path(path)
    raw = _read_table(resolved)
    rate_column = "funding_rate" if "funding_rate" in raw.columns else "open"
    if rate_column not in raw.columns:
        raise DataError(f"{resolved}: no funding_rate (or freqtrade 'open') column")
    frame = pl.DataFrame({"ts": _time_column_ns(raw, resolved), "funding_rate": raw[rate_column].cast(pl.Float64)})
    return frame.sort("ts").unique(subset="ts", keep="last", maintain_order=True)


def query_duckdb(sql: str) -> pl.DataFrame:
    """Run a DuckDB query (e.g. over recorded Parquet: ``SELECT … FROM 'data/market/…/*.parquet'``)."""
    import duckdb

    try:
        relation = duckdb.sql(sql)
    except duckdb.Error as exc:
        raise DataError(f"duckdb: {exc}") from None
    if relation is None:
        raise DataError("duckdb: the statement returned no rows (use a SELECT)")
    frame: pl.DataFrame = relation.pl()
    return frame
